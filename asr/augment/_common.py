"""Shared checks and small signal helpers of the waveform augmentations (numpy float64 arrays ``[N]``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_FRAME = 320  # 20 ms at 16 kHz: frame size of the active-speech power estimate


def check_prob(section: str, prob: float) -> None:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"{section}.prob must be in [0, 1], got {prob}")


def check_range(section: str, name: str, values: Sequence[float], *, low: float, high: float) -> None:
    """``values`` is ``(lo, hi)`` with ``low <= lo <= hi <= high``."""
    if len(values) != 2 or not low <= values[0] <= values[1] <= high:
        raise ValueError(f"{section}.{name} must be [lo, hi] with {low} <= lo <= hi <= {high}, got {list(values)}")


def uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def active_power(x: np.ndarray) -> float:
    """Mean power of the frames within 40 dB of the loudest one (speech, not the silence around it)."""
    n = len(x) // _FRAME
    if n == 0:
        return float(np.mean(x**2)) if len(x) else 0.0
    energies = np.mean(x[: n * _FRAME].reshape(n, _FRAME) ** 2, axis=1)
    top = float(energies.max())
    if top <= 0.0:
        return 0.0
    return float(energies[energies >= top * 1e-4].mean())


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal + g * noise`` with ``g`` such that active signal power / noise power is ``snr_db`` dB."""
    ps, pn = active_power(signal), float(np.mean(noise**2))
    if ps <= 0.0 or pn <= 0.0:
        return signal
    return signal + noise * math.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded at the end to ``n`` samples."""
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), dtype=x.dtype)])


def align_to(reference: np.ndarray, x: np.ndarray, *, max_lag: int, envelope: int = 0) -> np.ndarray:
    """``x`` shifted by the lag in ``[-max_lag, max_lag]`` that best matches ``reference``, at its length.

    ``envelope`` > 0 correlates moving averages of ``|.|`` over that many samples instead of the waveforms
    (for parametric codecs, whose output keeps the envelope but not the waveform).
    """
    n = len(reference)
    a, b = reference, fit_length(x, n + max_lag) if len(x) < n + max_lag else x[: n + max_lag]
    if envelope:
        kernel = np.ones(envelope) / envelope
        a, b = np.convolve(np.abs(a), kernel, "same"), np.convolve(np.abs(b), kernel, "same")
    size = 1 << (len(a) + len(b)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    lag = int(lags[np.argmax(np.concatenate([corr[: max_lag + 1], corr[size - max_lag :]]))])
    if lag >= 0:
        return fit_length(x[lag:], n)
    return fit_length(np.concatenate([np.zeros(-lag, dtype=x.dtype), x]), n)
