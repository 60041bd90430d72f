"""The attention layers, packed for inference (``LinearAttention.step`` / ``SoftmaxAttention.step``'s fast forms).

Linear attention:
- linear layers as ``_common.Linear`` (the C path's few-row products in ``kernels.gemm``); a data-dependent
  ("gated") decay's gate is folded into the qkv matmul as H more output columns; a per-head output norm's gains
  (and LayerNorm biases) are folded into the out projection;
- a constant per-head decay's factors for a chunk of C frames depend on the weights and C only: they are
  computed once per C (``kernels.linear_attention.chunk_gates``);
- the recurrence goes through ``kernels.linear_attention.chunk_step``: on the CPU in float32 its C backend
  (feature map, read-out, decay, update and RMS output norm in one pass over each stream's state, straight
  from the qkv matmul's output), else its PyTorch backend; the result is written straight into the
  [B, C, H, D] layout the out projection reads.
Only the options listed here are packed (``FEATURE_MAPS``, ``DECAYS``, ``NORMS``): any other is a ValueError
when the model is packed, never a silent fallback.

Softmax attention (the baseline): a copy of the module steps the attention itself.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from asr.model.attention import LinearAttention, LinearAttentionState, SoftmaxAttention, SoftmaxAttentionState
from asr.model.inference._common import Linear, Norm, use_c
from kernels import EluPlusOne, PositiveRandomFeatures, ReLUFeatures
from kernels.block import BlockAttention, BlockNorm
from kernels.linear_attention import ChunkGates, chunk_gates, chunk_step

__all__ = ["DECAYS", "FEATURE_MAPS", "NORMS", "PackedLinearAttention", "PackedSoftmaxAttention", "pack_attention"]

#: feature-map module -> the packed form's name for it ("elu+1" and "relu" run inside the step kernel)
FEATURE_MAPS = {EluPlusOne: "elu+1", ReLUFeatures: "relu", PositiveRandomFeatures: "positive_random"}
DECAYS = ("none", "per_head", "gated")
NORMS = ("none", "rms", "layer")


class PackedLinearAttention:
    """``add_step(x, h, state, b, c, donate=...)``: adds the attention branch of the normed input h [B * C, d]
    to x [B * C, d] in place and returns the new LinearAttentionState."""

    def __init__(self, layer: LinearAttention, *, kernel: str) -> None:
        feature_map = FEATURE_MAPS.get(type(layer.phi))
        if feature_map is None:
            raise ValueError(f"the packed step has no form for the feature map {type(layer.phi).__name__}")
        if layer.decay_kind not in DECAYS:
            raise ValueError(f"the packed step has no form for decay {layer.decay_kind!r} (packed: {DECAYS})")
        norm = layer.norm.kind if layer.norm is not None else "none"
        if norm not in NORMS:
            raise ValueError(f"the packed step has no form for the output norm {norm!r} (packed: {NORMS})")
        self.kernel = kernel
        self.feature_map, self.decay, self.norm = feature_map, layer.decay_kind, norm
        self.heads, self.head_dim, self.eps, self.chunk_size = layer.heads, layer.head_dim, layer.eps, layer.chunk_size
        self.phi = copy.deepcopy(layer.phi) if feature_map == "positive_random" else None
        with torch.no_grad():
            qkv, qkv_bias = layer.qkv.weight.detach(), layer.qkv.bias.detach()
            if layer.decay_kind == "gated":  # the gate's logits as H more output columns of the same matmul
                qkv = torch.cat([qkv, layer.gate.weight.detach()])
                qkv_bias = torch.cat([qkv_bias, layer.gate.bias.detach()])
            out, out_bias = layer.out.weight.detach(), layer.out.bias.detach()  # [d, H * D], [d]
            self.norm_eps = 0.0
            if layer.norm is not None:  # y = n(o) * w + b per head -> out(y) = n(o) @ (w * W^T) + (W b + out_bias)
                self.norm_eps = float(layer.norm.eps)
                if layer.norm.bias is not None:
                    out_bias = out_bias + out @ layer.norm.bias.detach().reshape(-1)
                out = out * layer.norm.weight.detach().reshape(-1)
            self.qkv = Linear(qkv.t().contiguous(), qkv_bias.clone(), kernel=kernel)
            self.out = Linear(out.t().contiguous(), out_bias.clone(), kernel=kernel)
            self.head_gates = torch.sigmoid(layer.decay_logit.detach().float()) if self.decay == "per_head" else None
        self._gates: dict[tuple, ChunkGates] = {}  # (C, device, dtype) -> a per-head decay's factors

    def _decay(self, qkv: torch.Tensor | None, b: int, c: int, dtype: torch.dtype) -> ChunkGates | torch.Tensor | None:
        heads = self.heads
        if self.decay == "gated":
            log_g = F.logsigmoid(qkv[:, 3 * heads * self.head_dim :].float()).to(dtype)  # float32, as the module's
            return log_g.view(b, c, heads).transpose(1, 2)  # [B, H, C]
        if self.decay == "none":
            return None
        device = self.head_gates.device if qkv is None else qkv.device
        key = (c, device, dtype)
        gates = self._gates.get(key)  # every chunk of c frames after the first: nothing to compute
        if gates is not None:
            return gates
        log_h = torch.log(self.head_gates.to(device=device, dtype=dtype)).view(1, heads, 1).expand(1, heads, c)
        if c > self.chunk_size:  # a long chunk goes in pieces: the step computes each piece's factors
            return log_h
        gates = self._gates[key] = ChunkGates(*(g.contiguous() for g in chunk_gates(log_h)))
        return gates

    def fused(self, norm: Norm) -> BlockAttention | None:
        """This layer (behind the LayerNorm ``norm``) for ``kernels.block``'s one-call block step, or None where
        that kernel has no form for it: a gated decay or random features (its step runs them in PyTorch ops), a
        per-head LayerNorm output norm, or weights without C panels (kernel "torch", float64)."""
        if (
            self.feature_map not in ("elu+1", "relu")
            or self.decay not in ("none", "per_head")
            or self.norm == "layer"
            or self.qkv.panels is None
            or self.out.panels is None
        ):
            return None
        return BlockAttention(
            BlockNorm(*norm), self.qkv.fused(), self.out.fused(), self.heads, self.head_dim, self.eps,
            self.feature_map, self.norm_eps if self.norm == "rms" else None,
        )  # fmt: skip

    def constant_gates(self, c: int) -> ChunkGates | None:
        """A chunk of c <= chunk_size frames' decay factors for a constant per-head decay (computed once per c), or
        None without decay (a gated decay has no constant factors: ValueError)."""
        if self.decay == "none":
            return None
        if self.decay != "per_head" or c > self.chunk_size:
            raise ValueError(f"constant chunk factors exist for a per-head decay and c <= {self.chunk_size}")
        return self._decay(None, 1, c, torch.float32)

    def add_step(
        self, x: torch.Tensor, h: torch.Tensor, state: LinearAttentionState, b: int, c: int, *, donate: bool
    ) -> LinearAttentionState:
        heads, dim = self.heads, self.head_dim
        d = heads * dim
        qkv = self.qkv(h)  # [B * C, 3d (+ H)]
        sdtype = torch.float64 if torch.float64 in (qkv.dtype, state.S.dtype) else torch.float32
        fused = use_c(self.kernel, qkv) and sdtype == torch.float32
        qkv3 = qkv[:, : 3 * d].view(b, c, 3, heads, dim).permute(2, 0, 3, 1, 4)  # [3, B, H, C, D] view
        feature_map = None if self.feature_map == "positive_random" else self.feature_map  # mapped by the step
        if self.phi is not None:
            q, k, v = qkv3.to(sdtype).unbind(0)
            scale = dim**-0.25  # as LinearAttention scales q and k before random features
            q, k = self.phi(q * scale, is_query=True).contiguous(), self.phi(k * scale).contiguous()
            v = v.contiguous()
        elif fused:  # the C kernel reads q, k, v where the matmul wrote them
            q, k, v = qkv3.unbind(0)  # strided [B, H, C, D] views of qkv
        else:
            q, k, v = (qkv3 if qkv3.dtype == sdtype else qkv3.to(sdtype)).contiguous().unbind(0)
        decay = self._decay(qkv, b, c, sdtype)
        state = LinearAttentionState(state.S.to(sdtype), state.z.to(sdtype))
        o = torch.empty(b, c, heads, dim, dtype=sdtype, device=x.device)  # [B, C, H, D]: the out projection's
        _, state = chunk_step(
            q, k, v, state, decay=decay, eps=self.eps, out=o.transpose(1, 2), feature_map=feature_map,
            inplace=donate and state.S.is_contiguous() and state.z.is_contiguous(),
            rms_eps=self.norm_eps if self.norm == "rms" else None, chunk_size=self.chunk_size,
            backend="c" if fused else "torch",
        )  # fmt: skip
        if self.norm == "layer":
            o = F.layer_norm(o, (dim,), eps=self.norm_eps)
        self.out.add_to(x, o.view(b * c, d).to(x.dtype))
        return state


class PackedSoftmaxAttention:
    """The softmax baseline: a copy of the module steps the attention; its branch is added to x in place."""

    def __init__(self, layer: SoftmaxAttention, *, kernel: str) -> None:
        self.module = copy.deepcopy(layer)

    def add_step(
        self, x: torch.Tensor, h: torch.Tensor, state: SoftmaxAttentionState, b: int, c: int, *, donate: bool
    ) -> SoftmaxAttentionState:
        a, state = self.module.step(h.view(b, c, -1), state)
        x.add_(a.reshape(b * c, -1))
        return state


_PACKED = {LinearAttention: PackedLinearAttention, SoftmaxAttention: PackedSoftmaxAttention}


def pack_attention(layer: torch.nn.Module, *, kernel: str) -> PackedLinearAttention | PackedSoftmaxAttention:
    """The packed form of an attention layer; ValueError for a layer kind it has none for."""
    packed = _PACKED.get(type(layer))
    if packed is None:
        raise ValueError(f"the packed step has no form for the attention layer {type(layer).__name__}")
    return packed(layer, kernel=kernel)
