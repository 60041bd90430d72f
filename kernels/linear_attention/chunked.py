"""Chunkwise-parallel causal linear attention in plain PyTorch: the CPU default.

The sequence is cut into N chunks of C steps. Within a chunk the masked quadratic form is used (one batched
matmul over every chunk at once); between chunks the state is carried by a scan over the N per-chunk
contributions K^T V (decayed when there are gates). Time O(T C D + T D^2), memory linear in T.

The normaliser rides along as an extra value column: with v' = [v, 1] and S' = [S, z], the numerator
q S and the denominator q z come out of the same matmuls. The core is the *un-normalised* decayed form

    y_t = sum_{s<=t} exp(c_t - c_s) (q_t . k_s) v'_s + exp(c_t) q_t S'_0,     c_t = sum_{r<=t} log g_r

(c restarts at every chunk boundary; the whole-chunk decay exp(c_last) carries the state across), and
out = y[:, :Dv] / (y[:, Dv] + eps).

The backward is hand-written (paper Eq. 13-15 in chunked form): a reverse scan of the state gradient
dS_n = g_n dS_{n+1} + (q exp(c))^T dy over chunks gives dk and dv from the *future* queries; dq uses the
chunk start states saved by the forward (N of them: T D^2 / C numbers). The decay gradient uses
dL/dc_t = q_t . dq_t - k_t . dk_t (+ <dS_T, S_T> at the last step), and d log g = reverse cumsum of dL/dc.
Everything runs as [G*N, C, D] batched matmuls (G = B*H), with the adds fused into baddbmm.
"""

from __future__ import annotations

import torch

from kernels.linear_attention.state import LinearAttentionState

__all__ = ["causal_linear_attention_chunked"]


def _intra_decay(c: torch.Tensor) -> torch.Tensor:
    """exp(c_t - c_s) for s <= t, 0 above the diagonal: [GN, C] -> [GN, C, C].

    Exponents are clamped to <= 0 before exp (only the masked pairs s > t can be positive), so arbitrarily
    strong gates never overflow; tril_ then zeroes the future.
    """
    diff = c.unsqueeze(-1) - c.unsqueeze(-2)
    return torch.exp(diff.clamp_max_(0.0)).tril_()


def _scan(
    U: torch.Tensor,  # [G, N, Dk, Dv]
    gb: torch.Tensor | None,  # [G, N, 1, 1] whole-chunk decay, or None
    init: torch.Tensor | None,  # [G, Dk, Dv]
    reverse: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exclusive scan X_n = gb_{n-1} X_{n-1} + U_{n-1} (forward) or X_n = gb_{n+1} X_{n+1} + U_{n+1}.

    Returns (X [G, N, Dk, Dv], the value one past the end). A Python loop over the N chunks: each step is a
    single fused op, and it beats torch.cumsum over a middle dimension on the CPU.
    """
    N = U.shape[1]
    X = torch.empty_like(U)
    order = list(range(N - 1, -1, -1)) if reverse else list(range(N))
    first = order[0]
    if init is None:
        X[:, first].zero_()
    else:
        X[:, first] = init
    for prev, n in zip(order[:-1], order[1:]):  # X_n from X_prev, written in place: one op per chunk
        if gb is None:
            torch.add(U[:, prev], X[:, prev], out=X[:, n])
        else:
            torch.addcmul(U[:, prev], gb[:, prev], X[:, prev], out=X[:, n])
    last = order[-1]
    end = U[:, last] + X[:, last] if gb is None else torch.addcmul(U[:, last], gb[:, last], X[:, last])
    return X, end


def _core_forward(q, k, v, c, S0):
    """q, k [G, N, C, Dk], v [G, N, C, Dv], c [G, N, C] | None, S0 [G, Dk, Dv] | None.

    Returns y [G, N, C, Dv], the final state [G, Dk, Dv], the masked (decayed) scores A [GN, C, C], the chunk
    start states [G, N, Dk, Dv] and the intra-chunk decay matrix [GN, C, C] (None without decay).
    """
    G, N, C, Dk = q.shape
    Dv = v.shape[-1]
    q3, k3, v3 = q.view(G * N, C, Dk), k.view(G * N, C, Dk), v.view(G * N, C, Dv)
    A = torch.bmm(q3, k3.transpose(1, 2))  # [GN, C, C]
    if c is None:
        dmat, gb, qs, kd = None, None, q3, k3
        A.tril_()  # the causal mask (much faster than masked_fill_ on the CPU)
    else:
        c3 = c.view(G * N, C)
        dmat = _intra_decay(c3)
        A.mul_(dmat)
        qs = q3 * torch.exp(c3).unsqueeze(-1)  # q_t decayed from the chunk start
        kd = k3 * torch.exp(c3[:, -1:] - c3).unsqueeze(-1)  # k_s decayed to the chunk end
        gb = torch.exp(c[..., -1]).view(G, N, 1, 1)
    y = torch.bmm(A, v3)  # [GN, C, Dv]
    U = torch.bmm(kd.transpose(1, 2), v3).view(G, N, Dk, Dv)  # each chunk's own state contribution
    starts, final = _scan(U, gb, S0, reverse=False)
    y.baddbmm_(qs, starts.view(G * N, Dk, Dv))
    return y.view(G, N, C, Dv), final, A, starts, dmat


def _core_backward(dy, dfinal, q, k, v, c, A, starts, final, dmat):
    """Gradients of the core wrt q, k, v, the log gates (None without decay) and S0."""
    G, N, C, Dk = q.shape
    Dv = v.shape[-1]
    q3, k3, v3, dy3 = q.view(G * N, C, Dk), k.view(G * N, C, Dk), v.view(G * N, C, Dv), dy.view(G * N, C, Dv)
    if c is None:
        gb, qs, kd = None, q3, k3
    else:
        c3 = c.view(G * N, C)
        ec = torch.exp(c3).unsqueeze(-1)  # [GN, C, 1]
        eb = torch.exp(c3[:, -1:] - c3).unsqueeze(-1)  # [GN, C, 1]
        qs, kd = q3 * ec, k3 * eb
        gb = torch.exp(c[..., -1]).view(G, N, 1, 1)

    # ends[:, n]: gradient wrt the state after chunk n; the last one is dfinal.
    W = torch.bmm(qs.transpose(1, 2), dy3).view(G, N, Dk, Dv)
    ends, dS0 = _scan(W, gb, dfinal, reverse=True)
    ends3, starts3 = ends.view(G * N, Dk, Dv), starts.view(G * N, Dk, Dv)

    P = torch.bmm(dy3, v3.transpose(1, 2))  # [GN, C, C]
    if dmat is None:
        P.tril_()
    else:
        P.mul_(dmat)
    if c is None:
        dq = torch.bmm(dy3, starts3.transpose(1, 2))
        dk = torch.bmm(v3, ends3.transpose(1, 2))
    else:
        dq = torch.bmm(dy3, starts3.transpose(1, 2)).mul_(ec)
        dk = torch.bmm(v3, ends3.transpose(1, 2)).mul_(eb)
    dq.baddbmm_(P, k3)
    dk.baddbmm_(P.transpose(1, 2), q3)
    dv = torch.bmm(kd, ends3).baddbmm_(A.transpose(1, 2), dy3)

    dlog = None
    if c is not None:
        dc = (q3 * dq).sum(-1) - (k3 * dk).sum(-1)  # [GN, C]  dL/dc_t
        dc = dc.view(G, N * C)
        dc[:, -1] += (dfinal * final).sum((-1, -2))
        dlog = dc.flip(-1).cumsum(-1).flip(-1).view(G, N, C)  # c_t = sum_{r<=t} log g_r
    return dq.view(G, N, C, Dk), dk.view(G, N, C, Dk), dv.view(G, N, C, Dv), dlog, dS0


def _chunks(x: torch.Tensor, N: int, C: int, cdtype: torch.dtype, extra: int = 0) -> torch.Tensor:
    """[B, T, H, D] (any float dtype) -> [B*H, N, C, D + extra] in cdtype, zero-padded in T; one copy."""
    B, T, H, D = x.shape
    out = x.new_empty(B, H, N * C, D + extra, dtype=cdtype)
    out[:, :, :T, :D].copy_(x.transpose(1, 2))
    out[:, :, T:].zero_()
    return out.view(B * H, N, C, D + extra)


def _unchunk(x: torch.Tensor, B: int, H: int, T: int, D: int, dtype: torch.dtype) -> torch.Tensor:
    """[B*H, N, C, >=D] -> [B, T, H, D] in dtype (a view when no cast is needed)."""
    return x.reshape(B, H, -1, x.shape[-1])[:, :, :T, :D].transpose(1, 2).to(dtype)


class _ChunkedLinearAttention(torch.autograd.Function):
    """Normalised causal linear attention with decay and initial state; chunked forward and backward."""

    @staticmethod
    def forward(ctx, q, k, v, log_g, S0, z0, eps: float, C: int):
        cdtype = torch.float64 if q.dtype == torch.float64 else torch.float32
        B, T, H, Dk = q.shape
        Dv = v.shape[-1]
        N = -(-T // C)
        G = B * H
        qc, kc = _chunks(q, N, C, cdtype), _chunks(k, N, C, cdtype)
        vc = _chunks(v, N, C, cdtype, extra=1)  # v' = [v, 1] (1 on real steps, 0 on padding)
        vc.view(B, H, N * C, Dv + 1)[:, :, :T, Dv] = 1.0
        c = None
        if log_g is not None:
            g = log_g.new_zeros(B, H, N * C, dtype=cdtype)
            g[:, :, :T] = log_g.transpose(1, 2)
            c = g.view(G, N, C).cumsum(-1)
        S0c = None
        if S0 is not None:
            S0c = torch.cat([S0.to(cdtype), z0.to(cdtype).unsqueeze(-1)], dim=-1).view(G, Dk, Dv + 1)

        y, final, A, starts, dmat = _core_forward(qc, kc, vc, c, S0c)
        den = y[..., Dv:] + eps  # [G, N, C, 1]
        den.view(B, H, N * C)[:, :, T:] = 1.0  # padding: keep 0 / 0 out of the backward even when eps = 0
        out = y[..., :Dv] / den  # [G, N, C, Dv]
        ctx.save_for_backward(qc, kc, vc, c, A, starts, final, dmat, out, den)
        ctx.meta = (B, T, H, Dk, Dv, q.dtype, v.dtype, None if S0 is None else (S0.dtype, z0.dtype))
        final = final.view(B, H, Dk, Dv + 1)
        return _unchunk(out, B, H, T, Dv, q.dtype), final[..., :Dv].contiguous(), final[..., Dv].contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout, dS, dz):
        qc, kc, vc, c, A, starts, final, dmat, out, den = ctx.saved_tensors
        B, T, H, Dk, Dv, qdtype, vdtype, state_dtypes = ctx.meta
        G, N, C, _ = qc.shape
        # Through the normalisation: y = [num, den]; out = num / den.
        dy = _chunks(dout, N, C, qc.dtype, extra=1)
        dy[..., :Dv].div_(den)
        dy[..., Dv:] = -(dy[..., :Dv] * out).sum(-1, keepdim=True)
        dfinal = torch.cat([dS.to(qc.dtype), dz.to(qc.dtype).unsqueeze(-1)], dim=-1).view(G, Dk, Dv + 1)

        dq, dk, dv, dlog, dS0 = _core_backward(dy, dfinal, qc, kc, vc, c, A, starts, final, dmat)
        dq = _unchunk(dq, B, H, T, Dk, qdtype)
        dk = _unchunk(dk, B, H, T, Dk, qdtype)
        dv = _unchunk(dv, B, H, T, Dv, vdtype)
        dlog_g = None
        if dlog is not None:
            dlog_g = dlog.reshape(B, H, N * C)[:, :, :T].transpose(1, 2)
        dS0_, dz0 = None, None
        if state_dtypes is not None:
            dS0 = dS0.view(B, H, Dk, Dv + 1)
            dS0_, dz0 = dS0[..., :Dv].to(state_dtypes[0]), dS0[..., Dv].to(state_dtypes[1])
        return dq, dk, dv, dlog_g, dS0_, dz0, None, None


def causal_linear_attention_chunked(
    q: torch.Tensor,  # [B, T, H, Dk]
    k: torch.Tensor,  # [B, T, H, Dk]
    v: torch.Tensor,  # [B, T, H, Dv]
    *,
    log_decay: torch.Tensor | None = None,  # [B, T, H], log g_t <= 0
    initial_state: LinearAttentionState | None = None,
    eps: float = 1e-6,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Chunkwise-parallel form; inputs are validated by ``kernels.causal_linear_attention``.

    Computes and keeps the state in float32 (float64 for float64 inputs); ``out`` is in q's dtype. Under autocast
    (bf16 training) the state matmuls stay float32: autocast is off inside.
    T is zero-padded up to a multiple of the chunk (zero keys and values, gate 1: no effect on anything).
    """
    T = q.shape[1]
    C = min(chunk_size, T)
    S0, z0 = (None, None) if initial_state is None else initial_state
    with torch.autocast(q.device.type, enabled=False):
        out, S, z = _ChunkedLinearAttention.apply(q, k, v, log_decay, S0, z0, float(eps), C)
    return out, LinearAttentionState(S, z)
