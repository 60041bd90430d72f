"""A whole pre-norm encoder block's streaming step in one C call (``block.c``), with its plain PyTorch reference.

    block = FusedBlock(attention, conv, ff_norm, ff_inner, ff_outer)   # the weights, described once
    cache = block_step(block, x, S, z, gates, cache)                   # x [B, C, d] and S, z updated in place

The block is linear attention, an optional convolution module and a feed-forward, each a residual branch
behind its own LayerNorm (``block.c`` has the formulas). For a streaming step of a few streams each of its ~20
operations costs more to call from Python than to compute; ``block.c`` runs the same C kernels as the per-op
path (``kernels.gemm``, ``kernels.linear_attention``'s step, ``kernels.conv``: their sources are included)
back to back in one call. What it covers: float32 CPU tensors, the feature maps "elu+1" and "relu" inside the
step, no decay or a constant one given as the chunk's ``ChunkGates``, the per-head RMS output norm (gains folded
into the out projection) or none. :func:`block_step_reference` is the same maths in PyTorch ops (any float
dtype), which the tests (tests/kernels/test_block.py) hold the C op to in float64. Inference only. The library
is compiled on first use for this CPU and cached (``kernels.cbuild``); ``load()`` raises
:class:`CKernelUnavailable` with the compiler's message where that fails.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from kernels import conv, gemm
from kernels.cbuild import INT, LONG, PTR, CKernelUnavailable, build, check_float32_cpu
from kernels.linear_attention.recurrent import ChunkGates
from kernels.linear_attention.state import LinearAttentionState
from kernels.linear_attention.step import chunk_step

__all__ = [
    "BlockAttention",
    "BlockConv",
    "BlockLinear",
    "BlockNorm",
    "CKernelUnavailable",
    "FusedBlock",
    "block_step",
    "block_step_reference",
    "load",
]

_KERNELS = Path(__file__).parents[1]
_SOURCE = Path(__file__).with_name("block.c")
_HEADERS = (
    _KERNELS / "gemm" / "gemm.c",
    _KERNELS / "conv" / "conv.c",
    _KERNELS / "linear_attention" / "cpu_step.c",
    _KERNELS / "linear_attention" / "cpu_step_body.h",
)
_PHI = {"elu+1": 1, "relu": 2}  # block.c's codes (cpu_step.c's)


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL:
    """Compile (once per source, compiler and CPU) and load the library; raises CKernelUnavailable."""
    functions = {"block_step_f32": (INT, [PTR, LONG, LONG] + [PTR] * 7 + [PTR, LONG, LONG, PTR])}
    return build("block", _SOURCE, _HEADERS, functions=functions, fallback="step the block op by op")


# -- the weights ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockNorm:
    """A LayerNorm's gain and shift [d] (contiguous) and epsilon."""

    weight: torch.Tensor
    bias: torch.Tensor
    eps: float


@dataclass(frozen=True)
class BlockLinear:
    """y = x @ weight_t + bias: weight_t [K, N] (for the reference), its ``kernels.gemm`` panels (for C)."""

    weight_t: torch.Tensor
    bias: torch.Tensor | None
    panels: gemm.PanelWeight


@dataclass(frozen=True)
class BlockAttention:
    """Linear attention: q, k, v = split(qkv(norm(x))) in heads, the chunk step (feature map inside it), then
    the out projection (a per-head RMS output norm's gains folded into it)."""

    norm: BlockNorm
    qkv: BlockLinear  # [d, 3d]: q, k, v, each heads x head_dim
    out: BlockLinear  # [d, d]
    heads: int
    head_dim: int
    eps: float  # the normaliser's epsilon
    feature_map: str  # "elu+1" or "relu"
    rms_eps: float | None  # the per-head RMS output norm's epsilon, None for no norm


@dataclass(frozen=True)
class BlockConv:
    """The convolution module: GLU(inner(norm(x)) + inner_bias), causal depthwise conv over ``depthwise``'s K taps,
    LayerNorm, SiLU, outer."""

    norm: BlockNorm
    inner: BlockLinear  # [d, 2d], no bias (inner_bias is added by the gate)
    inner_bias: torch.Tensor  # [2d]
    depthwise: torch.Tensor  # [K, d] tap-major
    depthwise_bias: torch.Tensor  # [d]
    tail_norm: BlockNorm
    outer: BlockLinear  # [d, d]


class _Linear(ctypes.Structure):
    _fields_ = [("panels", PTR), ("bias", PTR), ("K", LONG), ("N", LONG), ("half", INT)]


class _Norm(ctypes.Structure):
    _fields_ = [("weight", PTR), ("bias", PTR), ("eps", ctypes.c_float)]


class _Weights(ctypes.Structure):  # block.c's block_weights, field by field
    _fields_ = [
        ("d", LONG), ("heads", LONG), ("head_dim", LONG), ("ff_dim", LONG), ("conv_kernel", LONG),
        ("attention_norm", _Norm), ("conv_norm", _Norm), ("conv_tail_norm", _Norm), ("ff_norm", _Norm),
        ("qkv", _Linear), ("out", _Linear), ("conv_in", _Linear), ("conv_out", _Linear), ("ff_in", _Linear),
        ("ff_out", _Linear),
        ("conv_in_bias", PTR), ("depthwise", PTR), ("depthwise_bias", PTR),
        ("attention_eps", ctypes.c_float), ("rms_eps", ctypes.c_float), ("rms", INT), ("phi", INT),
    ]  # fmt: skip


def _vector(x: torch.Tensor, name: str, n: int) -> int:
    check_float32_cpu(**{name: x})
    if tuple(x.shape) != (n,) or not x.is_contiguous():
        raise ValueError(f"{name} must be a contiguous [{n}], got {list(x.shape)}")
    return x.data_ptr()


def _norm(n: BlockNorm, name: str, d: int) -> _Norm:
    return _Norm(_vector(n.weight, f"{name}.weight", d), _vector(n.bias, f"{name}.bias", d), n.eps)


def _linear(w: BlockLinear, name: str, k: int, n: int) -> _Linear:
    p = w.panels
    if (p.in_features, p.out_features) != (k, n) or tuple(w.weight_t.shape) != (k, n):
        raise ValueError(f"{name} must be [{k}, {n}], got {list(w.weight_t.shape)} (panels {p.in_features} x "
                         f"{p.out_features})")  # fmt: skip
    bias = None if w.bias is None else _vector(w.bias, f"{name}.bias", n)
    return _Linear(p.panels.data_ptr(), bias, k, n, int(p.half))


class FusedBlock:
    """An encoder block's weights for :func:`block_step`: checked once here (shapes, float32 CPU, contiguity) and
    described to C by pointers (the tensors are kept alive by this object)."""

    def __init__(
        self,
        attention: BlockAttention,
        conv: BlockConv | None,
        ff_norm: BlockNorm,
        ff_inner: BlockLinear,
        ff_outer: BlockLinear,
    ) -> None:
        if attention.feature_map not in _PHI:
            raise ValueError(f"the fused block applies the feature maps {sorted(_PHI)}, got {attention.feature_map!r}")
        heads, dim = attention.heads, attention.head_dim
        d = heads * dim
        ff = ff_inner.weight_t.shape[1]
        self.attention, self.conv, self.ff_norm = attention, conv, ff_norm
        self.ff_inner, self.ff_outer = ff_inner, ff_outer
        self.d = d
        self.conv_kernel = 0 if conv is None else conv.depthwise.shape[0]
        w = _Weights(d=d, heads=heads, head_dim=dim, ff_dim=ff, conv_kernel=self.conv_kernel)
        w.attention_norm = _norm(attention.norm, "attention.norm", d)
        w.qkv = _linear(attention.qkv, "attention.qkv", d, 3 * d)
        w.out = _linear(attention.out, "attention.out", d, d)
        w.ff_norm = _norm(ff_norm, "ff_norm", d)
        w.ff_in = _linear(ff_inner, "ff_inner", d, ff)
        w.ff_out = _linear(ff_outer, "ff_outer", ff, d)
        if conv is not None:
            k = self.conv_kernel
            if conv.depthwise.dim() != 2 or conv.depthwise.shape[1] != d or k < 1 or not conv.depthwise.is_contiguous():
                raise ValueError(f"conv.depthwise must be a contiguous [K, {d}], got {list(conv.depthwise.shape)}")
            check_float32_cpu(depthwise=conv.depthwise)
            w.conv_norm = _norm(conv.norm, "conv.norm", d)
            w.conv_tail_norm = _norm(conv.tail_norm, "conv.tail_norm", d)
            w.conv_in = _linear(conv.inner, "conv.inner", d, 2 * d)
            w.conv_out = _linear(conv.outer, "conv.outer", d, d)
            w.conv_in_bias = _vector(conv.inner_bias, "conv.inner_bias", 2 * d)
            w.depthwise, w.depthwise_bias = conv.depthwise.data_ptr(), _vector(conv.depthwise_bias, "conv.bias", d)
        w.attention_eps, w.phi = attention.eps, _PHI[attention.feature_map]
        w.rms, w.rms_eps = int(attention.rms_eps is not None), attention.rms_eps or 0.0
        self._weights = w
        self._lib = load()

    def step_unchecked(
        self, x: torch.Tensor, S: torch.Tensor, z: torch.Tensor, gates: ChunkGates | None,
        cache: torch.Tensor | None, full: torch.Tensor | None,
    ) -> None:  # fmt: skip
        """:func:`block_step` without its checks, for a caller that guarantees them (the packed step, whose
        buffers it made). Anything else reads or writes out of bounds."""
        b, c, _ = x.shape
        g = (None,) * 4 if gates is None else tuple(t.data_ptr() for t in gates)
        if cache is None:
            conv_args = (None, 0, 0, None)
        else:
            conv_args = (cache.data_ptr(), cache.stride(0), cache.stride(1), full.data_ptr())
        if self._lib.block_step_f32(ctypes.byref(self._weights), b, c, x.data_ptr(), S.data_ptr(), z.data_ptr(), *g,
                                    *conv_args):  # fmt: skip
            raise MemoryError("block_step: the kernel's workspace could not be allocated")


# -- the step -------------------------------------------------------------------------------------------------
def _check_state(block: FusedBlock, x: torch.Tensor, S: torch.Tensor, z: torch.Tensor) -> tuple[int, int]:
    check_float32_cpu(x=x, S=S, z=z)
    a = block.attention
    if x.dim() != 3 or x.shape[2] != block.d or not x.is_contiguous() or 0 in x.shape:
        raise ValueError(f"x must be a contiguous [B, C, {block.d}] with B, C >= 1, got {list(x.shape)}")
    b, c, _ = x.shape
    if tuple(S.shape) != (b, a.heads, a.head_dim, a.head_dim) or tuple(z.shape) != (b, a.heads, a.head_dim):
        raise ValueError(f"the state must be S [{b}, {a.heads}, {a.head_dim}, {a.head_dim}] and z [{b}, {a.heads}, "
                         f"{a.head_dim}], got {list(S.shape)} and {list(z.shape)}")  # fmt: skip
    if not (S.is_contiguous() and z.is_contiguous()):
        raise ValueError("the state (S and z) must be contiguous: it is updated in place")
    return b, c


def _check_gates(gates: ChunkGates | None, heads: int, c: int) -> None:
    if gates is None:
        return
    shapes = ((1, heads, c, c), (1, heads, c, 1), (1, heads, c, 1), (1, heads, 1, 1))
    for name, t, shape in zip(ChunkGates._fields, gates, shapes):
        check_float32_cpu(**{f"gates.{name}": t})
        if tuple(t.shape) != shape or not t.is_contiguous():
            raise ValueError(f"gates.{name} must be a contiguous {list(shape)} (one decay for every stream, "
                             f"chunk_gates of {c} frames), got {list(t.shape)}")  # fmt: skip


def block_step(
    block: FusedBlock,
    x: torch.Tensor,
    S: torch.Tensor,
    z: torch.Tensor,
    gates: ChunkGates | None,
    cache: torch.Tensor | None,
) -> torch.Tensor | None:
    """Advance one block by a chunk: x [B, C, d] (contiguous) gets the three residual branches added in place, the
    attention state S [B, H, D, D], z [B, H, D] (contiguous) is updated in place; ``gates`` are the chunk's
    decay factors (``chunk_gates`` of [1, H, C] log gates) or None; ``cache`` [B, K - 1, d] the conv module's last
    rows (contiguous last dimension; None without a conv module). Returns the new cache (a [B, K - 1, d] view of
    a fresh buffer), or None."""
    b, c = _check_state(block, x, S, z)
    _check_gates(gates, block.attention.heads, c)
    full = None
    if block.conv is not None:
        k1 = block.conv_kernel - 1
        if cache is None:
            raise ValueError("this block has a conv module: pass its cache")
        check_float32_cpu(cache=cache)
        if tuple(cache.shape) != (b, k1, block.d) or cache.stride(2) != 1:
            raise ValueError(f"cache must be [{b}, {k1}, {block.d}] with contiguous rows, got {list(cache.shape)} "
                             f"strides {cache.stride()}")  # fmt: skip
        full = torch.empty(b, k1 + c, block.d, dtype=torch.float32)
    elif cache is not None:
        raise ValueError("this block has no conv module: its cache must be None")
    block.step_unchecked(x, S, z, gates, cache, full)
    return None if full is None else full[:, c:]


def _layer_norm(x: torch.Tensor, n: BlockNorm) -> torch.Tensor:
    return F.layer_norm(x, n.weight.shape, n.weight.to(x.dtype), n.bias.to(x.dtype), n.eps)


def _apply(w: BlockLinear, x: torch.Tensor) -> torch.Tensor:
    bias = None if w.bias is None else w.bias.to(x.dtype)
    return gemm.linear_reference(x, w.weight_t.to(x.dtype), bias)


def block_step_reference(
    block: FusedBlock,
    x: torch.Tensor,
    state: LinearAttentionState,
    gates: ChunkGates | None,
    cache: torch.Tensor | None,
) -> tuple[torch.Tensor, LinearAttentionState, torch.Tensor | None]:
    """:func:`block_step` in PyTorch ops, in x's dtype, nothing modified: -> (new x, new state, new cache)."""
    a = block.attention
    b, c, d = x.shape
    dtype = x.dtype
    y = x.reshape(b * c, d).clone()
    qkv = _apply(a.qkv, _layer_norm(y, a.norm)).view(b, c, 3, a.heads, a.head_dim).permute(2, 0, 3, 1, 4)
    if gates is not None:
        gates = ChunkGates(*(t.to(dtype) for t in gates))
    o, state = chunk_step(*qkv.unbind(0), LinearAttentionState(*(t.to(dtype) for t in state)), decay=gates,
                          eps=a.eps, feature_map=a.feature_map, rms_eps=a.rms_eps)  # fmt: skip
    y = y + _apply(a.out, o.transpose(1, 2).reshape(b * c, d))
    new_cache = None
    if block.conv is not None:
        cv = block.conv
        g = conv.bias_glu_reference(_apply(cv.inner, _layer_norm(y, cv.norm)), cv.inner_bias.to(dtype))
        full = torch.cat([cache.to(dtype), g.view(b, c, d)], dim=1)
        tail = cv.tail_norm
        h = conv.dwconv_ln_silu_reference(full, cv.depthwise.to(dtype), cv.depthwise_bias.to(dtype),
                                          tail.weight.to(dtype), tail.bias.to(dtype), tail.eps)  # fmt: skip
        y = y + _apply(cv.outer, h)
        new_cache = full[:, c:]
    y = y + _apply(block.ff_outer, F.silu(_apply(block.ff_inner, _layer_norm(y, block.ff_norm))))
    return y.view(b, c, d), state, new_cache
