"""Causal linear attention (Katharopoulos et al. 2020, Eq. 12), with optional decay, in several forms.

Layout: q, k: [B, T, H, Dk] (already feature-mapped, non-negative), v: [B, T, H, Dv]; out: [B, T, H, Dv].
State: LinearAttentionState(S: [B, H, Dk, Dv], z: [B, H, Dk]), always float32 (float64 for float64 inputs).

Backends (each its own module, same signature):
    reference  masked quadratic form, the ground truth (float64-capable)
    chunked    chunkwise-parallel PyTorch, the CPU default; memory linear in T
    recurrent  step by step with the carried state: the streaming form
    triton     fused forward and backward kernels for CUDA (CPU only under TRITON_INTERPRET=1)
``backend="auto"`` picks triton on CUDA and chunked on CPU. Asking for an unavailable backend raises;
a fallback (auto on CUDA without triton) warns.

Streaming: ``chunk_step(q, k, v, state, backend="torch" | "c")`` (``step.py``) is the one step entry point:
it continues a carried state by a short chunk in the [B, H, T, D] layout, either in a dozen batched PyTorch
ops (``recurrent.recurrent_chunk_step``) or, for inference on the CPU, in one C pass over each stream's state
(``cpu_step.fused_chunk_step``: float32, in place; compiled on first use; loud where it cannot be built).
``causal_linear_attention_step(q, k, v, state)`` is its checked form in the [B, T, H, D] layout: same maths
and results as ``causal_linear_attention(..., initial_state=state)``, but lean: no backend dispatch, no
autograd Function.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from collections.abc import Callable

import torch

from kernels.linear_attention.state import LinearAttentionState, check_state
from kernels.linear_attention.step import (
    STEP_BACKENDS,
    STEP_FEATURE_MAPS,
    ChunkGates,
    CKernelUnavailable,
    c_available,
    chunk_gates,
    chunk_step,
    load_c,
)

__all__ = [
    "BACKENDS",
    "STEP_BACKENDS",
    "STEP_FEATURE_MAPS",
    "CKernelUnavailable",
    "ChunkGates",
    "LinearAttentionState",
    "available_backends",
    "c_available",
    "causal_linear_attention",
    "causal_linear_attention_step",
    "chunk_gates",
    "chunk_step",
    "load_c",
]

log = logging.getLogger(__name__)

BACKENDS = ("reference", "chunked", "recurrent", "triton")


def _load_backend(name: str) -> Callable:
    module = importlib.import_module(f"kernels.linear_attention.{name}")
    return getattr(module, f"causal_linear_attention_{name}")


def triton_available(device: torch.device) -> tuple[bool, str]:
    """Whether the triton backend can run on ``device``, and why not."""
    try:
        import triton  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the install
        return False, f"triton is not installed ({exc})"
    if device.type == "cuda":
        return True, ""
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return True, ""
    return False, f"triton needs a CUDA device (or TRITON_INTERPRET=1 on CPU); got device {device}"


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    device = torch.device(device)
    names = ["reference", "chunked", "recurrent"]
    if triton_available(device)[0]:
        names.append("triton")
    return names


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in (*BACKENDS, "auto"):
        raise ValueError(f"unknown backend {backend!r}; expected one of {('auto', *BACKENDS)}")
    if backend == "auto":
        if device.type != "cuda":
            return "chunked"
        ok, why = triton_available(device)
        if ok:
            return "triton"
        warnings.warn(f"backend='auto' falls back to 'chunked' on {device}: {why}", RuntimeWarning, stacklevel=3)
        return "chunked"
    if backend == "triton":
        ok, why = triton_available(device)
        if not ok:
            raise ValueError(f"backend 'triton' is unavailable: {why}")
    return backend


def _validate(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, initial_state: LinearAttentionState | None, eps: float
) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"{name} must be [B, T, H, D], got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be [B, T, H, Dv] matching q's [B, T, H]; got q {tuple(q.shape)}, v {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must share a device, got {q.device}, {k.device}, {v.device}")
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    if T == 0:
        raise ValueError(f"sequence length T must be >= 1, got q of shape {tuple(q.shape)}")
    if min(B, H, Dk, Dv) == 0:
        raise ValueError(f"empty dimension in q {tuple(q.shape)} / v {tuple(v.shape)}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if initial_state is not None:
        check_state(initial_state, batch=B, heads=H, dk=Dk, dv=Dv, device=q.device, what="initial_state")
        S, z = initial_state
        if S.dtype not in (torch.float32, torch.float64) or z.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"initial_state must be float32 (or float64), got S {S.dtype}, z {z.dtype}")


def _decay_kind(decay: torch.Tensor, q: torch.Tensor) -> str:
    """``"head"`` for [H] gates, ``"step"`` for [B, T, H] log gates; ValueError for anything else."""
    B, T, H, _ = q.shape
    if not isinstance(decay, torch.Tensor):
        raise ValueError(f"decay must be a tensor of shape [H] or [B, T, H], got {type(decay).__name__}")
    if decay.device != q.device:
        raise ValueError(f"decay is on {decay.device} but q is on {q.device}")
    if tuple(decay.shape) == (H,):
        return "head"
    if tuple(decay.shape) == (B, T, H):
        return "step"
    raise ValueError(f"decay must have shape [H]=({H},) or [B, T, H]=({B}, {T}, {H}), got {tuple(decay.shape)}")


def _log_decay(decay: torch.Tensor | None, q: torch.Tensor) -> torch.Tensor | None:
    """Normalise ``decay`` to per-step log gates [B, T, H] (float32, or float64 for float64 inputs)."""
    if decay is None:
        return None
    B, T, H, _ = q.shape
    dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    if _decay_kind(decay, q) == "head":
        d = decay.detach()
        if not bool(torch.all((d > 0) & (d <= 1))):
            raise ValueError(f"per-head decay must lie in (0, 1], got {d.tolist()}")
        return torch.log(decay.to(dtype)).view(1, 1, H).expand(B, T, H)
    d = decay.detach()
    if not bool(torch.all(torch.isfinite(d) & (d <= 0))):
        bad = d[~(torch.isfinite(d) & (d <= 0))]
        raise ValueError(
            f"per-step decay gates are log g_t and must be finite and <= 0 (g in (0, 1]); "
            f"got {bad.numel()} bad values, e.g. {bad.flatten()[:4].tolist()}"
        )
    return decay.to(dtype)


def causal_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    initial_state: LinearAttentionState | None = None,
    decay: torch.Tensor | None = None,
    backend: str = "auto",
    chunk_size: int = 64,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Causal linear attention with an optional carried state and decay.

    Args:
        q, k: [B, T, H, Dk] feature-mapped (non-negative) queries and keys.
        v: [B, T, H, Dv] values.
        initial_state: state returned by a previous call; continues that call exactly.
        decay: None (the paper's pure sum), a per-head constant g in (0, 1] of shape [H], or per-step
            log-space gates log g_t <= 0 of shape [B, T, H].
        backend: "auto", "reference", "chunked", "recurrent" or "triton".
        chunk_size: chunk length for the chunked and triton backends.
        eps: added to the normaliser phi(q) . z.

    Returns:
        out [B, T, H, Dv] in q's dtype, and the final LinearAttentionState (float32).
    """
    _validate(q, k, v, initial_state, eps)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    log_decay = _log_decay(decay, q)
    name = _resolve_backend(backend, q.device)
    fn = _load_backend(name)
    return fn(q, k, v, log_decay=log_decay, initial_state=initial_state, eps=eps, chunk_size=chunk_size)


def _as(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x if x.dtype == dtype else x.to(dtype)


def _step_log_gates(decay: torch.Tensor | None, q: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """``decay`` ([H] gates or [B, T, H] log gates) -> log gates [B or 1, H, T] in ``dtype`` (shapes checked)."""
    if decay is None:
        return None
    _, T, H, _ = q.shape
    if _decay_kind(decay, q) == "head":
        return torch.log(_as(decay, dtype)).view(1, H, 1).expand(1, H, T)
    return _as(decay, dtype).transpose(1, 2)


def causal_linear_attention_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: LinearAttentionState,
    *,
    decay: torch.Tensor | None = None,
    eps: float = 1e-6,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Continue ``state`` by a chunk of T frames: the streaming form, for short chunks.

    Args and results as ``causal_linear_attention`` with ``initial_state=state`` (q, k [B, T, H, Dk], v
    [B, T, H, Dv]; decay None, [H] gates in (0, 1] or [B, T, H] log gates; out [B, T, H, Dv] in q's dtype,
    the new float32 state). Differences, all for a per-chunk hot path:

    - shapes, dtypes and devices are checked (Python only); decay *values* are not range-checked
      (``causal_linear_attention`` does that; a model's sigmoid / logsigmoid gates are in range by
      construction);
    - no backend choice: the chunk goes through ``chunk_step`` (its PyTorch backend) in pieces of at most
      ``chunk_size`` frames (memory O(T chunk_size) for any T);
    - plain PyTorch ops, differentiable; ``state`` is never modified;
    - ``out`` is a [B, T, H, Dv] view of a [B, H, T, Dv] tensor. Inputs that are such views (a [B, H, T, D]
      tensor transposed) are used without a copy.
    """
    if state is None:
        raise ValueError("causal_linear_attention_step needs a state (LinearAttentionState.zeros to start)")
    _validate(q, k, v, state, eps)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    sdtype = torch.float64 if torch.float64 in (q.dtype, state.S.dtype) else torch.float32
    log_g = _step_log_gates(decay, q, sdtype)
    qh, kh, vh = (_as(x, sdtype).transpose(1, 2) for x in (q, k, v))  # [B, H, T, D]
    state = LinearAttentionState(_as(state.S, sdtype), _as(state.z, sdtype))
    out, state = chunk_step(qh, kh, vh, state, decay=log_g, eps=eps, chunk_size=chunk_size)
    return _as(out.transpose(1, 2), q.dtype), state
