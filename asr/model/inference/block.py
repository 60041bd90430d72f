"""The encoder block, packed for inference (``EncoderBlock.step``'s fast form): activations kept as
[B * C, d_model] and each residual branch added in place; linear layers as ``_common.Linear``.

With the C kernels (kernel "c", float32) a step of a few (stream, frame) rows (<= ``gemm.SMALL_ROWS``: one or two
streams' chunks, where calling ~20 operations from Python costs more than their arithmetic) runs the whole block
in one call of ``kernels.block`` (the same C kernels back to back); bigger steps, and the options that kernel has
no form for (``PackedLinearAttention.fused``), go op by op. ``fused=False`` keeps every step op by op (for side by
side measurements: ``tools/bench_streaming.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from asr.model.attention import LinearAttentionState
from asr.model.blocks import BlockState, EncoderBlock
from asr.model.conv_module import ConvState
from asr.model.inference._common import Linear, Norm, copied, layer_norm, transposed
from asr.model.inference.attention import PackedLinearAttention, pack_attention
from asr.model.inference.conv import PackedConv
from kernels import gemm
from kernels.block import BlockNorm, FusedBlock

__all__ = ["PackedBlock"]


class PackedBlock:
    """``step(x [B, C, d] (owned: updated in place), state, donate=...) -> (x, new BlockState)``."""

    def __init__(self, block: EncoderBlock, *, kernel: str, fused: bool = True) -> None:
        self.attention_norm = Norm.pack(block.norm_attention)
        self.attention = pack_attention(block.attention, kernel=kernel)
        self.conv = PackedConv(block.conv, block.norm_conv, kernel=kernel) if block.conv is not None else None
        self.ff_norm = Norm.pack(block.norm_ff)
        with torch.no_grad():
            self.ff_inner = Linear(transposed(block.ff.inner.weight), copied(block.ff.inner.bias), kernel=kernel)
            self.ff_outer = Linear(transposed(block.ff.outer.weight), copied(block.ff.outer.bias), kernel=kernel)
        self.fused = self._fuse() if fused else None

    def _fuse(self) -> FusedBlock | None:
        """The one-call form of this block, or None where kernels.block has no form for one of its parts."""
        if not isinstance(self.attention, PackedLinearAttention) or self.ff_inner.panels is None:
            return None
        attention = self.attention.fused(self.attention_norm)
        conv = self.conv.fused() if self.conv is not None else None
        if attention is None or (self.conv is not None and conv is None) or self.ff_outer.panels is None:
            return None
        return FusedBlock(attention, conv, BlockNorm(*self.ff_norm), self.ff_inner.fused(), self.ff_outer.fused())

    def _fused_step(self, x: torch.Tensor, state: BlockState, donate: bool) -> BlockState | None:
        """The one-call step where it applies (else None, nothing done): a few float32 rows, a chunk the
        attention's constant decay factors cover, float32 states."""
        if self.fused is None:
            return None
        b, c, _ = x.shape
        S, z = state.attention
        if (
            b * c > gemm.SMALL_ROWS
            or c > self.attention.chunk_size
            or x.dtype != torch.float32
            or not x.is_contiguous()
            or S.dtype != torch.float32
            or z.dtype != torch.float32
        ):
            return None
        cache = full = None
        if self.conv is not None:
            if state.conv is None:
                raise ValueError("block has a conv module but its state has no conv cache")
            cache = state.conv.cache
            if cache.dtype != torch.float32:
                return None
        if not (donate and S.is_contiguous() and z.is_contiguous()):  # updated in place: a copy not given up
            S, z = S.clone(memory_format=torch.contiguous_format), z.clone(memory_format=torch.contiguous_format)
        if cache is not None:
            if cache.stride(2) != 1:
                cache = cache.contiguous()
            full = torch.empty(b, cache.shape[1] + c, x.shape[2], dtype=torch.float32)
        self.fused.step_unchecked(x, S, z, self.attention.constant_gates(c), cache, full)
        return BlockState(LinearAttentionState(S, z), None if full is None else ConvState(full[:, c:]))

    def step(self, x: torch.Tensor, state: BlockState, *, donate: bool = False) -> tuple[torch.Tensor, BlockState]:
        fused = self._fused_step(x, state, donate)
        if fused is not None:
            return x, fused
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
