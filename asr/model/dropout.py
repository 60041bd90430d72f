"""Dropout whose mask comes from torch.rand: the same distribution as nn.Dropout at less cost on the CPU.

In training each element is kept with probability 1 - p and scaled by 1 / (1 - p), else zeroed; in eval mode
(and at p = 0) the input passes through untouched. nn.Dropout draws its mask with ``bernoulli_``, which on the
CPU costs about twice ``torch.rand`` of the same size, and builds it in the input's dtype; here the mask is
``rand >= p`` (uniform in [0, 1): kept with probability 1 - p up to float32's 2^-24 grid) and the kept scale is
multiplied in the input's dtype, so the numbers are those of nn.Dropout for the same mask. A training step of the
bundle's model holds 4 dropouts a block (tests/asr/model/test_dropout.py checks the rate, the scale, the
gradient and the seeding). No parameters or buffers: checkpoints are those of nn.Dropout.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Dropout"]


class Dropout(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
