"""The convolution module, packed for inference (``ConvModule.step``'s fast form).

On the CPU in float32 the gate (GLU) is written after the cached rows of the buffer the depthwise conv reads,
then the depthwise conv, its LayerNorm and SiLU run in one pass (``kernels.conv``). Otherwise PyTorch ops:
for a few (stream, frame) rows (<= ``WINDOWED_ROWS``) the depthwise conv is one broadcast multiply and a sum
over the windows (no convolution-library call overhead); for more, oneDNN's depthwise conv reads the buffer
as a channels-last image (a view).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asr.model.conv_module import ConvModule, ConvState
from asr.model.inference._common import Linear, Norm, copied, layer_norm, transposed, use_c
from kernels import conv
from kernels.block import BlockConv, BlockNorm

__all__ = ["WINDOWED_ROWS", "PackedConv", "depthwise_step"]

#: up to this many (stream, frame) rows the depthwise conv is a windowed multiply and sum; more go to oneDNN
WINDOWED_ROWS = 16


def depthwise_step(full: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """full [B, K - 1 + C, d] (the cached frames, then the chunk's), weight [d, K], bias [d] -> the causal
    depthwise conv [B, C, d], in [B, T, d] layout (no transposes)."""
    b, length, d = full.shape
    kernel = weight.shape[1]
    if b * (length - (kernel - 1)) <= WINDOWED_ROWS:
        return (full.unfold(1, kernel, 1) * weight).sum(-1).add_(bias)  # [B, C, d, K] -> [B, C, d]
    y = F.conv2d(full.transpose(1, 2).unsqueeze(2), weight.view(d, 1, 1, kernel), bias, groups=d)  # [B, d, 1, C]
    return y.squeeze(2).transpose(1, 2)  # [B, C, d]: contiguous when the conv wrote channels-last


class PackedConv:
    """``add_step(x, state, b, c)``: adds the conv module's branch (its pre-norm included) to x [B * C, d] in
    place and returns the new ConvState."""

    def __init__(self, module: ConvModule, norm: nn.LayerNorm, *, kernel: str) -> None:
        self.kernel = kernel
        with torch.no_grad():
            self.norm = Norm.pack(norm)
            self.inner_bias = copied(module.pointwise_in.bias)
            # the C path adds the bias in the gate's kernel; the PyTorch path in the matmul
            self.inner = Linear(transposed(module.pointwise_in.weight), None, kernel=kernel)
            depthwise = module.depthwise.weight.detach().squeeze(1)  # [d, K]
            self.depthwise, self.depthwise_taps = depthwise.clone(), depthwise.t().contiguous()  # [K, d]: C's
            self.depthwise_bias = copied(module.depthwise.bias)
            self.tail_norm = Norm.pack(module.norm)
            self.outer = Linear(
                transposed(module.pointwise_out.weight), copied(module.pointwise_out.bias), kernel=kernel
            )

    def fused(self) -> BlockConv | None:
        """This module for ``kernels.block``'s one-call block step, or None without C panels (kernel "torch")."""
        if self.inner.panels is None or self.outer.panels is None:
            return None
        return BlockConv(
            BlockNorm(*self.norm), self.inner.fused(), self.inner_bias, self.depthwise_taps, self.depthwise_bias,
            BlockNorm(*self.tail_norm), self.outer.fused(),
        )  # fmt: skip

    def add_step(self, x: torch.Tensor, state: ConvState, b: int, c: int) -> ConvState:
        if use_c(self.kernel, x):
            cached = state.cache.shape[1]
            full = torch.empty(b, cached + c, x.shape[1], dtype=x.dtype, device=x.device)  # [B, K - 1 + C, d]
            full[:, :cached] = state.cache
            conv.bias_glu(self.inner(layer_norm(x, self.norm)), self.inner_bias, full[:, cached:])
            tail = self.tail_norm
            y = conv.dwconv_ln_silu(full, self.depthwise_taps, self.depthwise_bias, tail.weight, tail.bias, tail.eps)
        else:
            h = F.glu(torch.addmm(self.inner_bias, layer_norm(x, self.norm), self.inner.weight), dim=-1)  # [B * C, d]
            full = torch.cat([state.cache, h.view(b, c, -1)], dim=1)  # [B, K - 1 + C, d]
            y = depthwise_step(full, self.depthwise, self.depthwise_bias).reshape(b * c, -1)
            y = F.silu(layer_norm(y, self.tail_norm), inplace=True)
        self.outer.add_to(x, y)
        return ConvState(full[:, c:])
