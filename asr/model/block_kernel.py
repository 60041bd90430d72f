"""The conv module's pointwise parts in C, for the CPU streaming step (``block_kernel.c``).

``bias_glu(x, bias, out)``: GLU(x + bias) written into ``out`` (any batch and time strides: PackedStep passes
the rows after the cached ones of the buffer the depthwise conv reads); ``dwconv_ln_silu(x, weight, bias,
norm_weight, norm_bias, eps)``: the causal depthwise conv over that buffer, LayerNorm and SiLU in one pass.
Float32 CPU, inference. Tested against PyTorch (tests/asr/model/test_block_kernel.py). Built on first use
(``kernels.cbuild``).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from kernels.cbuild import FLOAT, LONG, PTR, CKernelUnavailable, build, check_float32_cpu

__all__ = ["CKernelUnavailable", "bias_glu", "dwconv_ln_silu", "load"]

_SOURCE = Path(__file__).with_name("block_kernel.c")


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL:
    """Compile (once per source, compiler and CPU) and load the library; raises CKernelUnavailable."""
    functions = {
        "bias_glu_f32": (None, [LONG, LONG, LONG, PTR, LONG, PTR, PTR, LONG, LONG]),
        "dwconv_ln_silu_f32": (None, [LONG] * 4 + [PTR, LONG, LONG] + [PTR] * 4 + [FLOAT, PTR]),
    }
    return build("block", _SOURCE, functions=functions, fallback="use the PyTorch step (kernel='torch')")


def _check(**tensors: torch.Tensor) -> None:
    check_float32_cpu(**tensors)
    for name, x in tensors.items():
        if x.stride(-1) != 1:
            raise ValueError(f"{name} needs a contiguous last dimension, got strides {x.stride()}")


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


def dwconv_ln_silu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    norm_weight: torch.Tensor,
    norm_bias: torch.Tensor,
    eps: float,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """x [B, K - 1 + T, d] (the cached rows, then the chunk's; any batch and time strides), weight [K, d] (tap
    k of channel j at [k, j]), bias, norm_weight, norm_bias [d] -> out [B * T, d] = silu(layer_norm(causal
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
