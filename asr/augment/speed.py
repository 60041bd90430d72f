"""Speed perturbation (tempo and pitch together, as ``sox speed``), the factor drawn from an explicit generator."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torchaudio.functional as AF

SPEED_FACTORS = (0.9, 1.0, 1.1)  # Kaldi / ESPnet 3-way speed perturbation


def speed_perturb(samples: torch.Tensor, *, factor: float, sample_rate: int = 16000) -> torch.Tensor:
    """Play ``samples [N]`` ``factor`` times faster (tempo and pitch, as ``sox speed``): ``[~N / factor]``.

    The audio is treated as if recorded at ``sample_rate * factor`` Hz and resampled to ``sample_rate``.
    """
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0:
        return samples
    orig = int(round(sample_rate * factor))
    if abs(orig - sample_rate * factor) > 1e-6 * sample_rate:
        raise ValueError(f"speed factor {factor} at {sample_rate} Hz is not a whole number of Hz ({orig})")
    return AF.resample(samples, orig_freq=orig, new_freq=sample_rate)


def random_speed_perturb(
    samples: torch.Tensor,
    *,
    rng: random.Random,
    factors: Sequence[float] = SPEED_FACTORS,
    sample_rate: int = 16000,
) -> tuple[torch.Tensor, float]:
    """Speed-perturb by a factor drawn uniformly from ``factors`` with ``rng``: ``(samples, factor)``."""
    if not factors:
        raise ValueError("no speed factors to choose from")
    factor = float(rng.choice(list(factors)))
    return speed_perturb(samples, factor=factor, sample_rate=sample_rate), factor
