"""asr.augment: SpecAugment masks and speed perturbation, seeded through explicit generators."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from asr.augment import (
    SPEED_FACTORS,
    SpecAugment,
    SpecAugmentConfig,
    random_speed_perturb,
    speed_perturb,
)

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
    short_masked = [
        int(_masked(aug(short, generator=torch.Generator().manual_seed(s)))[0].sum()) for s in range(10)
    ]
    long_masked = [
        int(_masked(aug(long_, generator=torch.Generator().manual_seed(s)))[0].sum()) for s in range(10)
    ]
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
