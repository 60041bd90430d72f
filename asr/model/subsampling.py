"""Causal 4x convolutional subsampling: two 3x3 conv2d layers with stride 2 in time and frequency.

Causal and block-aligned in time: each stride-2 conv is padded by one frame on the left only, so output frame
t sees input frames 2t - 1, 2t, 2t + 1. After both layers encoder frame t covers input frames [4t, 4t + 3]
(plus left context) and nothing later: T input frames give T // 4 encoder frames, and right padding never
changes a valid output. Frequency is not padded: F -> (F - 3) // 2 + 1 -> (F1 - 3) // 2 + 1 bins.

Streaming: ``step`` takes a chunk whose length is a multiple of 4 (the caller keeps the remainder frames) and
carries one frame of left context per conv layer (SubsamplingState), zeros at the start like the padding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalConvSubsampling", "SubsamplingState", "check_feature_chunk"]

_FACTOR = 4


class SubsamplingState(NamedTuple):
    """Left context of the two stride-2 convolutions."""

    frames: torch.Tensor  # [B, 1, 1, F]   last input feature frame
    hidden: torch.Tensor  # [B, 1, F1, C]  last (activated) output frame of the first conv, channels-last


def _freq_out(bins: int) -> int:
    return (bins - 3) // 2 + 1


def check_feature_chunk(x: torch.Tensor, input_dim: int, factor: int = _FACTOR) -> None:
    """A streaming step's feature chunk: a floating-point [B, T, input_dim] tensor, T a positive multiple of
    ``factor`` (the caller keeps the remainder frames); ValueError naming what is wrong."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != input_dim:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"features must be [B, T, {input_dim}], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"features must be floating point, got {x.dtype}")
    if x.shape[1] == 0 or x.shape[1] % factor:
        raise ValueError(
            f"a streaming chunk must hold a positive multiple of {factor} feature frames, got {x.shape[1]} "
            "(keep the remainder for the next chunk)"
        )


class CausalConvSubsampling(nn.Module):
    """[B, T, F] features -> [B, T // 4, d_model]."""

    def __init__(self, *, input_dim: int, channels: int, d_model: int) -> None:
        super().__init__()
        if input_dim < 7:
            raise ValueError(f"input_dim must be >= 7 for two 3x3 stride-2 convs, got {input_dim}")
        self.input_dim = input_dim
        self.channels = channels
        self.freq1 = _freq_out(input_dim)
        self.freq2 = _freq_out(self.freq1)
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=2)
        self.proj = nn.Linear(channels * self.freq2, d_model)

    @property
    def factor(self) -> int:
        return _FACTOR

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        # h: [B, C, T', F2] -> [B, T', C * F2] -> [B, T', d_model]
        b, c, t, f = h.shape
        return self.proj(h.permute(0, 2, 1, 3).reshape(b, t, c * f))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, T, F] (T >= 4), lengths: [B] -> ([B, T // 4, d_model], lengths // 4)."""
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"features must be [B, T, {self.input_dim}], got shape {tuple(x.shape)}")
        if x.shape[1] < _FACTOR:
            raise ValueError(f"need at least {_FACTOR} feature frames, got T={x.shape[1]}")
        h = x.unsqueeze(1)  # [B, 1, T, F]
        h = F.silu(self._causal_conv(self.conv1, h))  # [B, C, T // 2, F1]
        h = F.silu(self._causal_conv(self.conv2, h))  # [B, C, T // 4, F2]
        return self._project(h), torch.div(lengths, _FACTOR, rounding_mode="floor")

    @staticmethod
    def _causal_conv(conv: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
        """``conv`` (3x3, stride 2) over ``h`` [B, C, T, F] with one zero frame on the left: [B, C', T // 2, F'].
        The conv's own symmetric time padding, then the output frame that reads the right pad (odd T) dropped:
        with stride 2, output frame t reads padded frames 2t .. 2t + 2 = input frames 2t - 1 .. 2t + 1 either way,
        so this is F.pad on the left then an unpadded conv (as ``step`` computes it), up to the summation order
        oneDNN picks, without copying the padded input (a training step's subsampling ~12% faster)."""
        out = F.conv2d(h, conv.weight, conv.bias, stride=2, padding=(1, 0))
        return out[:, :, : h.shape[2] // 2]

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> SubsamplingState:
        dtype = self.conv1.weight.dtype
        return SubsamplingState(
            frames=torch.zeros(batch_size, 1, 1, self.input_dim, device=device, dtype=dtype),
            hidden=torch.zeros(batch_size, 1, self.freq1, self.channels, device=device, dtype=dtype),
        )

    def step(self, x: torch.Tensor, state: SubsamplingState) -> tuple[torch.Tensor, SubsamplingState]:
        """x: [B, 4n, F] (n >= 1) -> ([B, n, d_model], new state). ``forward``'s convolutions, with the carried
        frame (input) and row (first conv's output) in place of the left padding."""
        check_feature_chunk(x, self.input_dim)
        b, t, f = x.shape
        frames = torch.cat([state.frames.reshape(b, 1, f), x], dim=1)  # [B, 1 + 4n, F]
        h1 = F.silu(self.conv1(frames.unsqueeze(1)))  # [B, C, 2n, F1]
        h1 = torch.cat([state.hidden.permute(0, 3, 1, 2), h1], dim=2)  # [B, C, 1 + 2n, F1]
        h2 = F.silu(self.conv2(h1))  # [B, C, n, F2]
        hidden = h1[:, :, -1:].permute(0, 2, 3, 1).contiguous()  # [B, 1, F1, C]: the state keeps channels last
        return self._project(h2), SubsamplingState(frames=frames[:, -1:].unsqueeze(1), hidden=hidden)

    def flops_per_frame(self) -> float:
        """Multiply-adds x 2 per *input* frame."""
        c = self.channels
        conv1 = c * self.freq1 * 9 / 2  # one conv1 output row every 2 input frames
        conv2 = c * self.freq2 * c * 9 / 4
        proj = c * self.freq2 * self.proj.out_features / 4
        return 2.0 * (conv1 + conv2 + proj)
