"""The pre-norm encoder block: attention, optional convolution module, feed-forward, each a residual branch.

x = x + Dropout(Attention(LN(x)))
x = x + ConvModule(LN(x))                (if config.conv_module)
x = x + Dropout(FeedForward(LN(x)))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from asr.model.attention import LinearAttention, LinearAttentionState, SoftmaxAttention, SoftmaxAttentionState
from asr.model.config import ModelConfig
from asr.model.conv_module import ConvModule, ConvState
from asr.model.dropout import Dropout

__all__ = ["BlockState", "EncoderBlock", "FeedForward"]


class FeedForward(nn.Module):
    """Linear(d, ff) -> SiLU -> Dropout -> Linear(ff, d). Per frame: no state."""

    def __init__(self, *, d_model: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.inner = nn.Linear(d_model, ff_dim)
        self.outer = nn.Linear(ff_dim, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.inner(x))
        return self.outer(self.dropout(h))

    def flops_per_frame(self) -> float:
        return 2.0 * 2 * self.inner.in_features * self.inner.out_features


class BlockState(NamedTuple):
    """Streaming state of one block."""

    attention: LinearAttentionState | SoftmaxAttentionState
    conv: ConvState | None  # None when the block has no conv module


class EncoderBlock(nn.Module):
    def __init__(self, config: ModelConfig, *, layer_index: int = 0) -> None:
        super().__init__()
        d = config.d_model
        self.norm_attention = nn.LayerNorm(d)
        self.attention: LinearAttention | SoftmaxAttention = (
            LinearAttention(config, layer_index=layer_index)
            if config.attention == "linear"
            else SoftmaxAttention(config)
        )
        self.norm_conv = nn.LayerNorm(d) if config.conv_module else None
        self.conv = (
            ConvModule(d_model=d, kernel_size=config.conv_kernel_size, causal=config.causal, dropout=config.dropout)
            if config.conv_module
            else None
        )
        self.norm_ff = nn.LayerNorm(d)
        self.ff = FeedForward(d_model=d, ff_dim=config.ff_dim, dropout=config.dropout)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, d_model]; mask: [B, T] bool valid frames (consulted by non-causal layers only)."""
        x = x + self.dropout(self.attention(self.norm_attention(x), mask))
        if self.conv is not None:
            x = x + self.conv(self.norm_conv(x), mask)
        return x + self.dropout(self.ff(self.norm_ff(x)))

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> BlockState:
        conv = self.conv.init_state(batch_size, device) if self.conv is not None else None
        return BlockState(self.attention.init_state(batch_size, device), conv)

    def step(self, x: torch.Tensor, state: BlockState) -> tuple[torch.Tensor, BlockState]:
        """x: [B, C, d_model] chunk -> (y, new state): ``forward`` with each layer's carried state."""
        a, attention_state = self.attention.step(self.norm_attention(x), state.attention)
        x = x + self.dropout(a)
        conv_state = None
        if self.conv is not None:
            if state.conv is None:
                raise ValueError("block has a conv module but its state has no conv cache")
            c, conv_state = self.conv.step(self.norm_conv(x), state.conv)
            x = x + c
        return x + self.dropout(self.ff(self.norm_ff(x))), BlockState(attention_state, conv_state)

    def flops_per_frame(self, context_frames: float) -> float:
        if isinstance(self.attention, SoftmaxAttention):
            flops = self.attention.flops_per_frame(context_frames)
        else:
            flops = self.attention.flops_per_frame()
        if self.conv is not None:
            flops += self.conv.flops_per_frame()
        return flops + self.ff.flops_per_frame()
