"""torch.autograd.gradcheck (float64) on the chunked backend's hand-written backward, and on the others."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from kernels import LinearAttentionState, causal_linear_attention, noncausal_linear_attention


def _inputs(B=1, T=9, H=2, dk=3, dv=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = F.elu(torch.randn(B, T, H, dk, generator=g, dtype=torch.float64)) + 1
    k = F.elu(torch.randn(B, T, H, dk, generator=g, dtype=torch.float64)) + 1
    v = torch.randn(B, T, H, dv, generator=g, dtype=torch.float64)
    S0 = torch.randn(B, H, dk, dv, generator=g, dtype=torch.float64)
    z0 = torch.rand(B, H, dk, generator=g, dtype=torch.float64) + 0.5
    # log gates well inside (-inf, 0): gradcheck's finite differences must not push them above 0
    log_g = -0.2 - torch.rand(B, T, H, generator=g, dtype=torch.float64)
    head = torch.linspace(0.7, 0.9, H, dtype=torch.float64)
    return q, k, v, S0, z0, log_g, head


def _fn(backend, chunk_size, decay_kind):
    def f(q, k, v, S0, z0, decay):
        out, state = causal_linear_attention(
            q, k, v,
            decay=None if decay_kind == "none" else decay,
            initial_state=LinearAttentionState(S0, z0) if S0 is not None else None,
            backend=backend, chunk_size=chunk_size,
        )  # fmt: skip
        return out, state.S, state.z

    return f


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("decay_kind", ["none", "head", "step"])
def test_gradcheck_chunked(decay_kind, chunk_size):
    q, k, v, S0, z0, log_g, head = _inputs()
    decay = {"none": log_g, "head": head, "step": log_g}[decay_kind]
    args = [x.clone().requires_grad_() for x in (q, k, v, S0, z0, decay)]
    if decay_kind == "none":
        args[5] = args[5].detach()
    assert gradcheck(_fn("chunked", chunk_size, decay_kind), args, eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


def test_gradcheck_chunked_full_jacobian():
    """The full (slow-mode) Jacobian on a tiny case with every input, per-step gates and T % chunk != 0."""
    q, k, v, S0, z0, log_g, _ = _inputs(T=5, H=1, dk=2, dv=2, seed=4)
    args = [x.requires_grad_() for x in (q, k, v, S0, z0, log_g)]
    assert gradcheck(_fn("chunked", 2, "step"), args, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradcheck_chunked_without_initial_state():
    q, k, v, _, _, log_g, _ = _inputs(B=2, T=11, seed=1)
    args = [q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), None, None, log_g.requires_grad_()]
    assert gradcheck(_fn("chunked", 4, "step"), args, eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


def test_gradcheck_recurrent():
    q, k, v, S0, z0, log_g, _ = _inputs(T=5, seed=2)
    args = [x.requires_grad_() for x in (q, k, v, S0, z0, log_g)]
    assert gradcheck(_fn("recurrent", 1, "step"), args, eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


def test_gradcheck_noncausal():
    q, k, v, *_ = _inputs(B=2, T=6, seed=3)
    mask = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])

    def f(q, k, v):
        return noncausal_linear_attention(q, k, v, key_padding_mask=mask)

    assert gradcheck(f, [x.requires_grad_() for x in (q, k, v)], eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)
