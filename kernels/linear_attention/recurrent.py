"""Recurrent (streaming) causal linear attention: one step at a time with the carried state (paper Eq. 16-20).

    S_t = g_t S_{t-1} + k_t v_t^T,   z_t = g_t z_{t-1} + k_t,   out_t = q_t S_t / (q_t . z_t + eps)

``recurrent_step`` is the per-frame function; it is pure (returns a new state, never touches the one passed in).
``recurrent_chunk_step`` is the same recurrence advanced by a short chunk of T frames at once (what a streaming
model step calls, through ``kernels.linear_attention.causal_linear_attention_step``): within the chunk the
masked quadratic form, across it the carried state, in a dozen batched ops. ``causal_linear_attention_recurrent``
is the backend: a loop over T, so it is exact but slow, and differentiable. The state is float32 whatever the
input dtype (float64 for float64 inputs; ``recurrent_step`` also keeps a float64 incoming state in float64),
which keeps hours of fp16 audio from overflowing the normaliser.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from kernels.linear_attention.state import LinearAttentionState, check_state

__all__ = [
    "ChunkGates",
    "causal_linear_attention_recurrent",
    "chunk_gates",
    "recurrent_chunk_step",
    "recurrent_step",
]


def _state_dtype(x: torch.Tensor, state: LinearAttentionState | None) -> torch.dtype:
    if x.dtype == torch.float64 or (state is not None and state.S.dtype == torch.float64):
        return torch.float64
    return torch.float32


def _check_step(q_t, k_t, v_t, state, log_g_t) -> None:
    for name, x in (("q_t", q_t), ("k_t", k_t), ("v_t", v_t)):
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a floating-point [B, H, D] tensor, got {shape}")
    if q_t.shape != k_t.shape or v_t.shape[:2] != q_t.shape[:2]:
        raise ValueError(
            f"q_t/k_t must be [B, H, Dk] and v_t [B, H, Dv] with matching B, H; got q_t {tuple(q_t.shape)}, "
            f"k_t {tuple(k_t.shape)}, v_t {tuple(v_t.shape)}"
        )
    if not (q_t.device == k_t.device == v_t.device):
        raise ValueError(f"q_t, k_t, v_t must share a device, got {q_t.device}, {k_t.device}, {v_t.device}")
    B, H, Dk = q_t.shape
    Dv = v_t.shape[-1]
    check_state(state, batch=B, heads=H, dk=Dk, dv=Dv, device=q_t.device, what="state")
    if log_g_t is not None and (not isinstance(log_g_t, torch.Tensor) or tuple(log_g_t.shape) != (B, H)):
        shape = tuple(log_g_t.shape) if isinstance(log_g_t, torch.Tensor) else type(log_g_t).__name__
        raise ValueError(f"log_g_t must be a [B, H]=({B}, {H}) tensor of log gates, got {shape}")


def recurrent_step(
    q_t: torch.Tensor,  # [B, H, Dk]
    k_t: torch.Tensor,  # [B, H, Dk]
    v_t: torch.Tensor,  # [B, H, Dv]
    state: LinearAttentionState,  # S [B, H, Dk, Dv], z [B, H, Dk]
    *,
    log_g_t: torch.Tensor | None = None,  # [B, H], log g_t <= 0 (None: no decay)
    eps: float = 1e-6,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """One step of causal linear attention. Returns out_t [B, H, Dv] in q_t's dtype and the new state.

    Pure: ``state`` is never modified. Use ``LinearAttentionState.zeros(B, H, Dk, Dv)`` to start a stream.
    Log gates are not range-checked here (a per-frame hot path); the batched entry point checks them.
    """
    _check_step(q_t, k_t, v_t, state, log_g_t)
    sdtype = _state_dtype(q_t, state)
    q, k, v, S, z = (x if x.dtype == sdtype else x.to(sdtype) for x in (q_t, k_t, v_t, state.S, state.z))
    if log_g_t is not None:
        g = torch.exp(log_g_t.to(sdtype))
        S = S * g[..., None, None]
        z = z * g[..., None]
    S = torch.addcmul(S, k.unsqueeze(-1), v.unsqueeze(-2))  # [B, H, Dk, Dv]  (a new tensor: pure)
    z = z + k
    num = (q.unsqueeze(-2) @ S).squeeze(-2)  # [B, H, Dv]
    den = (q * z).sum(-1, keepdim=True)  # [B, H, 1]
    return (num / (den + eps)).to(q_t.dtype), LinearAttentionState(S, z)


class ChunkGates(NamedTuple):
    """The decay factors of a chunk of T frames (``chunk_gates``), with c_t = sum_{r<=t} log g_r from the
    chunk start. They depend on the gates only: for a constant per-head decay, on H and T, so a caller that
    steps many chunks can compute them once."""

    pair: torch.Tensor  # [B|1, H, T, T]  exp(c_t - c_s) for s <= t, 0 above the diagonal
    query: torch.Tensor  # [B|1, H, T, 1]  exp(c_t): q_t decayed from the chunk start
    key: torch.Tensor  # [B|1, H, T, 1]  exp(c_T - c_s): k_s decayed to the chunk end
    whole: torch.Tensor  # [B|1, H, 1, 1]  exp(c_T): the carried state's decay over the whole chunk


def chunk_gates(log_g: torch.Tensor) -> ChunkGates:
    """log gates [B|1, H, T] (<= 0) -> the chunk's ChunkGates. Exponents of masked (future) pairs are zeroed
    before exp, so strong gates never overflow (a clamp would also cut the gradient of pairs at exactly 0,
    i.e. of gates g = 1)."""
    if not isinstance(log_g, torch.Tensor) or log_g.dim() != 3:
        shape = tuple(log_g.shape) if isinstance(log_g, torch.Tensor) else type(log_g).__name__
        raise ValueError(f"log_g must be a [B|1, H, T] tensor of log gates, got {shape}")
    c = log_g.cumsum(-1)  # [B|1, H, T]
    pair = torch.exp((c.unsqueeze(-1) - c.unsqueeze(-2)).tril()).tril()
    last = c[..., -1:]  # [B|1, H, 1]
    return ChunkGates(
        pair, torch.exp(c).unsqueeze(-1), torch.exp(last - c).unsqueeze(-1), torch.exp(last).unsqueeze(-1)
    )


def recurrent_chunk_step(
    q: torch.Tensor,  # [B, H, T, Dk]
    k: torch.Tensor,  # [B, H, T, Dk]
    v: torch.Tensor,  # [B, H, T, Dv]
    state: LinearAttentionState,  # S [B, H, Dk, Dv], z [B, H, Dk]
    *,
    log_g: torch.Tensor | None = None,  # [B or 1, H, T] log gates <= 0 (None: no decay)
    gates: ChunkGates | None = None,  # or the same decay as precomputed factors (chunk_gates(log_g))
    eps: float = 1e-6,
    out: torch.Tensor | None = None,  # optional [B, H, T, Dv] result tensor (any strides); no autograd
    inplace: bool = False,  # update state.S and state.z in place and return them; no autograd
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Advance the recurrence by a chunk of T frames. Returns out [B, H, T, Dv] in the state's dtype and the
    new state (fresh tensors: ``state`` is never modified). Inputs are taken as given: same dtype as the state,
    shapes checked by the caller. Cost O(T^2 D + T D^2) per head: meant for short chunks (T <= ~64).

    With c_t = sum_{r<=t} log g_r (from the chunk start):
        y_t   = sum_{s<=t} exp(c_t - c_s) (q_t . k_s) [v_s, 1] + exp(c_t) q_t [S_0, z_0]     (numerator, normaliser)
        S_T   = exp(c_T) S_0 + sum_s exp(c_T - c_s) k_s v_s^T,   z_T likewise with v_s -> 1
    ``out`` lets a caller receive the result in another layout (a transposed view of a [B, T, H, Dv]
    tensor, say) without a copy. ``inplace`` is for a caller that gives the state up (a batch of streams
    stacked for this step): the new state is written over the old one instead of into fresh tensors, which
    for a big batch halves the state's memory traffic (the state is most of the step's bytes).
    Differentiable (without ``out`` and ``inplace``): in-place ops touch only fresh results whose old values
    autograd does not need.
    """
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    G = B * H
    S, z = state
    if inplace and not (S.is_contiguous() and z.is_contiguous()):
        raise ValueError("inplace=True needs a contiguous state (S and z); stack or clone it first")
    if gates is None and log_g is not None:
        gates = chunk_gates(log_g)
    k3, v3 = k.reshape(G, T, Dk), v.reshape(G, T, Dv)  # [G, T, D] (views of contiguous inputs)
    A = torch.bmm(q.reshape(G, T, Dk), k3.transpose(1, 2))  # [G, T, T] scores q_t . k_s
    if gates is None:
        A = A.tril_()
        qs, kd = q, k3
    else:
        A = (A.view(B, H, T, T) * gates.pair).view(G, T, T)
        qs = q * gates.query  # q_t decayed from the chunk start
        kd = (k * gates.key).reshape(G, T, Dk)  # k_s decayed to the chunk end
    qs = qs.reshape(G, T, Dk)
    num = torch.bmm(A, v3).baddbmm_(qs, S.reshape(G, Dk, Dv))  # [G, T, Dv]
    den = A.sum(-1, keepdim=True).baddbmm_(qs, z.reshape(G, Dk, 1)).add_(eps)  # [G, T, 1]
    # S_T = exp(c_T) S_0 + kd^T v, z_T likewise: into S and z (inplace), a fresh decayed copy, or a fresh sum
    if inplace:
        if gates is not None:
            S.mul_(gates.whole)
            z.mul_(gates.whole[..., 0])
        S_new, z_new = S.view(G, Dk, Dv).baddbmm_(kd.transpose(1, 2), v3), z.view(G, Dk).add_(kd.sum(1))
    elif gates is not None:
        S_new = (S * gates.whole).view(G, Dk, Dv).baddbmm_(kd.transpose(1, 2), v3)  # [G, Dk, Dv]
        z_new = kd.sum(1).add_((z * gates.whole[..., 0]).view(G, Dk))  # [G, Dk]
    else:  # the caller's state is never written
        S_new = torch.baddbmm(S.reshape(G, Dk, Dv), kd.transpose(1, 2), v3)
        z_new = kd.sum(1).add_(z.reshape(G, Dk))
    if out is None:
        out = (num / den).view(B, H, T, Dv)
    else:
        torch.div(num.view(B, H, T, Dv), den.view(B, H, T, 1), out=out)
    return out, LinearAttentionState(S_new.view(B, H, Dk, Dv), z_new.view(B, H, Dk))


def causal_linear_attention_recurrent(
    q: torch.Tensor,  # [B, T, H, Dk]
    k: torch.Tensor,  # [B, T, H, Dk]
    v: torch.Tensor,  # [B, T, H, Dv]
    *,
    log_decay: torch.Tensor | None = None,  # [B, T, H], log g_t <= 0
    initial_state: LinearAttentionState | None = None,
    eps: float = 1e-6,
    chunk_size: int | None = None,  # unused: one step at a time
) -> tuple[torch.Tensor, LinearAttentionState]:
    """The streaming form as a backend: a loop over T of the same update as ``recurrent_step``.

    The normaliser rides as an extra value column (S' = [S, z], v' = [v, 1]) so a step is one fused
    multiply-add and one small matmul. Without autograd the state is updated in place (on a private copy).
    """
    sdtype = _state_dtype(q, None)  # like the other backends: float64 only for float64 inputs
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    G = B * H
    qs = q.to(sdtype).transpose(1, 2).reshape(G, T, 1, Dk)
    ks = k.to(sdtype).transpose(1, 2).reshape(G, T, Dk, 1)
    ones = torch.ones(B, T, H, 1, dtype=sdtype, device=q.device)
    vs = torch.cat([v.to(sdtype), ones], dim=-1).transpose(1, 2).reshape(G, T, 1, Dv + 1)
    gs = None if log_decay is None else torch.exp(log_decay.to(sdtype)).transpose(1, 2).reshape(G, T, 1, 1)
    if initial_state is None:
        S = torch.zeros(G, Dk, Dv + 1, dtype=sdtype, device=q.device)
    else:
        S = torch.cat([initial_state.S.to(sdtype), initial_state.z.to(sdtype).unsqueeze(-1)], dim=-1)
        S = S.reshape(G, Dk, Dv + 1)

    tracked = [x for x in (q, k, v, log_decay, *(initial_state or ())) if x is not None]
    steps = zip(qs.unbind(1), ks.unbind(1), vs.unbind(1), gs.unbind(1) if gs is not None else [None] * T)
    ys = []
    if torch.is_grad_enabled() and any(x.requires_grad for x in tracked):
        for q_t, k_t, v_t, g_t in steps:
            S = torch.baddbmm(S if g_t is None else S * g_t, k_t, v_t)
            ys.append(torch.bmm(q_t, S))
    else:  # no autograd: S is a fresh tensor here (zeros or a cat), so it is updated in place
        for q_t, k_t, v_t, g_t in steps:
            if g_t is not None:
                S.mul_(g_t)
            S.baddbmm_(k_t, v_t)
            ys.append(torch.bmm(q_t, S))
    y = torch.cat(ys, dim=1)  # [G, T, Dv + 1]
    out = y[..., :Dv] / (y[..., Dv:] + eps)
    out = out.reshape(B, H, T, Dv).transpose(1, 2).to(q.dtype)
    S = S.reshape(B, H, Dk, Dv + 1)
    return out, LinearAttentionState(S[..., :Dv].contiguous(), S[..., Dv].contiguous())
