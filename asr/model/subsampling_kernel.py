"""The subsampling's first conv with its SiLU in C, for the CPU streaming step (``subsampling_kernel.c``).

``conv1_silu(frames, weight, bias, out)`` writes silu(conv2d(frames, 3x3, stride 2) + bias), channels-last,
into ``out`` (any batch and time strides: PackedStep passes the rows after the cached one of the buffer the
second conv reads, so neither the cached row nor the activation is ever copied). Float32 CPU, inference.
Tested against ``F.silu(F.conv2d(...))`` (tests/asr/model/test_subsampling_kernel.py). Built on first use
(``kernels.cbuild``).
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from kernels.cbuild import LONG, PTR, CKernelUnavailable, build, check_float32_cpu

__all__ = ["CKernelUnavailable", "conv1_silu", "load"]

_SOURCE = Path(__file__).with_name("subsampling_kernel.c")


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL:
    """Compile (once per source, compiler and CPU) and load the library; raises CKernelUnavailable."""
    functions = {"conv1_silu_f32": (None, [LONG] * 4 + [PTR, LONG, LONG, PTR, PTR, PTR, LONG, LONG])}
    return build("subsampling", _SOURCE, functions=functions, fallback="use the PyTorch step (kernel='torch')")


def conv1_silu(frames: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """frames [B, R, F] (contiguous rows), weight [9, C] (tap = time * 3 + frequency, contiguous), bias [C]
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
