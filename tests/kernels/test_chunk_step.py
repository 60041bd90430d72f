"""``kernels.linear_attention.chunk_step``, the one step entry point: its two backends against each other and
against the float64 PyTorch form (feature map, RMS norm, every decay form, pieces, in place or not, strided
output), and loud when a backend is unavailable or misused."""

from __future__ import annotations

import pytest
import torch

from kernels import LinearAttentionState, elu_plus_one
from kernels.linear_attention import (
    ChunkGates,
    CKernelUnavailable,
    c_available,
    chunk_gates,
    chunk_step,
    cpu_step,
)


def _inputs(B=3, H=2, T=5, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    proj = torch.randn(B, T, 3, H, D, generator=g)
    q, k, v = proj.permute(2, 0, 3, 1, 4).unbind(0)  # strided [B, H, T, D] views, as a projection gives them
    state = LinearAttentionState(torch.randn(B, H, D, D, generator=g) * 0.1, torch.rand(B, H, D, generator=g) + 0.5)
    return q, k, v, state


def _decay(kind, B, H, T, seed=1):
    if kind == "none":
        return None
    if kind == "per_head":
        return torch.log(torch.linspace(0.8, 0.99, H)).view(1, H, 1).expand(1, H, T)
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.logsigmoid(torch.randn(B, H, T, generator=g) + 2)


def _f64_reference(q, k, v, state, log_g, rms_eps):
    """Feature map, the torch step and the RMS norm, all in float64."""
    q, k = elu_plus_one(q.double()), elu_plus_one(k.double())
    st = LinearAttentionState(state.S.double(), state.z.double())
    out, new = chunk_step(q, k, v.double(), st, decay=None if log_g is None else log_g.double())
    if rms_eps is not None:
        out = out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + rms_eps)
    return out, new


@pytest.mark.parametrize("backend", ["torch", "c"])
@pytest.mark.parametrize("decay", ["none", "per_head", "gated"])
@pytest.mark.parametrize("rms_eps", [None, 1e-5])
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_backends_agree_with_the_float64_form(backend, decay, rms_eps, chunk_size):
    q, k, v, state = _inputs()
    log_g = _decay(decay, 3, 2, 5)
    before = [x.clone() for x in state]
    out, new = chunk_step(
        q, k, v, state, decay=log_g, feature_map="elu+1", rms_eps=rms_eps, chunk_size=chunk_size, backend=backend
    )
    assert all(torch.equal(a, b) for a, b in zip(before, state, strict=True))  # not given up: untouched
    ref, ref_new = _f64_reference(q, k, v, state, log_g, rms_eps)
    assert out.dtype == torch.float32 and out.shape == (3, 2, 5, 8)
    assert (out.double() - ref).abs().max().item() <= 2e-5 * (1 + ref.abs().max().item())
    for a, b in zip(new, ref_new, strict=True):
        assert (a.double() - b).abs().max().item() <= 2e-5 * (1 + b.abs().max().item())


@pytest.mark.parametrize("backend", ["torch", "c"])
def test_in_place_and_into_a_strided_output(backend):
    q, k, v, state = _inputs(seed=3)
    log_h = torch.log(torch.tensor([0.9, 0.95])).view(1, 2, 1).expand(1, 2, 5)
    gates = ChunkGates(*(g.contiguous() for g in chunk_gates(log_h)))  # a constant decay's, computed once
    pure, pure_state = chunk_step(q, k, v, state, decay=gates, feature_map="relu", backend=backend)
    given = LinearAttentionState(state.S.clone(), state.z.clone())
    buf = torch.full((3, 5, 2, 8), float("nan"))  # [B, T, H, D]: the out projection's layout
    out, new = chunk_step(q, k, v, given, decay=gates, feature_map="relu", out=buf.transpose(1, 2), inplace=True,
                          backend=backend)  # fmt: skip
    assert new.S.data_ptr() == given.S.data_ptr() and out.data_ptr() == buf.data_ptr()
    assert torch.equal(buf.transpose(1, 2), pure) and torch.equal(new.S, pure_state.S)


def test_the_torch_backend_is_differentiable():
    q, k, v, state = _inputs(seed=4)
    q = q.detach().clone().requires_grad_()
    out, _ = chunk_step(q, k, v, state, decay=_decay("gated", 3, 2, 5), feature_map="elu+1", chunk_size=2)
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_loud_when_a_backend_is_unavailable_or_misused(monkeypatch):
    q, k, v, state = _inputs()
    with pytest.raises(ValueError, match="backend must be one of"):
        chunk_step(q, k, v, state, backend="gpu")
    with pytest.raises(ValueError, match="feature_map must be None or one of"):
        chunk_step(q, k, v, state, feature_map="softmax")
    with pytest.raises(ValueError, match="float32"):
        chunk_step(q.double(), k.double(), v.double(), state, backend="c")
    with pytest.raises(ValueError, match="inference"):
        chunk_step(q.detach().requires_grad_(), k, v, state, backend="c")
    gates = chunk_gates(_decay("per_head", 3, 2, 5))
    with pytest.raises(ValueError, match="precomputed ChunkGates cover one piece"):
        chunk_step(q, k, v, state, decay=gates, chunk_size=2)
    assert c_available()  # the machines that run the tests have a C compiler

    def unavailable():
        raise CKernelUnavailable("no C compiler here (test)")

    monkeypatch.setattr(cpu_step, "load", unavailable)
    with pytest.raises(CKernelUnavailable, match="no C compiler here"):
        chunk_step(q, k, v, state, backend="c")
    out, _ = chunk_step(q, k, v, state, backend="torch")  # the PyTorch backend needs no compiler
    assert torch.isfinite(out).all()
