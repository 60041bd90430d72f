"""Convolution module: pointwise -> GLU -> depthwise conv (K frames) -> LayerNorm -> SiLU -> pointwise.

Conformer's module with LayerNorm in place of BatchNorm (no batch statistics: streaming and padding safe).
Causal: the depthwise conv sees frames t - K + 1 .. t (left padding only); its streaming state is the last
K - 1 frames of its input (ConvState). Non-causal: centred, K odd, with padded frames zeroed first so that a
padded batch gives the same valid outputs as each utterance alone.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from asr.model.dropout import Dropout

__all__ = ["ConvModule", "ConvState"]


class ConvState(NamedTuple):
    """Left context of the depthwise convolution."""

    cache: torch.Tensor  # [B, K - 1, d_model]  the last K - 1 GLU outputs


class ConvModule(nn.Module):
    """[B, T, d_model] -> [B, T, d_model]."""

    def __init__(self, *, d_model: int, kernel_size: int, causal: bool, dropout: float) -> None:
        super().__init__()
        if not causal and kernel_size % 2 == 0:
            raise ValueError(f"a centred (non-causal) conv needs an odd kernel_size, got {kernel_size}")
        self.d_model = d_model
        self.kernel_size = kernel_size
        self.causal = causal
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model)
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def _tail(self, h: torch.Tensor) -> torch.Tensor:
        # h: [B, d, T] depthwise output -> [B, T, d]
        h = F.silu(self.norm(h.transpose(1, 2)))
        return self.dropout(self.pointwise_out(h))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, d_model]; mask: [B, T] bool, True on valid frames (used by the non-causal form only)."""
        h = F.glu(self.pointwise_in(x), dim=-1)  # [B, T, d]
        if not self.causal and mask is not None:
            h = h * mask.unsqueeze(-1).to(h.dtype)
        h = h.transpose(1, 2)  # [B, d, T]
        if self.causal:
            h = F.pad(h, (self.kernel_size - 1, 0))
        else:
            half = (self.kernel_size - 1) // 2
            h = F.pad(h, (half, half))
        return self._tail(self.depthwise(h))

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> ConvState:
        if not self.causal:
            raise ValueError("a non-causal conv module has no streaming state (set causal=True to stream)")
        dtype = self.depthwise.weight.dtype
        return ConvState(torch.zeros(batch_size, self.kernel_size - 1, self.d_model, device=device, dtype=dtype))

    def step(self, x: torch.Tensor, state: ConvState) -> tuple[torch.Tensor, ConvState]:
        """x: [B, C, d_model] chunk -> (y [B, C, d_model], state holding the last K - 1 GLU outputs)."""
        if not self.causal:
            raise ValueError("a non-causal conv module cannot step (set causal=True to stream)")
        if x.dim() != 3 or x.shape[-1] != self.d_model or x.shape[1] == 0:
            raise ValueError(f"expected a chunk [B, T >= 1, {self.d_model}], got shape {tuple(x.shape)}")
        h = F.glu(self.pointwise_in(x), dim=-1)  # [B, C, d]
        full = torch.cat([state.cache, h], dim=1)  # [B, K - 1 + C, d]: the cached frames in place of the padding
        y = self._tail(self.depthwise(full.transpose(1, 2)))
        return y, ConvState(full[:, full.shape[1] - (self.kernel_size - 1) :])

    def flops_per_frame(self) -> float:
        d = self.d_model
        return 2.0 * (2 * d * d + d * self.kernel_size + d * d)
