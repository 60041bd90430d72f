"""Reference causal linear attention: the masked quadratic form. Slow, simple, the ground truth.

    out_t = q_t . S_t / (q_t . z_t + eps)
    S_t   = g_t S_{t-1} + k_t v_t^T ,  z_t = g_t z_{t-1} + k_t      (g_t = 1 without decay)

Unrolled: S_t = G(t, 0) S_0 + sum_{s<=t} G(t, s) k_s v_s^T with G(t, s) = exp(c_t - c_s),
c_t = sum_{r<=t} log g_r.
Computes in float64 when the inputs are float64, otherwise float32.
"""

from __future__ import annotations

import torch

from kernels.linear_attention.state import LinearAttentionState


def causal_linear_attention_reference(
    q: torch.Tensor,  # [B, T, H, Dk]
    k: torch.Tensor,  # [B, T, H, Dk]
    v: torch.Tensor,  # [B, T, H, Dv]
    *,
    log_decay: torch.Tensor | None = None,  # [B, T, H], log g_t <= 0
    initial_state: LinearAttentionState | None = None,
    eps: float = 1e-6,
    chunk_size: int | None = None,  # unused: the quadratic form has no chunks
) -> tuple[torch.Tensor, LinearAttentionState]:
    cdtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    B, T, H, _ = q.shape
    qf, kf, vf = (x.to(cdtype).transpose(1, 2) for x in (q, k, v))  # [B, H, T, D]

    scores = qf @ kf.transpose(-1, -2)  # [B, H, T, T]
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    if log_decay is None:
        weights = scores.masked_fill(~causal, 0.0)
        carry = torch.ones(B, H, T, 1, dtype=cdtype, device=q.device)  # G(t, 0)
        carry_final = torch.ones(B, H, 1, 1, dtype=cdtype, device=q.device)
        tail = torch.ones(B, H, T, 1, dtype=cdtype, device=q.device)  # G(T, s)
    else:
        c = log_decay.to(cdtype).transpose(1, 2).cumsum(-1)  # [B, H, T]
        diff = c.unsqueeze(-1) - c.unsqueeze(-2)  # c_t - c_s
        weights = scores * torch.exp(diff.masked_fill(~causal, float("-inf")))
        carry = torch.exp(c).unsqueeze(-1)
        carry_final = torch.exp(c[..., -1:]).unsqueeze(-1)
        tail = torch.exp(c[..., -1:] - c).unsqueeze(-1)

    num = weights @ vf  # [B, H, T, Dv]
    den = weights.sum(-1, keepdim=True)  # [B, H, T, 1]
    if initial_state is not None:
        S0 = initial_state.S.to(cdtype)
        z0 = initial_state.z.to(cdtype)
        num = num + carry * (qf @ S0)
        den = den + carry * (qf @ z0.unsqueeze(-1))
    out = num / (den + eps)

    S = (kf * tail).transpose(-1, -2) @ vf  # [B, H, Dk, Dv]
    z = (kf * tail).sum(-2)  # [B, H, Dk]
    if initial_state is not None:
        S = S + carry_final * S0
        z = z + carry_final.squeeze(-1) * z0
    state_dtype = torch.float64 if cdtype == torch.float64 else torch.float32
    final = LinearAttentionState(S.to(state_dtype), z.to(state_dtype))
    return out.transpose(1, 2).to(q.dtype), final
