"""SpecAugment (Park et al. 2019) on one utterance's normalised features, seeded by an explicit generator."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpecAugmentConfig:
    """SpecAugment (Park et al. 2019) without time warping; widths are upper bounds of uniform draws."""

    num_freq_masks: int = 2  # frequency masks per utterance
    freq_mask_width: int = 27  # F: each frequency mask covers [0, F) mel bins
    num_time_masks: int = 2  # time masks per utterance when time_mask_multiplicity == 0
    time_mask_multiplicity: float = 0.0  # > 0: adaptive count, floor(multiplicity * T) masks (p_M, 2019b)
    max_time_masks: int = 20  # cap on the adaptive count
    time_mask_width: int = 40  # T: each time mask covers [0, T) frames ...
    time_mask_ratio: float = 0.05  # ... and at most ratio * T frames of a T-frame utterance (adaptive width, p_S)
    mask_value: float = 0.0  # fill value (0 is the mean after global CMVN)

    def __post_init__(self) -> None:
        counts = (self.num_freq_masks, self.num_time_masks, self.max_time_masks)
        widths = (self.freq_mask_width, self.time_mask_width)
        if min(counts) < 0 or min(widths) < 0:
            raise ValueError(f"mask counts {counts} and widths {widths} must be >= 0")
        if not 0.0 <= self.time_mask_ratio <= 1.0 or self.time_mask_multiplicity < 0:
            raise ValueError(
                f"need 0 <= time_mask_ratio <= 1 and time_mask_multiplicity >= 0, got "
                f"{self.time_mask_ratio}, {self.time_mask_multiplicity}"
            )

    def time_masks_for(self, num_frames: int) -> int:
        """Number of time masks for an utterance of ``num_frames`` frames."""
        if self.time_mask_multiplicity > 0:
            return min(self.max_time_masks, math.floor(self.time_mask_multiplicity * num_frames))
        return self.num_time_masks


class SpecAugment(torch.nn.Module):
    """Frequency and time masking of one utterance's features ``[T, D]``.

    Each mask is drawn as torchaudio's ``FrequencyMasking`` / ``TimeMasking`` draw theirs (width ``v`` uniform in
    [0, W), start uniform in [0, L - v), both floored; for time masks W = min(time_mask_width, floor(T * ratio))
    unless the ratio is 1), but from ``generator`` directly: torchaudio draws from the global RNG, which had to be
    forked and reseeded for every utterance (0.95 ms an utterance of 400 frames, one thread; this takes 0.05 ms).
    The masks are slices of one copy of the input.
    """

    def __init__(self, config: SpecAugmentConfig | None = None) -> None:
        super().__init__()
        self.config = config or SpecAugmentConfig()

    def _time_width(self, num_frames: int) -> int:
        cfg = self.config
        if cfg.time_mask_ratio == 1.0:
            return cfg.time_mask_width
        return min(cfg.time_mask_width, int(num_frames * cfg.time_mask_ratio))

    def forward(self, features: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Return a masked copy of ``features [T, D]``; the input is not modified."""
        if features.ndim != 2:
            raise ValueError(f"SpecAugment expects one utterance's features [T, D], got {tuple(features.shape)}")
        cfg = self.config
        num_frames, num_bins = features.shape
        masks = [(1, num_bins, cfg.freq_mask_width)] * cfg.num_freq_masks
        masks += [(0, num_frames, self._time_width(num_frames))] * cfg.time_masks_for(num_frames)
        out = features.clone()
        if not masks:
            return out
        draws = torch.rand(len(masks), 2, generator=generator, dtype=torch.float64).tolist()
        for (axis, length, width), (u_width, u_start) in zip(masks, draws):
            if width < 1:
                continue
            value = u_width * width
            start = int(u_start * (length - value))  # < 0 when a mask may be wider than the axis (truncated, as
            end = start + int(value)  # torchaudio's), so the mask is [0, end) then
            start = max(start, 0)
            if axis == 1:
                out[:, start:end] = cfg.mask_value
            else:
                out[start:end] = cfg.mask_value
        return out
