"""Shared inputs and a gradient harness for the kernel tests.

Inputs are float64 masters exactly representable in the dtype under test, so a backend run on the
low-precision copy and the float64 reference see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kernels import LinearAttentionState, causal_linear_attention

DECAYS = ("none", "head", "step")


@dataclass(frozen=True)
class Case:
    q: torch.Tensor  # [B, T, H, Dk] float64, non-negative
    k: torch.Tensor  # [B, T, H, Dk]
    v: torch.Tensor  # [B, T, H, Dv]
    decay: torch.Tensor | None  # [H] in (0, 1] or [B, T, H] log gates, float64
    S0: torch.Tensor | None  # [B, H, Dk, Dv] float64
    z0: torch.Tensor | None  # [B, H, Dk]
    w_out: torch.Tensor  # loss weights for out, S, z (float64)
    w_S: torch.Tensor
    w_z: torch.Tensor


def make_case(
    *, B=2, T=17, H=2, dk=8, dv=6, decay="none", with_state=True, dtype=torch.float32, seed=0
) -> Case:
    g = torch.Generator().manual_seed(seed)

    def rep(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype).double()

    q = rep(F.elu(torch.randn(B, T, H, dk, generator=g, dtype=torch.float64)) + 1)
    k = rep(F.elu(torch.randn(B, T, H, dk, generator=g, dtype=torch.float64)) + 1)
    v = rep(torch.randn(B, T, H, dv, generator=g, dtype=torch.float64))
    if decay == "none":
        dec = None
    elif decay == "head":
        dec = torch.linspace(0.8, 1.0, H, dtype=torch.float64)  # includes g = 1 exactly
    elif decay == "step":
        dec = F.logsigmoid(torch.randn(B, T, H, generator=g, dtype=torch.float64) + 2.0)
    else:
        raise AssertionError(decay)
    S0 = z0 = None
    if with_state:
        S0 = torch.randn(B, H, dk, dv, generator=g, dtype=torch.float64) * 3
        z0 = torch.rand(B, H, dk, generator=g, dtype=torch.float64) * 3
    return Case(
        q, k, v, dec, S0, z0,
        torch.randn(B, T, H, dv, generator=g, dtype=torch.float64),
        torch.randn(B, H, dk, dv, generator=g, dtype=torch.float64),
        torch.randn(B, H, dk, generator=g, dtype=torch.float64),
    )  # fmt: skip


def run(case: Case, *, backend: str, dtype: torch.dtype, chunk_size: int = 64, eps: float = 1e-6):
    """Forward + backward of a weighted loss on out and the final state, through ``causal_linear_attention``.

    Returns (out, final_state, grads) with grads a dict over q, k, v, decay, S0, z0 (only those present).
    q, k, v are cast to ``dtype``; decay and the initial state go in float32 (float64 when dtype is).
    """

    def call(q, k, v, decay, state):
        return causal_linear_attention(
            q, k, v, decay=decay, initial_state=state, backend=backend, chunk_size=chunk_size, eps=eps
        )

    return run_with(case, call, dtype=dtype)


def run_with(case: Case, call, *, dtype: torch.dtype):
    """``run`` for any entry point ``call(q, k, v, decay, state) -> (out, final_state)``."""
    sdtype = torch.float64 if dtype == torch.float64 else torch.float32
    leaves = {"q": case.q.to(dtype), "k": case.k.to(dtype), "v": case.v.to(dtype)}
    if case.decay is not None:
        leaves["decay"] = case.decay.to(sdtype)
    if case.S0 is not None:
        leaves["S0"], leaves["z0"] = case.S0.to(sdtype), case.z0.to(sdtype)
    for x in leaves.values():
        x.requires_grad_(True)
    state = LinearAttentionState(leaves["S0"], leaves["z0"]) if "S0" in leaves else None
    out, final = call(leaves["q"], leaves["k"], leaves["v"], leaves.get("decay"), state)
    loss = (
        (out.double() * case.w_out).sum() + (final.S.double() * case.w_S).sum()
        + (final.z.double() * case.w_z).sum()
    )  # fmt: skip
    names = list(leaves)
    grads = torch.autograd.grad(loss, [leaves[n] for n in names])
    return out.detach(), LinearAttentionState(final.S.detach(), final.z.detach()), dict(zip(names, grads))


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a - ref| / max |ref| (computed in float64)."""
    a, ref = a.double(), ref.double()
    return float((a - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
