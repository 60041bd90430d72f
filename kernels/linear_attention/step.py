"""``chunk_step``: the one entry point that continues a carried state by a short chunk, in either backend.

    torch  ``recurrent.recurrent_chunk_step``: plain PyTorch ops, any float dtype and device, differentiable
           (without ``out`` and ``inplace``)
    c      ``cpu_step.fused_chunk_step``: one C pass over each (stream, head) state, float32 CPU tensors,
           inference only; compiled on first use (``kernels.cbuild``)

Both take the same arguments and give the same results up to float rounding (tests/kernels/test_chunk_step.py).
Asking for the C backend where it cannot be built raises :class:`CKernelUnavailable` with the reason (no
silent fallback); ``c_available()`` says beforehand whether it can.

Layout: q, k [B, H, T, Dk] and v [B, H, T, Dv] (any strides; the C backend wants a contiguous last dimension),
state S [B, H, Dk, Dv], z [B, H, Dk]. Inputs are taken in the state's dtype (the caller converts).
"""

from __future__ import annotations

import torch

from kernels.cbuild import CKernelUnavailable
from kernels.feature_maps import elu_plus_one, relu
from kernels.linear_attention import cpu_step
from kernels.linear_attention.recurrent import ChunkGates, chunk_gates, recurrent_chunk_step
from kernels.linear_attention.state import LinearAttentionState

__all__ = [
    "STEP_BACKENDS",
    "STEP_FEATURE_MAPS",
    "CKernelUnavailable",
    "ChunkGates",
    "c_available",
    "chunk_gates",
    "chunk_step",
    "load_c",
]

STEP_BACKENDS = ("torch", "c")
#: feature maps the step can apply to q and k itself (the C backend fuses them into its pass)
STEP_FEATURE_MAPS = {"elu+1": elu_plus_one, "relu": relu}


def c_available() -> bool:
    """Whether the C backend builds and loads here (compiles it on the first call)."""
    return cpu_step.available()


def load_c() -> None:
    """Build (once per machine) and load the C backend; raises CKernelUnavailable with the reason."""
    cpu_step.load()


def _rms_norm(o: torch.Tensor, eps: float) -> torch.Tensor:
    """The per-head RMS norm without gains, o / sqrt(mean(o^2) + eps) over the last dimension (the C kernel's
    ``rms`` epilogue)."""
    return o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + eps)


def chunk_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: LinearAttentionState,
    *,
    decay: ChunkGates | torch.Tensor | None = None,
    eps: float = 1e-6,
    out: torch.Tensor | None = None,
    inplace: bool = False,
    feature_map: str | None = None,
    rms_eps: float | None = None,
    chunk_size: int | None = None,
    backend: str = "torch",
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Advance ``state`` by a chunk of T frames; returns (out [B, H, T, Dv], new state).

    Args:
        decay: None (no decay), log gates [1 or B, H, T] (<= 0; not range-checked here), or the chunk's
            ``ChunkGates`` computed beforehand (``chunk_gates(log_g)``: a constant decay's are the same every
            chunk of T frames; then the chunk goes in one piece).
        out: a [B, H, T, Dv] tensor to write the result into (any strides, e.g. a transposed view of a
            [B, T, H, Dv] buffer); no autograd.
        inplace: the caller gives the state up: S and z are updated in place and returned (contiguous
            state; no autograd). Otherwise ``state`` is never modified.
        feature_map: None (q and k come mapped) or a name in ``STEP_FEATURE_MAPS``, applied to q and k first.
        rms_eps: apply the per-head RMS norm (no gains) to the result with this epsilon.
        chunk_size: process the chunk in pieces of at most this many frames (memory O(T chunk_size)).
        backend: "torch" or "c" (see the module docstring); "c" raises CKernelUnavailable where it cannot
            be built and ValueError for anything but float32 CPU tensors without autograd.
    """
    if backend not in STEP_BACKENDS:
        raise ValueError(f"backend must be one of {STEP_BACKENDS}, got {backend!r}")
    if feature_map is not None and feature_map not in STEP_FEATURE_MAPS:
        raise ValueError(f"feature_map must be None or one of {sorted(STEP_FEATURE_MAPS)}, got {feature_map!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be [B, H, T, D], got {list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    B, H, T, _ = q.shape
    Dv = v.shape[-1]
    if backend == "c":
        load_c()  # loud: CKernelUnavailable with the compiler's message
    pieces = T if chunk_size is None else chunk_size
    if isinstance(decay, ChunkGates) and pieces < T:
        raise ValueError(f"precomputed ChunkGates cover one piece; this chunk of {T} frames goes in pieces of {pieces}")
    tracked = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v, *state))
    if backend == "c":
        if not inplace:  # the C kernel always updates in place: on a copy of a state not given up
            state = LinearAttentionState(
                state.S.clone(memory_format=torch.contiguous_format),
                state.z.clone(memory_format=torch.contiguous_format),
            )
        inplace = True
    elif feature_map is not None:
        phi = STEP_FEATURE_MAPS[feature_map]
        q, k = phi(q), phi(k)
    if out is None and not tracked:
        out = torch.empty(B, H, T, Dv, dtype=state.S.dtype, device=q.device)
    outs = []
    for a in range(0, T, pieces):
        n = min(pieces, T - a)
        span = slice(a, a + n)
        whole = n == T  # the usual case: the whole chunk at once (no slicing)
        qs, ks, vs = (q, k, v) if whole else (q[:, :, span], k[:, :, span], v[:, :, span])
        os = None if out is None else (out if whole else out[:, :, span])
        if decay is None or isinstance(decay, ChunkGates):
            gates = decay
        else:
            gates = chunk_gates(decay if whole else decay[..., span])
        if backend == "c":
            if gates is not None:
                gates = ChunkGates(*(g.contiguous() for g in gates))
            _, state = cpu_step.fused_chunk_step(
                qs, ks, vs, state, gates=gates, eps=eps, out=os, rms_eps=rms_eps, phi=feature_map
            )
        else:
            o, state = recurrent_chunk_step(qs, ks, vs, state, gates=gates, eps=eps, out=os, inplace=inplace)
            if os is None:
                outs.append(o)
            inplace = inplace or not tracked  # later pieces update the state this call made
    if out is None:
        out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        if rms_eps is not None:
            out = _rms_norm(out, rms_eps)
    elif backend == "torch" and rms_eps is not None:
        out.copy_(_rms_norm(out, rms_eps))
    return out, state
