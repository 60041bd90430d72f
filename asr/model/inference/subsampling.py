"""The causal conv subsampling, packed for inference (``CausalConvSubsampling.step``'s fast form).

- conv1 (one input channel) is one matmul over its 3x3 windows with its bias on a column of ones; on the CPU in
  float32 it is ``kernels.conv.conv1_silu``, written after the cached row of the buffer conv2 reads, so
  neither the cached row nor the activation is ever copied;
- conv2 for a few (stream, frame) rows (<= ``IM2COL_ROWS``) is an explicit im2col matmul (no convolution-library
  call overhead); for a big batch it is oneDNN's conv2d, channels-last, on the chunk's rows with a zero row in
  front and the cached row's taps added to the first output frame, so the big rows are never concatenated;
- the projection's weight is permuted to read conv2's channels-last output as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from asr.model.inference._common import Linear, copied, use_c
from asr.model.subsampling import CausalConvSubsampling, SubsamplingState
from kernels import conv

__all__ = ["IM2COL_ROWS", "PackedSubsampling"]

#: up to this many (stream, output frame) rows conv2 is an explicit im2col matmul; more go to oneDNN's conv2d
IM2COL_ROWS = 16


class PackedSubsampling:
    """``step(feats [B, 4n, F], state) -> ([B, n, d_model], new state)``; same numbers as the module's step."""

    def __init__(self, module: CausalConvSubsampling, *, kernel: str) -> None:
        self.kernel = kernel
        self.factor = module.factor
        self.channels, self.freq1, self.freq2 = module.channels, module.freq1, module.freq2
        c = module.channels
        with torch.no_grad():
            conv1 = module.conv1.weight.detach().reshape(c, 9).t()  # [9, C]
            self.conv1 = torch.cat([conv1, module.conv1.bias.detach()[None]]).contiguous()  # [10, C]: bias row
            self.conv1_taps, self.conv1_bias = conv1.contiguous(), copied(module.conv1.bias)  # the C kernel's
            # [C, C, 3, 3], channels-last as the activations it meets (else the conv converts it on every call)
            weight = module.conv2.weight.detach()
            self.conv2 = weight.contiguous(memory_format=torch.channels_last)
            self.conv2_first_row = weight[:, :, :1].contiguous(memory_format=torch.channels_last)  # [C, C, 1, 3]
            self.conv2_mat = weight.reshape(c, -1).t().contiguous()  # [C * 9, C]
            self.conv2_bias = copied(module.conv2.bias)
            d = module.proj.out_features
            # proj reads (channel, frequency) features; conv2's output here is (frequency, channel)
            proj = module.proj.weight.detach().view(d, c, module.freq2).transpose(1, 2).reshape(d, -1)
            self.proj = Linear(proj.t().contiguous(), copied(module.proj.bias), kernel=kernel)

    def _conv2(self, h1: torch.Tensor) -> torch.Tensor:
        """h1 [B, 1 + 2n, F1, C] (the cached row, then the chunk's) -> conv2 + bias [B, n, F2, C]."""
        b, length, _, c = h1.shape
        n = (length - 1) // 2
        if b * n <= IM2COL_ROWS:
            windows = h1.unfold(1, 3, 2).unfold(2, 3, 2)  # [B, n, F2, C, 3, 3]
            f2 = windows.shape[2]
            return torch.addmm(self.conv2_bias, windows.reshape(b * n * f2, c * 9), self.conv2_mat).view(b, n, f2, c)
        return F.conv2d(h1.permute(0, 3, 1, 2), self.conv2, self.conv2_bias, stride=2).permute(0, 2, 3, 1)

    def step(self, x: torch.Tensor, state: SubsamplingState) -> tuple[torch.Tensor, SubsamplingState]:
        b, t, f = x.shape
        n = t // self.factor
        x = x.to(self.proj.weight.dtype)
        frames = torch.cat([state.frames.reshape(b, 1, f), x], dim=1)  # [B, 1 + 4n, F]
        if use_c(self.kernel, x):
            h1 = torch.empty(b, 1 + 2 * n, self.freq1, self.channels, dtype=x.dtype, device=x.device)
            h1[:, :1] = state.hidden
            conv.conv1_silu(frames, self.conv1_taps, self.conv1_bias, h1[:, 1:])
            h2 = F.silu(self._conv2(h1), inplace=True)  # [B, n, F2, C]
        else:
            windows = torch.empty(b * 2 * n * self.freq1, 10, dtype=x.dtype, device=x.device)  # 3x3 taps, 1
            windows[:, 9] = 1.0
            windows[:, :9].view(b, 2 * n, self.freq1, 3, 3).copy_(frames.unfold(1, 3, 2).unfold(2, 3, 2))
            h1 = F.silu(torch.mm(windows, self.conv1), inplace=True).view(b, 2 * n, self.freq1, self.channels)
            if b * n <= IM2COL_ROWS:  # the cached row and the chunk's rows in one tensor
                h2 = self._conv2(torch.cat([state.hidden, h1], dim=1))  # [B, n, F2, C]
            else:  # a big batch: the chunk's rows with a zero row in front, the cached row's taps added after
                h2 = F.conv2d(h1.permute(0, 3, 1, 2), self.conv2, self.conv2_bias, stride=2, padding=(1, 0))
                first = F.conv2d(state.hidden.permute(0, 3, 1, 2), self.conv2_first_row, None, stride=(1, 2))
                h2[:, :, :1].add_(first)  # [B, C, n, F2]
                h2 = h2.permute(0, 2, 3, 1)  # [B, n, F2, C]
            h2 = F.silu(h2, inplace=True)
        y = self.proj(h2.reshape(b * n, -1))  # [B * n, d]
        return y.view(b, n, -1), SubsamplingState(frames=frames[:, -1:].unsqueeze(1), hidden=h1[:, -1:])
