"""The recurrent chunk step fused for the CPU (``cpu_step.c``): one pass over each stream's state.

``fused_chunk_step`` is ``recurrent.recurrent_chunk_step(..., inplace=True)`` for float32 CPU tensors, for
inference (no autograd), with the feature map (elu+1 or relu, on q and k) and the attention's per-head RMS
output norm optionally fused in. The PyTorch form
sweeps a big batch's state five times per chunk (read-out, decay, update's read and write); this one reads
and writes it once. Tested against ``recurrent_chunk_step`` and the float64 reference (tests/kernels/
test_cpu_step.py): outputs and the state out, for every decay form and strided inputs.

The C source is compiled on first use for this CPU and cached (``kernels.cbuild``); ``available()`` says
whether that works here, ``load()`` raises :class:`CpuKernelUnavailable` with the compiler's message when it
does not. Called through ctypes: no PyTorch headers, a compile of about a second.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch

from kernels.cbuild import FLOAT, INT, LONG, PTR, CKernelUnavailable, build, check_float32_cpu
from kernels.linear_attention.recurrent import ChunkGates
from kernels.linear_attention.state import LinearAttentionState

__all__ = ["CpuKernelUnavailable", "available", "fused_chunk_step", "load"]

_SOURCE = Path(__file__).with_name("cpu_step.c")
_HEADERS = (Path(__file__).with_name("cpu_step_body.h"),)  # included by the source: part of the cache key
CpuKernelUnavailable = CKernelUnavailable  # the kernel cannot be built or loaded here (no C compiler, say)
_PHI = {None: 0, "elu+1": 1, "relu": 2}  # the kernel's feature-map codes


@lru_cache(maxsize=1)
def load() -> ctypes.CDLL:
    """Compile (once per source, compiler and CPU) and load the kernel library; raises CpuKernelUnavailable."""
    signature = [LONG] * 5 + [PTR, LONG, LONG, LONG] * 3 + [PTR, PTR] + [PTR] * 4 + [LONG]
    signature += [PTR, LONG, LONG, LONG] + [FLOAT, INT, FLOAT, INT]
    functions = {"chunk_step_f32": (ctypes.c_int, signature)}
    fallback = "use the PyTorch backend (chunk_step(..., backend='torch'))"
    return build("cpu_step", _SOURCE, _HEADERS, functions=functions, fallback=fallback)


def available() -> bool:
    """Whether the kernel builds and loads here (compiles it on the first call)."""
    try:
        load()
    except CpuKernelUnavailable:
        return False
    return True


def _view(x: torch.Tensor, name: str, shape: tuple[int, ...]) -> list:
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} must be {list(shape)}, got {list(x.shape)}")
    if x.stride(-1) != 1 and x.shape[-1] > 1:
        raise ValueError(f"{name} needs a contiguous last dimension, got strides {x.stride()}")
    return [x.data_ptr(), x.stride(0), x.stride(1), x.stride(2)]


def _gate(x: torch.Tensor, name: str, batch: int, tail: tuple[int, ...]) -> tuple[int, int]:
    if x.dim() != 1 + len(tail) or x.shape[0] not in (1, batch) or tuple(x.shape[1:]) != tail:
        raise ValueError(f"gates.{name} must be [1 or {batch}, {', '.join(map(str, tail))}], got {list(x.shape)}")
    if x.dtype != torch.float32 or not x.is_contiguous() or x.device.type != "cpu":
        raise ValueError(f"gates.{name} must be a contiguous float32 CPU tensor")
    return x.data_ptr(), x.shape[0]


def fused_chunk_step(
    q: torch.Tensor,  # [B, H, T, Dk], feature-mapped unless phi is given (any strides, contiguous last dim)
    k: torch.Tensor,  # [B, H, T, Dk]
    v: torch.Tensor,  # [B, H, T, Dv]
    state: LinearAttentionState,  # S [B, H, Dk, Dv], z [B, H, Dk]: contiguous float32, updated in place
    *,
    gates: ChunkGates | None = None,  # chunk_gates(log_g) for a decay ([1|B, H, ...]), None for none
    eps: float = 1e-6,
    out: torch.Tensor | None = None,  # [B, H, T, Dv] result (any strides, contiguous last dim)
    rms_eps: float | None = None,  # apply the per-head RMS norm to the result with this epsilon
    phi: str | None = None,  # apply this feature map to q and k first: "elu+1" or "relu" (None: already mapped)
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Advance the state by a chunk of T frames in place (the caller gives the state up) and return
    (out, state). Float32 CPU tensors only; no autograd. Raises ValueError on a bad argument and
    CpuKernelUnavailable when the kernel cannot be built here."""
    if phi not in _PHI:
        raise ValueError(f"phi must be one of {list(_PHI)}, got {phi!r}")
    if q.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be [B, H, T, D], got q {list(q.shape)} and v {list(v.shape)}")
    S, z = state
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    tensors = {"q": q, "k": k, "v": v, "S": S, "z": z} | ({} if out is None else {"out": out})
    check_float32_cpu(**tensors)
    if torch.is_grad_enabled() and any(x.requires_grad for x in tensors.values()):
        raise ValueError("fused_chunk_step is for inference: no autograd (use recurrent_chunk_step)")
    if tuple(S.shape) != (B, H, Dk, Dv) or tuple(z.shape) != (B, H, Dk):
        raise ValueError(
            f"state must be S [{B}, {H}, {Dk}, {Dv}] and z [{B}, {H}, {Dk}], got {list(S.shape)}, {list(z.shape)}"
        )
    if not (S.is_contiguous() and z.is_contiguous()):
        raise ValueError("the state (S and z) must be contiguous: it is updated in place")
    if out is None:
        out = torch.empty(B, H, T, Dv, dtype=torch.float32)
    args = [B, H, T, Dk, Dv]
    args += _view(q, "q", (B, H, T, Dk)) + _view(k, "k", (B, H, T, Dk)) + _view(v, "v", (B, H, T, Dv))
    args += [S.data_ptr(), z.data_ptr()]
    if gates is None:
        args += [None] * 4 + [0]
    else:
        pair, g = _gate(gates.pair, "pair", B, (H, T, T))
        query, g1 = _gate(gates.query, "query", B, (H, T, 1))
        key, g2 = _gate(gates.key, "key", B, (H, T, 1))
        whole, g3 = _gate(gates.whole, "whole", B, (H, 1, 1))
        if len({g, g1, g2, g3}) != 1:
            raise ValueError("the gates' batch sizes differ")
        args += [pair, query, key, whole, int(g == B and B > 1)]
    args += _view(out, "out", (B, H, T, Dv))
    args += [eps, int(rms_eps is not None), 0.0 if rms_eps is None else rms_eps, _PHI[phi]]
    if load().chunk_step_f32(*args):
        raise MemoryError("fused_chunk_step: the kernel's workspace could not be allocated")
    return out, state
