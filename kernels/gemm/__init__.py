"""A matrix product in C for the few rows of a streaming step (``gemm.c``), with its plain PyTorch reference.

    panels = pack(weight_t)                      # a [K, N] weight (a Linear's, transposed), packed once
    y = linear(x, panels, bias)                  # y = x @ weight_t + bias, x [M, K] with M a few rows
    linear(x, panels, bias, out=y, accumulate=True)   # y += x @ weight_t + bias (a residual branch, in place)

At 4 rows (one stream, one 160 ms chunk) a linear layer's cost is reading its weight; BLAS GEMMs re-pack it on
every call. :func:`pack` lays the weight out once in 16-column panels (``gemm.c`` says why), in float16 where
every entry is exactly a float16 (a model stored in float16: half the bytes, the same products) and the CPU
widens float16 in hardware (F16C). Big products (many streams) belong to BLAS: callers choose by rows
(``SMALL_ROWS``). Float32 CPU tensors, inference only; :func:`linear_reference` is the same maths in PyTorch,
which the tests (tests/kernels/test_gemm.py) hold the C op to. The library is compiled on first use for this CPU
and cached (``kernels.cbuild``); ``load()`` raises :class:`CKernelUnavailable` with the compiler's message where
that fails (PackedStep then steps with PyTorch ops, saying why).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from kernels.cbuild import INT, LONG, PTR, CKernelUnavailable, build, check_float32_cpu

__all__ = [
    "PANEL",
    "SMALL_ROWS",
    "CKernelUnavailable",
    "PanelWeight",
    "exact_in_half",
    "features",
    "linear",
    "linear_reference",
    "linear_unchecked",
    "load",
    "pack",
]

_SOURCE = Path(__file__).with_name("gemm.c")

#: columns per panel (gemm.c's PANEL: two AVX2 vectors)
PANEL = 16
#: up to this many rows the panels beat MKL's GEMM on the bundled model's layers (tools/bench_gemm.py, AMD EPYC,
#: AVX2: 0.46x its time at 1 row, 0.63x at 4, par at 8, 1.3x at 16); callers send bigger products to BLAS
SMALL_ROWS = 8


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL:
    """Compile (once per source, compiler and CPU) and load the library; raises CKernelUnavailable."""
    signature = (None, [LONG, LONG, LONG, PTR, LONG, PTR, PTR, PTR, LONG, INT])
    functions = {"gemm_small_f32": signature, "gemm_small_f16": signature, "gemm_small_features": (INT, [])}
    return build("gemm", _SOURCE, functions=functions, fallback="use torch.addmm (linear_reference)")


def features() -> dict[str, bool]:
    """What this machine's build of the kernel has: ``vector`` (AVX2 + FMA blocks; else plain loops) and
    ``f16c`` (float16 panels widened in hardware; else in software, and :func:`pack` keeps float32)."""
    bits = load().gemm_small_features()
    return {"vector": bool(bits & 1), "f16c": bool(bits & 2)}


@dataclass(frozen=True)
class PanelWeight:
    """A [K, N] weight packed for :func:`linear`: ``panels`` [ceil(N / 16), K, 16], the last panel zero-padded."""

    panels: torch.Tensor  # float32 or float16, contiguous
    in_features: int  # K
    out_features: int  # N

    @property
    def half(self) -> bool:
        return self.panels.dtype == torch.float16


def exact_in_half(weight: torch.Tensor) -> bool:
    """Whether every entry of ``weight`` is exactly a float16 (so a float16 copy loses nothing)."""
    return bool(torch.equal(weight.to(torch.float16).to(weight.dtype), weight))


def pack(weight_t: torch.Tensor, *, half: bool | None = None) -> PanelWeight:
    """weight_t [K, N] float32 (a Linear's weight transposed) -> its panels. ``half``: store them in float16;
    None (default) decides it: float16 when every entry is exactly a float16 and the CPU has F16C; True refuses
    (ValueError) a weight that float16 would round."""
    check_float32_cpu(weight_t=weight_t)
    if weight_t.dim() != 2 or 0 in weight_t.shape:
        raise ValueError(f"weight_t must be a non-empty [K, N], got {list(weight_t.shape)}")
    exact = exact_in_half(weight_t)
    if half is None:
        half = exact and features()["f16c"]
    elif half and not exact:
        raise ValueError("this weight is not exact in float16: packing it in float16 would change its products")
    k, n = weight_t.shape
    count = -(-n // PANEL)
    padded = torch.zeros(k, count * PANEL, dtype=weight_t.dtype)
    padded[:, :n] = weight_t.detach()
    panels = padded.view(k, count, PANEL).transpose(0, 1).contiguous()  # [P, K, 16]
    return PanelWeight(panels.to(torch.float16) if half else panels, k, n)


def linear(
    x: torch.Tensor,
    weight: PanelWeight,
    bias: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
    accumulate: bool = False,
) -> torch.Tensor:
    """x [M, K] (rows contiguous, any row stride) -> out [M, N] = x @ W + bias, or with ``accumulate`` out +=
    x @ W + bias (``out`` required then). ``out`` may have any row stride but must not overlap x. Returns out."""
    check_float32_cpu(x=x)
    k, n = weight.in_features, weight.out_features
    if x.dim() != 2 or x.shape[1] != k or x.stride(1) != 1:
        raise ValueError(f"x must be [M, {k}] with contiguous rows, got {list(x.shape)} strides {x.stride()}")
    m = x.shape[0]
    if bias is not None:
        check_float32_cpu(bias=bias)
        if tuple(bias.shape) != (n,) or not bias.is_contiguous():
            raise ValueError(f"bias must be a contiguous [{n}], got {list(bias.shape)}")
    if out is None:
        if accumulate:
            raise ValueError("accumulate=True adds into out: pass out")
        out = torch.empty(m, n, dtype=torch.float32)
    else:
        check_float32_cpu(out=out)
        if tuple(out.shape) != (m, n) or out.stride(1) != 1:
            raise ValueError(
                f"out must be [{m}, {n}] with contiguous rows, got {list(out.shape)} strides {out.stride()}"
            )
    return linear_unchecked(x, weight, bias, out, accumulate) if m else out


def linear_unchecked(
    x: torch.Tensor, weight: PanelWeight, bias: torch.Tensor | None, out: torch.Tensor, accumulate: bool
) -> torch.Tensor:
    """:func:`linear` without its checks, for a caller that guarantees them (the packed step, whose layers made
    the weights and the buffers): float32 CPU tensors, x [M >= 1, K] and out [M, N] with contiguous rows, not
    overlapping, bias a contiguous [N] or None. Anything else reads or writes out of bounds. Returns out."""
    entry = load().gemm_small_f16 if weight.panels.dtype == torch.float16 else load().gemm_small_f32
    entry(
        x.shape[0], weight.in_features, weight.out_features, x.data_ptr(), x.stride(0), weight.panels.data_ptr(),
        bias.data_ptr() if bias is not None else None, out.data_ptr(), out.stride(0), int(accumulate),
    )  # fmt: skip
    return out


def linear_reference(
    x: torch.Tensor,
    weight_t: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
    accumulate: bool = False,
) -> torch.Tensor:
    """``linear`` in PyTorch (any float dtype): x [M, K], weight_t [K, N] -> x @ weight_t + bias, added into
    ``out`` with ``accumulate``."""
    y = x @ weight_t
    if bias is not None:
        y = y + bias
    if accumulate:
        if out is None:
            raise ValueError("accumulate=True adds into out: pass out")
        return out.add_(y)
    return y if out is None else out.copy_(y)
