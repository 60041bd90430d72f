"""Convolution ops in C for small inference steps on the CPU (``conv.c``), with their plain PyTorch references.

    conv1_silu      silu(conv2d(x, 3x3, stride 2) + bias) of a one-channel image, channels-last, written into
                    ``out`` (any batch and row strides: e.g. the rows after a cached one of a buffer)
    bias_glu        GLU(x + bias) written into ``out`` (any batch and time strides)
    dwconv_ln_silu  silu(layer_norm(causal depthwise conv)) over a [B, K - 1 + T, d] buffer, in one pass

Float32 CPU tensors, inference only; the ``*_reference`` functions are the same maths in PyTorch (any float
dtype), which the tests (tests/kernels/test_conv*.py) hold the C ops to in float64. No speech knowledge lives
here. The library is compiled on first use for this CPU and cached (``kernels.cbuild``); ``available()`` says
whether that works here, ``load()`` raises :class:`CKernelUnavailable` with the compiler's message when not.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from kernels.cbuild import FLOAT, LONG, PTR, CKernelUnavailable, build, check_float32_cpu

__all__ = [
    "CKernelUnavailable",
    "available",
    "bias_glu",
    "bias_glu_reference",
    "conv1_silu",
    "conv1_silu_reference",
    "dwconv_ln_silu",
    "dwconv_ln_silu_reference",
    "load",
]

_SOURCE = Path(__file__).with_name("conv.c")


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL:
    """Compile (once per source, compiler and CPU) and load the library; raises CKernelUnavailable."""
    functions = {
        "conv1_silu_f32": (None, [LONG] * 4 + [PTR, LONG, LONG, PTR, PTR, PTR, LONG, LONG]),
        "bias_glu_f32": (None, [LONG, LONG, LONG, PTR, LONG, PTR, PTR, LONG, LONG]),
        "dwconv_ln_silu_f32": (None, [LONG] * 4 + [PTR, LONG, LONG] + [PTR] * 4 + [FLOAT, PTR]),
    }
    return build("conv", _SOURCE, functions=functions, fallback="use the PyTorch ops (the *_reference functions)")


def available() -> bool:
    """Whether the library builds and loads here (compiles it on the first call)."""
    try:
        load()
    except CKernelUnavailable:
        return False
    return True


def _check(**tensors: torch.Tensor) -> None:
    check_float32_cpu(**tensors)
    for name, x in tensors.items():
        if x.stride(-1) != 1:
            raise ValueError(f"{name} needs a contiguous last dimension, got strides {x.stride()}")


# -- conv1_silu ---------------------------------------------------------------------------------------------
def conv1_silu(frames: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """frames [B, R, F] (contiguous rows), weight [9, C] (tap = row * 3 + column, contiguous), bias [C]
    -> out [B, T1, F1, C] (each [F1, C] block contiguous) with R >= 2 T1 + 1 and F >= 2 F1 + 1; returns out."""
    check_float32_cpu(frames=frames, weight=weight, bias=bias, out=out)
    if frames.dim() != 3 or frames.stride(2) != 1:
        raise ValueError(f"frames must be [B, R, F] with contiguous rows, got {list(frames.shape)}")
    b, rows, bins = frames.shape
    if out.dim() != 4 or out.shape[0] != b:
        raise ValueError(f"out must be [{b}, T1, F1, C], got {list(out.shape)}")
    t1, f1, c = out.shape[1:]
    if out.stride(3) != 1 or out.stride(2) != c:
        raise ValueError(f"out needs each [F1, C] block contiguous, got strides {out.stride()}")
    if rows < 2 * t1 + 1 or bins < 2 * f1 + 1:
        raise ValueError(f"frames {list(frames.shape)} are too short for {t1} x {f1} outputs of a 3x3 stride-2 conv")
    if tuple(weight.shape) != (9, c) or not weight.is_contiguous() or tuple(bias.shape) != (c,):
        raise ValueError(f"weight must be a contiguous [9, {c}] and bias [{c}], got {list(weight.shape)}, "
                         f"{list(bias.shape)}")  # fmt: skip
    bias = bias.contiguous()
    load().conv1_silu_f32(
        b, t1, f1, c, frames.data_ptr(), frames.stride(0), frames.stride(1), weight.data_ptr(), bias.data_ptr(),
        out.data_ptr(), out.stride(0), out.stride(1),
    )  # fmt: skip
    return out


def conv1_silu_reference(frames: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, rows: int) -> torch.Tensor:
    """``conv1_silu`` in PyTorch: frames [B, R, F], weight [9, C], bias [C] -> [B, rows, F1, C] (the first
    ``rows`` output rows), in the inputs' dtype."""
    c = weight.shape[1]
    y = F.silu(F.conv2d(frames[:, None], weight.t().reshape(c, 1, 3, 3), bias, stride=2))  # [B, C, T1, F1]
    return y[:, :, :rows].permute(0, 2, 3, 1)


# -- bias_glu -----------------------------------------------------------------------------------------------
def bias_glu(x: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """x [B * T, 2d], bias [2d] -> out [B, T, d] = (x[:, :d] + bias[:d]) * sigmoid(x[:, d:] + bias[d:]); returns out."""
    _check(x=x, bias=bias, out=out)
    if out.dim() != 3 or x.dim() != 2:
        raise ValueError(f"x must be [B * T, 2d] and out [B, T, d], got {list(x.shape)} and {list(out.shape)}")
    b, t, d = out.shape
    if tuple(x.shape) != (b * t, 2 * d) or tuple(bias.shape) != (2 * d,):
        raise ValueError(f"x must be [{b * t}, {2 * d}] and bias [{2 * d}] for out {list(out.shape)}, got "
                         f"{list(x.shape)} and {list(bias.shape)}")  # fmt: skip
    load().bias_glu_f32(
        b, t, d, x.data_ptr(), x.stride(0), bias.contiguous().data_ptr(), out.data_ptr(), out.stride(0), out.stride(1)
    )
    return out


def bias_glu_reference(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``bias_glu`` in PyTorch: x [N, 2d], bias [2d] -> [N, d]."""
    return F.glu(x + bias, dim=-1)


# -- dwconv_ln_silu -----------------------------------------------------------------------------------------
def dwconv_ln_silu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    norm_weight: torch.Tensor,
    norm_bias: torch.Tensor,
    eps: float,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """x [B, K - 1 + T, d] (K - 1 rows of left context, then T rows; any batch and time strides), weight [K, d]
    (tap k of channel j at [k, j]), bias, norm_weight, norm_bias [d] -> out [B * T, d] = silu(layer_norm(causal
    depthwise conv)) (float32, contiguous)."""
    _check(x=x, weight=weight, bias=bias, norm_weight=norm_weight, norm_bias=norm_bias)
    if x.dim() != 3 or weight.dim() != 2 or weight.shape[1] != x.shape[2] or not weight.is_contiguous():
        raise ValueError(f"x must be [B, K - 1 + T, d] and weight a contiguous [K, d], got {list(x.shape)} and "
                         f"{list(weight.shape)}")  # fmt: skip
    b, rows, d = x.shape
    k = weight.shape[0]
    t = rows - (k - 1)
    if t < 1:
        raise ValueError(f"x has {rows} rows: a {k}-tap conv needs at least {k}")
    for name, v in (("bias", bias), ("norm_weight", norm_weight), ("norm_bias", norm_bias)):
        if tuple(v.shape) != (d,):
            raise ValueError(f"{name} must be [{d}], got {list(v.shape)}")
    if out is None:
        out = torch.empty(b * t, d, dtype=torch.float32)
    elif tuple(out.shape) != (b * t, d) or not out.is_contiguous() or out.dtype != torch.float32:
        raise ValueError(f"out must be a contiguous float32 [{b * t}, {d}], got {list(out.shape)}")
    load().dwconv_ln_silu_f32(
        b, t, k, d, x.data_ptr(), x.stride(0), x.stride(1), weight.data_ptr(), bias.contiguous().data_ptr(),
        norm_weight.contiguous().data_ptr(), norm_bias.contiguous().data_ptr(), eps, out.data_ptr(),
    )  # fmt: skip
    return out


def dwconv_ln_silu_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    norm_weight: torch.Tensor,
    norm_bias: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """``dwconv_ln_silu`` in PyTorch: x [B, K - 1 + T, d], weight [K, d] -> [B * T, d]."""
    b, rows, d = x.shape
    k = weight.shape[0]
    conv = (x.unfold(1, k, 1) * weight.t()).sum(-1) + bias  # [B, T, d, K] -> [B, T, d]
    return F.silu(F.layer_norm(conv, (d,), norm_weight, norm_bias, eps)).reshape(b * (rows - k + 1), d)
