"""The augmentation stage: sox pitch/tempo/reverb/resampling, coloured noise at a set SNR, peak level."""

from __future__ import annotations

import random

import numpy as np
import pytest
import soundfile as sf

from asr.synth.effects import (
    NOISE_COLOURS,
    AugmentConfig,
    EffectParams,
    Reverb,
    apply_effects,
    coloured_noise,
    draw_effects,
    speech_power,
)


def _tone_file(path, *, sr=22050, seconds=1.0):
    """A 300 Hz tone with a 4 Hz amplitude envelope, plus 0.2 s of silence at each end."""
    t = np.arange(int(sr * seconds)) / sr
    tone = 0.5 * np.sin(2 * np.pi * 300 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    pad = np.zeros(int(0.2 * sr))
    sf.write(path, np.concatenate([pad, tone, pad]).astype(np.float32), sr, subtype="PCM_16")
    return path


def _params(**kw):
    base = dict(tempo=1.0, pitch_cents=0, reverb=None, noise="none", snr_db=20.0, peak_db=-3.0, seed=7)
    return EffectParams(**{**base, **kw})


@pytest.mark.parametrize("colour", NOISE_COLOURS)
def test_noise_has_unit_rms_and_its_colour(colour):
    x = coloured_noise(colour, 32000, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == (32000,)
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    # Log-log slope of the power spectrum over 20 log-spaced bands: 0 white, -1 pink, -2 brown.
    edges = np.unique(np.geomspace(10, len(power) - 1, 21).astype(int))
    f = np.array([np.sqrt(a * b) for a, b in zip(edges[:-1], edges[1:])])
    p = np.array([power[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    slope = np.polyfit(np.log(f), np.log(p), 1)[0]
    assert slope == pytest.approx({"white": 0.0, "pink": -1.0, "brown": -2.0}[colour], abs=0.15)


def test_unknown_colour_is_refused():
    with pytest.raises(ValueError, match="purple"):
        coloured_noise("purple", 10, np.random.default_rng(0))


def test_clean_output_is_16k_at_the_peak_level_and_tempo_changes_length(tmp_path):
    raw = _tone_file(tmp_path / "raw.wav")
    y = apply_effects(raw, _params(peak_db=-6.0))
    assert y.dtype == np.float32
    assert len(y) == pytest.approx(1.4 * 16000, abs=50)
    assert 20 * np.log10(np.max(np.abs(y))) == pytest.approx(-6.0, abs=1e-3)
    faster = apply_effects(raw, _params(tempo=1.25))
    assert len(faster) == pytest.approx(len(y) / 1.25, rel=0.02)


def test_pitch_shift_moves_the_tone(tmp_path):
    raw = _tone_file(tmp_path / "raw.wav")

    def peak_hz(y):
        spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        return np.argmax(spec) * 16000 / len(y)

    assert peak_hz(apply_effects(raw, _params())) == pytest.approx(300, abs=3)
    assert peak_hz(apply_effects(raw, _params(pitch_cents=1200))) == pytest.approx(600, abs=6)


def test_noise_is_added_at_the_requested_snr_and_is_seeded(tmp_path):
    raw = _tone_file(tmp_path / "raw.wav")
    clean = apply_effects(raw, _params(peak_db=-1.0)).astype(np.float64)
    noisy = apply_effects(raw, _params(peak_db=-1.0, noise="pink", snr_db=10.0)).astype(np.float64)
    # Undo the final peak normalisation by least squares, then measure what was added.
    scale = np.dot(noisy, clean) / np.dot(clean, clean)
    noise = noisy / scale - clean
    snr = 10 * np.log10(speech_power(clean.astype(np.float32)) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.5)
    again = apply_effects(raw, _params(peak_db=-1.0, noise="pink", snr_db=10.0))
    assert np.array_equal(again, noisy.astype(np.float32))
    other_seed = apply_effects(raw, _params(peak_db=-1.0, noise="pink", snr_db=10.0, seed=8))
    assert not np.array_equal(other_seed, again)


def test_reverb_adds_a_tail(tmp_path):
    raw = _tone_file(tmp_path / "raw.wav")
    dry = apply_effects(raw, _params())
    wet = apply_effects(raw, _params(reverb=Reverb(70, 50, 100, 10, 0.0)))
    tail = slice(int(1.22 * 16000), int(1.35 * 16000))  # after the tone ends at 1.2 s
    assert speech_power(wet[tail]) > 100 * max(speech_power(dry[tail]), 1e-12)


def test_silent_input_is_refused(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="silent"):
        apply_effects(path, _params())


def test_drawn_effects_are_deterministic_and_in_range():
    config = AugmentConfig()
    a = [draw_effects(random.Random(s), config=config, base_pitch_cents=150, extra_tempo=1.0) for s in range(200)]
    b = [draw_effects(random.Random(s), config=config, base_pitch_cents=150, extra_tempo=1.0) for s in range(200)]
    assert a == b
    assert all(config.tempo_range[0] <= p.tempo <= config.tempo_range[1] for p in a)
    assert all(abs(p.pitch_cents - 150) <= config.pitch_jitter_cents for p in a)
    assert all(config.peak_db_range[0] <= p.peak_db <= config.peak_db_range[1] for p in a)
    assert 0.2 < sum(p.reverb is not None for p in a) / 200 < 0.5
    assert {p.noise for p in a} == {"none", *NOISE_COLOURS}
    assert all(EffectParams.from_dict(p.to_dict()) == p for p in a)
