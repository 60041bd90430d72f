"""SpecAugment (Park et al. 2019) on one utterance's normalised features, seeded by an explicit generator."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torchaudio.transforms as AT

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
    """Frequency and time masking of one utterance's features ``[T, D]`` (torchaudio's masking transforms)."""

    def __init__(self, config: SpecAugmentConfig | None = None) -> None:
        super().__init__()
        self.config = config or SpecAugmentConfig()
        self.freq_masking = AT.FrequencyMasking(self.config.freq_mask_width)
        self.time_masking = AT.TimeMasking(self.config.time_mask_width, p=self.config.time_mask_ratio)

    def forward(self, features: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """Return a masked copy of ``features [T, D]``; the input is not modified."""
        if features.ndim != 2:
            raise ValueError(f"SpecAugment expects one utterance's features [T, D], got {tuple(features.shape)}")
        cfg = self.config
        # torchaudio's masking draws from the global RNG: run it under a forked RNG seeded from `generator`,
        # so the result depends on `generator` alone and the caller's global RNG stream is left untouched.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        spec = features.transpose(0, 1)  # [D, T], torchaudio's (freq, time) layout
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for _ in range(cfg.num_freq_masks):
                spec = self.freq_masking(spec, cfg.mask_value)
            for _ in range(cfg.time_masks_for(features.shape[0])):
                spec = self.time_masking(spec, cfg.mask_value)
        out = spec.transpose(0, 1)  # [T, D]
        return out.clone() if out.data_ptr() == features.data_ptr() else out
