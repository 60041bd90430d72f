"""asr.augment: SpecAugment masks, speed perturbation and the waveform chain, seeded through explicit generators."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.augment import (
    CODECS,
    SPEED_FACTORS,
    BabbleConfig,
    CodecConfig,
    EqConfig,
    GainConfig,
    NoiseConfig,
    RoomConfig,
    SpecAugment,
    SpecAugmentConfig,
    TelephoneConfig,
    VtlpConfig,
    WaveAugmenter,
    build_rir_bank,
    codec_round_trip,
    coloured_noise,
    load_or_build_rir_bank,
    random_speed_perturb,
    reverberate,
    speed_perturb,
    vtlp_features,
)
from asr.augment._common import active_power, mix_at_snr
from asr.augment.channel import apply_gain, eq_filters, telephone_band
from asr.augment.noise import add_babble, fft_length
from asr.augment.rooms import PRE_PEAK

SR = 16000


def _features(t: int = 500, d: int = 80, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, d, generator=g) + 10.0  # [T, D], nowhere equal to the mask value 0


def _masked(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean [T] frames and [D] bins that are masked over their whole extent."""
    zero = out == 0.0
    return zero.all(dim=1), zero.all(dim=0)


def test_masks_applied_within_bounds():
    cfg = SpecAugmentConfig(num_freq_masks=2, freq_mask_width=27, num_time_masks=2, time_mask_width=40)
    aug = SpecAugment(cfg)
    x = _features()
    any_time = any_freq = False
    for seed in range(20):
        out = aug(x, generator=torch.Generator().manual_seed(seed))
        frames, bins = _masked(out)
        # Everything not in a masked row or column is untouched.
        keep = ~frames[:, None] & ~bins[None, :]
        assert torch.equal(out[keep], x[keep])
        assert int(bins.sum()) <= 2 * 26
        assert int(frames.sum()) <= 2 * min(39, int(0.05 * 500))
        any_time |= bool(frames.any())
        any_freq |= bool(bins.any())
    assert any_time and any_freq


def test_seeded_deterministic_and_global_rng_untouched():
    aug = SpecAugment()
    x = _features()
    x_copy = x.clone()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = aug(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(3), expected_next)  # the caller's global RNG stream is not consumed
    b = aug(x, generator=torch.Generator().manual_seed(7))
    c = aug(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, x_copy)  # input not modified


def test_masks_are_drawn_as_torchaudios_masking_draws_them():
    """Width uniform in [0, W), start uniform in [0, L - width), floored (torchaudio's mask_along_axis), here from
    the generator: the mean width and start of 3,000 single masks agree with torchaudio's within 4 standard errors,
    also where a mask may be wider than the axis (27 bins of 10: then it runs from the first bin)."""
    import torchaudio.functional as AF

    def extent(mask: torch.Tensor) -> tuple[float, float]:
        idx = torch.nonzero(mask).flatten()
        return (float(len(idx)), float(idx[0]) if len(idx) else float("nan"))

    freq = SpecAugmentConfig(num_freq_masks=1, num_time_masks=0, freq_mask_width=27)
    time = SpecAugmentConfig(num_freq_masks=0, num_time_masks=1, time_mask_width=40, time_mask_ratio=0.1)
    for axis, cfg, x, width in ((1, freq, _features(t=300, d=80), 27), (1, freq, _features(t=30, d=10), 27),
                                (0, time, _features(t=300, d=80), min(40, int(300 * 0.1)))):  # fmt: skip
        aug = SpecAugment(cfg)
        ours, theirs = [], []
        torch.manual_seed(0)
        for seed in range(3000):
            frames, bins = _masked(aug(x, generator=torch.Generator().manual_seed(seed)))
            ours.append(extent(bins if axis == 1 else frames))
            ref = AF.mask_along_axis(x.T.unsqueeze(0), width, 0.0, axis=1 if axis == 1 else 2)[0].T
            frames, bins = _masked(ref)
            theirs.append(extent(bins if axis == 1 else frames))
        for k in (0, 1):  # width, then start (of the non-empty masks)
            a = np.array([o[k] for o in ours if o[0] > 0])
            b = np.array([o[k] for o in theirs if o[0] > 0])
            se = np.sqrt(a.var() / len(a) + b.var() / len(b))
            assert abs(a.mean() - b.mean()) < 4 * se, (axis, k, a.mean(), b.mean())
        assert max(o[0] for o in ours) <= min(width - 1, x.shape[1 - axis])


def test_adaptive_time_masks_scale_with_length():
    cfg = SpecAugmentConfig(
        num_freq_masks=0,
        time_mask_multiplicity=0.04,
        max_time_masks=20,
        time_mask_width=100,
        time_mask_ratio=0.04,
    )
    assert cfg.time_masks_for(100) == 4
    assert cfg.time_masks_for(1000) == 20  # capped
    assert cfg.time_masks_for(10) == 0
    aug = SpecAugment(cfg)
    short, long_ = _features(t=100), _features(t=2000)
    short_masked = [int(_masked(aug(short, generator=torch.Generator().manual_seed(s)))[0].sum()) for s in range(10)]
    long_masked = [int(_masked(aug(long_, generator=torch.Generator().manual_seed(s)))[0].sum()) for s in range(10)]
    assert max(short_masked) <= 4 * 4  # 4 masks of at most 0.04 * 100 frames
    assert max(long_masked) <= 20 * 80  # 20 masks of at most 0.04 * 2000 frames
    assert np.mean(long_masked) > 5 * np.mean(short_masked)  # longer utterances get more masking


def test_no_masks_is_identity_and_bad_input():
    aug = SpecAugment(SpecAugmentConfig(num_freq_masks=0, num_time_masks=0))
    x = _features()
    out = aug(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    with pytest.raises(ValueError, match=r"\[T, D\], got \(2, 3, 4\)"):
        aug(torch.zeros(2, 3, 4), generator=torch.Generator())
    with pytest.raises(ValueError, match="time_mask_ratio"):
        SpecAugmentConfig(time_mask_ratio=1.5)
    with pytest.raises(ValueError, match="must be >= 0"):
        SpecAugmentConfig(num_freq_masks=-1)


def _peak_hz(x: torch.Tensor) -> float:
    spec = np.abs(np.fft.rfft(x.numpy() * np.hanning(len(x))))
    return float(np.argmax(spec) * SR / len(x))


@pytest.mark.parametrize("factor", SPEED_FACTORS)
def test_speed_perturb_length_and_pitch(factor):
    n = SR
    t = torch.arange(n, dtype=torch.float64) / SR
    x = (0.5 * torch.sin(2 * torch.pi * 1000.0 * t)).to(torch.float32)
    y = speed_perturb(x, factor=factor, sample_rate=SR)
    assert len(y) == math.ceil(n / factor)
    assert y.dtype == torch.float32
    # Played faster, a 1 kHz tone comes out at factor kHz (Kaldi's sox `speed`: tempo and pitch together).
    assert _peak_hz(y) == pytest.approx(1000.0 * factor, abs=2.0)


def test_random_speed_perturb_seeded():
    x = torch.randn(1600, generator=torch.Generator().manual_seed(0))
    draws = [random_speed_perturb(x, rng=random.Random(s))[1] for s in range(30)]
    assert set(draws) == set(SPEED_FACTORS)
    again = [random_speed_perturb(x, rng=random.Random(s))[1] for s in range(30)]
    assert draws == again
    rng = random.Random(5)
    for _ in range(5):
        y, f = random_speed_perturb(x, rng=rng)
        assert len(y) == math.ceil(1600 / f)


def test_speed_perturb_rejects_bad_factors():
    x = torch.zeros(100)
    with pytest.raises(ValueError, match="-0.5"):
        speed_perturb(x, factor=-0.5)
    with pytest.raises(ValueError, match="not a whole number"):
        speed_perturb(x, factor=0.91234567, sample_rate=SR)
    with pytest.raises(ValueError, match="no speed factors"):
        random_speed_perturb(x, rng=random.Random(0), factors=())


# --- the waveform chain (asr.augment.chain and its stages) ------------------------------------------------

REAL = sorted((Path(__file__).resolve().parents[2] / "asr" / "assets" / "audio" / "real").glob("cards-*.flac"))
STAGE_CONFIGS = {
    "room": RoomConfig(prob=1.0),
    "noise": NoiseConfig(prob=1.0),
    "babble": BabbleConfig(prob=1.0),
    "eq": EqConfig(prob=1.0),
    "gain": GainConfig(prob=1.0),
    "telephone": TelephoneConfig(prob=1.0),
    **{f"codec:{c}": CodecConfig(prob=1.0, codecs=(c,)) for c in CODECS},
}
SMALL_ROOMS = RoomConfig(prob=1.0, bank_size=3, rt60_range=(0.15, 0.3), room_max=(5.0, 4.0, 3.0))


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """~3.3 s of real recorded speech (three bundled 'cards' clips), float64 [N]."""
    return np.concatenate([sf.read(str(p), dtype="float64")[0] for p in REAL[:3]])


@pytest.fixture(scope="module")
def rir_bank():
    return build_rir_bank(SMALL_ROOMS, seed=0, sample_rate=SR, progress=False)


def _augmenter(stage: str, cfg, bank) -> WaveAugmenter:
    return WaveAugmenter.only(**{stage.split(":")[0]: cfg}, sample_rate=SR, rir_bank=bank)


def _other(speech: np.ndarray):
    return lambda rng: speech[::-1].copy()  # another "utterance": the speech reversed


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[(f >= lo) & (f < hi)].sum())


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int = 400) -> int:
    """Lag of b behind a with the largest correlation."""
    m = max_lag
    scores = [float(np.dot(a[m:-m], b[m + k : len(b) - m + k])) for k in range(-m, m + 1)]
    return int(np.argmax(scores)) - m


@pytest.mark.parametrize("stage", list(STAGE_CONFIGS))
def test_each_stage_applies_at_prob_1_never_at_0_and_is_seeded(stage, speech, rir_bank):
    x = torch.from_numpy(speech.astype(np.float32))
    on = _augmenter(stage, STAGE_CONFIGS[stage], rir_bank)
    a = on(x, seed=11, other=_other(speech))
    b = on(x, seed=11, other=_other(speech))
    assert a.applied == (stage,)
    assert torch.equal(a.samples, b.samples)  # same seed, same audio
    y = a.samples.numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0
    assert not np.allclose(y, speech, atol=1e-3)  # really changed
    if stage not in ("gain", "codec:mulaw", "codec:gsm"):  # these have nothing (or nearly nothing) to draw
        others = [on(x, seed=s, other=_other(speech)).samples for s in range(12, 20)]
        assert not all(torch.equal(a.samples, c) for c in others)  # other seeds, other draws
    off = _augmenter(stage, dataclasses.replace(STAGE_CONFIGS[stage], prob=0.0), rir_bank)
    untouched = off(x, seed=11, other=_other(speech))
    assert untouched.applied == () and torch.equal(untouched.samples, x)


def test_probabilities_are_shares_and_stages_draw_independently(speech, rir_bank):
    x = torch.from_numpy(speech[:8000].astype(np.float32))
    half = WaveAugmenter.only(noise=NoiseConfig(prob=0.5), gain=GainConfig(prob=0.5), sample_rate=SR)
    runs = [half(x, seed=s).applied for s in range(200)]
    noise = sum("noise" in r for r in runs)
    assert 70 < noise < 130 and 70 < sum("gain" in r for r in runs) < 130
    # The noise decisions do not move when another stage's probability changes (own generator per stage).
    other = WaveAugmenter.only(noise=NoiseConfig(prob=0.5), gain=GainConfig(prob=0.0), sample_rate=SR)
    assert [("noise" in r) for r in runs] == [("noise" in other(x, seed=s).applied) for s in range(200)]


def test_full_chain_stays_finite_bounded_and_aligned(speech, rir_bank):
    every = {name.split(":")[0]: cfg for name, cfg in STAGE_CONFIGS.items() if name != "room"}
    every = {k: dataclasses.replace(v, prob=1.0) for k, v in every.items()}
    loud = GainConfig(prob=1.0, peak_db_range=(0.0, 0.0))  # peak at full scale before noise and EQ push it over
    aug = WaveAugmenter.only(**{**every, "room": SMALL_ROOMS, "gain": loud}, sample_rate=SR, rir_bank=rir_bank)
    x = torch.from_numpy(speech.astype(np.float32))
    for seed in range(4):
        out = aug(x, seed=seed, other=_other(speech))
        y = out.samples.numpy()
        assert out.applied[:6] == ("room", "noise", "babble", "eq", "gain", "telephone")
        assert out.applied[6].startswith("codec:") and len(y) == len(x)
        assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0


def test_rir_bank_is_seeded_cached_and_keeps_the_direct_path_aligned(speech, rir_bank, tmp_path):
    again = build_rir_bank(SMALL_ROOMS, seed=0, sample_rate=SR, progress=False)
    other = build_rir_bank(SMALL_ROOMS, seed=1, sample_rate=SR, progress=False)
    assert np.array_equal(again.rirs, rir_bank.rirs) and not np.array_equal(other.rirs[0], rir_bank.rirs[0])
    cached = load_or_build_rir_bank(SMALL_ROOMS, cache_dir=tmp_path, seed=0, sample_rate=SR, progress=False)
    files = list(tmp_path.glob("rir-bank-*.npz"))
    assert len(files) == 1 and np.array_equal(cached.rirs, rir_bank.rirs)
    mtime = files[0].stat().st_mtime_ns
    loaded = load_or_build_rir_bank(SMALL_ROOMS, cache_dir=tmp_path, seed=0, sample_rate=SR, progress=False)
    assert files[0].stat().st_mtime_ns == mtime and np.array_equal(loaded.rirs, rir_bank.rirs)  # read, not rebuilt
    clicks = np.zeros(SR)
    clicks[[2000, 9000, 15000]] = 1.0
    for k in range(len(rir_bank)):
        h = rir_bank.rir(k)
        assert int(np.argmax(np.abs(h))) == PRE_PEAK  # the direct path
        wet = reverberate(clicks, h)
        assert len(wet) == len(clicks)
        for at in (2000, 9000, 15000):  # each click's direct sound where the click was: no delay for CTC
            assert int(np.argmax(np.abs(wet[at - 500 : at + 500]))) == 500
        assert np.sum(wet[2100:9000] ** 2) > 0.05 * np.sum(wet[1990:2010] ** 2)  # and a reverberant tail
        assert 0.15 <= rir_bank.rt60[k] <= 0.3
    with pytest.raises(ValueError, match="needs a RIR bank"):
        WaveAugmenter.only(room=SMALL_ROOMS, sample_rate=SR)


def test_noise_hits_the_snr_and_colour(speech):
    rng = np.random.default_rng(0)
    pink, brown = (coloured_noise(SR * 5, exponent=e, rng=rng) for e in (1.0, 2.0))
    low = [_band_energy(n, 50, 500) / _band_energy(n, 2000, 8000) for n in (pink, brown)]
    assert 1.0 < low[0] < low[1]  # brown noise is darker than pink
    noisy = mix_at_snr(speech, pink[: len(speech)], 10.0)
    assert 10 * np.log10(active_power(speech) / np.mean((noisy - speech) ** 2)) == pytest.approx(10.0, abs=1e-6)


def test_fft_length_is_the_next_5_smooth_length():
    def smooth(m: int) -> bool:
        for q in (2, 3, 5):
            while m % q == 0:
                m //= q
        return m == 1

    for n in [1, 2, 7, 11, 97, 1000, 4097, 64007, 80021]:
        m = fft_length(n)
        assert m >= n and smooth(m) and not any(smooth(k) for k in range(n, m))


@pytest.mark.parametrize("n", [SR * 4 + 7, 63997])  # large prime factors: the lengths that made the FFT slow
def test_coloured_noise_at_awkward_lengths_keeps_length_power_and_colour(n):
    rng = np.random.default_rng(1)
    white, pink, brown = (coloured_noise(n, exponent=e, rng=rng) for e in (0.0, 1.0, 2.0))
    assert all(len(x) == n and np.mean(x**2) == pytest.approx(1.0) for x in (white, pink, brown))
    low = [_band_energy(x, 50, 500) / _band_energy(x, 2000, 8000) for x in (white, pink, brown)]
    assert low[0] < 0.15 and 1.0 < low[1] < low[2]  # white is flat (band widths 450 / 6000 = 0.075), then darker


def test_babble_mixes_other_utterances_and_skips_without_them(speech):
    cfg = BabbleConfig(prob=1.0, snr_db_range=(0.0, 0.0), talkers_range=(1, 1))
    x = speech.copy()
    out = add_babble(x, cfg, np.random.default_rng(0), lambda rng: speech[::-1].copy())
    residual = out - x
    assert abs(np.corrcoef(np.abs(residual), np.abs(speech[::-1]))[0, 1]) > 0.5  # the other talker is in it
    assert np.array_equal(add_babble(x, cfg, np.random.default_rng(0), lambda rng: None), x)
    assert np.array_equal(add_babble(x, cfg, np.random.default_rng(0), None), x)


def test_eq_shapes_the_response_and_gain_sets_the_peak(speech):
    from scipy.signal import sosfreqz

    sos = eq_filters(EqConfig(filters_range=(1, 1), gain_db_range=(9.0, 9.0), peak_q=(1.0, 1.0)),
                     np.random.default_rng(3), SR)  # fmt: skip
    w, h = sosfreqz(sos, worN=4096, fs=SR)
    response = 20 * np.log10(np.abs(h))
    assert response.max() == pytest.approx(9.0, abs=0.3) and response.min() > -0.5  # one +9 dB filter
    y = apply_gain(speech, GainConfig(peak_db_range=(-20.0, -20.0)), np.random.default_rng(0))
    assert np.abs(y).max() == pytest.approx(0.1, rel=1e-9)


def test_telephone_band_limits_and_keeps_alignment(speech):
    cfg = TelephoneConfig(low_hz_range=(300.0, 300.0), high_hz_range=(3400.0, 3400.0), resample_prob=1.0)
    y = telephone_band(speech, cfg, np.random.default_rng(0), SR)
    assert len(y) == len(speech) and _lag(speech, y) == 0
    assert _band_energy(y, 4200, 8000) < 1e-4 * _band_energy(speech, 4200, 8000)
    assert _band_energy(y, 0, 120) < 0.05 * _band_energy(speech, 0, 120)
    assert _band_energy(y, 600, 3000) > 0.8 * _band_energy(speech, 600, 3000)


@pytest.mark.parametrize(
    ("codec", "option", "narrow"),
    [("mulaw", {}, True), ("gsm", {}, True), ("codec2", {"mode": 3200}, True), ("codec2", {"mode": 700}, True),
     ("opus", {"level": 0.95}, False), ("opus", {"level": 0.99}, True), ("mp3", {"level": 0.85}, False),
     ("mp3", {"level": 0.99}, True)],
)  # fmt: skip
def test_codecs_are_really_applied_and_stay_aligned(speech, codec, option, narrow):
    y = codec_round_trip(speech, codec, SR, **option)
    assert len(y) == len(speech) and np.all(np.isfinite(y))
    high = _band_energy(y, 4200, 8000) / _band_energy(speech, 4200, 8000)
    if narrow:  # 8 kHz codecs and the lowest bitrates: nothing above ~4 kHz survives
        assert high < 1e-2, high
    else:
        assert high > 0.3, high
    err = np.sqrt(np.mean((y - speech) ** 2) / np.mean(speech**2))
    assert err > 0.05  # lossy: not the input
    if codec == "codec2":  # a vocoder: the waveform is new, the envelope keeps its timing
        env = [np.convolve(np.abs(s), np.ones(160) / 160, "same") for s in (speech, y)]
        assert abs(_lag(env[0], env[1])) <= 40
    else:
        assert _lag(speech, y) == 0
        assert _band_energy(y, 300, 3000) > 0.7 * _band_energy(speech, 300, 3000)


def test_vtlp_moves_formants_and_keeps_time():
    from asr.features import FbankConfig, compute_fbank

    fb = FbankConfig()
    t = torch.arange(SR, dtype=torch.float64) / SR
    tone = (0.3 * torch.sin(2 * torch.pi * 1500.0 * t)).float()
    feats = compute_fbank(tone, fb)
    kw = dict(low_freq=fb.low_freq, high_freq=SR / 2, sample_rate=SR, boundary_hz=4800.0)
    same = vtlp_features(feats, alpha=1.0, **kw)
    torch.testing.assert_close(same, feats)
    peak = int(feats.mean(0).argmax())
    up, down = (int(vtlp_features(feats, alpha=a, **kw).mean(0).argmax()) for a in (1.1, 0.9))
    assert down < peak < up and vtlp_features(feats, alpha=1.1, **kw).shape == feats.shape
    aug = WaveAugmenter.only(vtlp=VtlpConfig(prob=1.0), sample_rate=SR)
    warped, alpha = aug.warp_features(feats, seed=5, fbank=fb)
    assert 0.9 <= alpha <= 1.1 and torch.equal(warped, aug.warp_features(feats, seed=5, fbank=fb)[0])
    assert aug.warp_features(feats, seed=6, fbank=fb)[1] != alpha
    off = WaveAugmenter.only(sample_rate=SR)
    assert off.warp_features(feats, seed=5, fbank=fb) == (feats, None) and not off.enabled


def test_stage_configs_reject_bad_values():
    with pytest.raises(ValueError, match=r"augment.noise.prob must be in \[0, 1\]"):
        NoiseConfig(prob=1.5)
    with pytest.raises(ValueError, match="augment.codec.codecs"):
        CodecConfig(codecs=("aac",))
    with pytest.raises(ValueError, match="snr_db_range"):
        BabbleConfig(snr_db_range=(30.0, 10.0))
    with pytest.raises(ValueError, match="room_min"):
        RoomConfig(room_min=(3.0, 3.0))
    with pytest.raises(ValueError, match="unknown augmentation stages"):
        WaveAugmenter.only(reverb=RoomConfig())
