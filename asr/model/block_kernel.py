"""The conv module's gate in C, for the CPU streaming step (``block_kernel.c``).

``bias_glu(x, bias, out)``: GLU(x + bias) written into ``out`` (any batch and time strides: PackedStep passes
the rows after the cached ones of the buffer the depthwise conv reads). Float32 CPU, inference. Tested
against PyTorch's GLU (tests/asr/model/test_block_kernel.py). Built on first use (``kernels.cbuild``).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from kernels.cbuild import LONG, PTR, CKernelUnavailable, build

__all__ = ["CKernelUnavailable", "bias_glu", "load"]

_SOURCE = Path(__file__).with_name("block_kernel.c")


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL:
    """Compile (once per source, compiler and CPU) and load the library; raises CKernelUnavailable."""
    functions = {"bias_glu_f32": (None, [LONG, LONG, LONG, PTR, LONG, PTR, PTR, LONG, LONG])}
    return build("block", _SOURCE, functions=functions, fallback="use the PyTorch step (kernel='torch')")


def _check(**tensors: torch.Tensor) -> None:
    for name, x in tensors.items():
        if x.dtype != torch.float32 or x.device.type != "cpu":
            raise ValueError(f"{name} must be a float32 CPU tensor, got {x.dtype} on {x.device}")
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
