"""The encoder block, packed for inference (``EncoderBlock.step``'s fast form): activations kept as
[B * C, d_model] and each residual branch added in place; linear layers as ``_common.Linear``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from asr.model.blocks import BlockState, EncoderBlock
from asr.model.inference._common import Linear, Norm, copied, layer_norm, transposed
from asr.model.inference.attention import pack_attention
from asr.model.inference.conv import PackedConv

__all__ = ["PackedBlock"]


class PackedBlock:
    """``step(x [B, C, d] (owned: updated in place), state, donate=...) -> (x, new BlockState)``."""

    def __init__(self, block: EncoderBlock, *, kernel: str) -> None:
        self.attention_norm = Norm.pack(block.norm_attention)
        self.attention = pack_attention(block.attention, kernel=kernel)
        self.conv = PackedConv(block.conv, block.norm_conv, kernel=kernel) if block.conv is not None else None
        self.ff_norm = Norm.pack(block.norm_ff)
        with torch.no_grad():
            self.ff_inner = Linear(transposed(block.ff.inner.weight), copied(block.ff.inner.bias), kernel=kernel)
            self.ff_outer = Linear(transposed(block.ff.outer.weight), copied(block.ff.outer.bias), kernel=kernel)

    def step(self, x: torch.Tensor, state: BlockState, *, donate: bool = False) -> tuple[torch.Tensor, BlockState]:
        b, c, d = x.shape
        x2 = x.view(b * c, d)
        attention_state = self.attention.add_step(
            x2, layer_norm(x2, self.attention_norm), state.attention, b, c, donate=donate
        )
        conv_state = None
        if self.conv is not None:
            if state.conv is None:
                raise ValueError("block has a conv module but its state has no conv cache")
            conv_state = self.conv.add_step(x2, state.conv, b, c)
        h = F.silu(self.ff_inner(layer_norm(x2, self.ff_norm)), inplace=True)
        self.ff_outer.add_to(x2, h)
        return x, BlockState(attention_state, conv_state)
