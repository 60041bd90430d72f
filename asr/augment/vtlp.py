"""Vocal tract length perturbation (Jaitly & Hinton 2013) as a warp of the mel filterbank's frequency axis.

The piecewise-linear warp ``f -> alpha * f`` (bent at ``boundary_hz`` so that the band edges stay put) moves every
formant by ``alpha``: a longer or shorter vocal tract. Applied to log-mel features ``[T, n_mels]``: output bin
``j`` (centre ``f_j``) takes the input's value at ``warp^-1(f_j)``, interpolated between neighbouring mel bins.
Time is untouched, so CTC alignment is too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from asr.augment._common import check_prob, check_range


@dataclass(frozen=True)
class VtlpConfig:
    """Frequency-axis warp of the filterbank, one factor per utterance."""

    prob: float = 0.0  # share of utterances warped
    alpha_range: tuple[float, ...] = (0.9, 1.1)  # warp factor, drawn uniformly (> 1: formants move up)
    boundary_hz: float = 4800.0  # above boundary * min(alpha, 1) the warp bends to keep Nyquist fixed

    def __post_init__(self) -> None:
        check_prob("augment.vtlp", self.prob)
        check_range("augment.vtlp", "alpha_range", self.alpha_range, low=0.7, high=1.3)
        if self.boundary_hz <= 0:
            raise ValueError(f"augment.vtlp.boundary_hz must be > 0, got {self.boundary_hz}")


def _mel(f: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(f / 700.0)


def _warp(f: np.ndarray, alpha: float, boundary: float, nyquist: float) -> np.ndarray:
    """Jaitly & Hinton's piecewise-linear warp of frequencies ``f`` (monotonic, fixes 0 and Nyquist)."""
    knee = boundary * min(alpha, 1.0) / alpha
    slope = (nyquist - boundary * min(alpha, 1.0)) / (nyquist - knee)
    return np.where(f <= knee, alpha * f, nyquist - slope * (nyquist - f))


def vtlp_features(
    feats: torch.Tensor, *, alpha: float, low_freq: float, high_freq: float, sample_rate: int, boundary_hz: float
) -> torch.Tensor:
    """Log-mel ``feats [T, n_mels]`` (filters evenly spaced in Kaldi mel between ``low_freq`` and ``high_freq``)
    with the frequency axis warped by ``alpha``: ``[T, n_mels]``."""
    n = feats.shape[1]
    nyquist = sample_rate / 2.0
    mel_low, mel_high = _mel(np.float64(low_freq)), _mel(np.float64(high_freq))
    step = (mel_high - mel_low) / (n + 1)
    centres_mel = mel_low + step * np.arange(1, n + 1)
    centres_hz = 700.0 * np.expm1(centres_mel / 1127.0)
    grid = np.linspace(0.0, nyquist, 2049)
    source_hz = np.interp(centres_hz, _warp(grid, alpha, boundary_hz, nyquist), grid)  # warp^-1
    pos = np.clip((_mel(source_hz) - mel_low) / step - 1.0, 0.0, n - 1.0)  # fractional input bin
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = torch.from_numpy(pos - lo).to(feats.dtype)
    return feats[:, lo] * (1 - w) + feats[:, hi] * w


def fbank_high_freq(high_freq: float, sample_rate: int) -> float:
    """FbankConfig's high_freq rule: <= 0 means Nyquist + high_freq (Kaldi)."""
    return high_freq if high_freq > 0 else sample_rate / 2 + high_freq
