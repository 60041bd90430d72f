"""Every non-triton backend against the float64 reference: outputs, final state and the gradients of q, k, v,
the decay (per-head [H] and per-step log gates [B, T, H]) and the initial state."""

from __future__ import annotations

import pytest
import torch

from kernels import LinearAttentionState, causal_linear_attention, recurrent_step
from tests.kernels._cases import DECAYS, make_case, rel_err, run

# max |x - ref| / max |ref| allowed per input dtype. bfloat16 results are one bf16 rounding (2^-8) from the
# float64 truth; the float32 state and grads of float32 inputs are accumulated over up to 500 steps.
_TOL = {torch.float32: 2e-5, torch.bfloat16: 1.6e-2}
_STATE_TOL = {torch.float32: 2e-5, torch.bfloat16: 1e-5}  # the state is float32 whatever the input dtype

_LENGTHS = (1, 2, 63, 64, 65, 500)
_CASES = [("chunked", c) for c in (1, 7, 64)] + [("recurrent", 64)]


def _check(case, backend, dtype, chunk_size):
    ref_out, ref_state, ref_grads = run(case, backend="reference", dtype=torch.float64)
    out, state, grads = run(case, backend=backend, dtype=dtype, chunk_size=chunk_size)
    assert out.dtype == dtype and out.shape == ref_out.shape
    assert state.S.dtype == torch.float32 and state.z.dtype == torch.float32
    tol = _TOL[dtype]
    assert rel_err(out, ref_out) < tol
    assert rel_err(state.S, ref_state.S) < _STATE_TOL[dtype]
    assert rel_err(state.z, ref_state.z) < _STATE_TOL[dtype]
    assert set(grads) == set(ref_grads)
    for name, grad in grads.items():
        expected_dtype = dtype if name in ("q", "k", "v") else torch.float32
        assert grad.dtype == expected_dtype, name
        assert torch.isfinite(grad).all(), name
        assert rel_err(grad, ref_grads[name]) < tol, (name, rel_err(grad, ref_grads[name]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("T", _LENGTHS)
@pytest.mark.parametrize(("backend", "chunk_size"), _CASES, ids=[f"{b}-c{c}" for b, c in _CASES])
def test_matches_reference(backend, chunk_size, T, decay, dtype):
    case = make_case(T=T, decay=decay, dtype=dtype, with_state=True, seed=T)
    _check(case, backend, dtype, chunk_size)


@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("T", (2, 65, 130))  # T = 1 without a state: q enters only through eps
@pytest.mark.parametrize(("backend", "chunk_size"), _CASES, ids=[f"{b}-c{c}" for b, c in _CASES])
def test_matches_reference_without_initial_state(backend, chunk_size, T, decay):
    case = make_case(T=T, decay=decay, with_state=False, dk=5, dv=9, seed=100 + T)
    _check(case, backend, torch.float32, chunk_size)


@pytest.mark.parametrize("backend", ["chunked", "recurrent"])
def test_float64_inputs_stay_float64(backend):
    case = make_case(T=70, decay="step", dtype=torch.float64, seed=3)
    ref_out, ref_state, ref_grads = run(case, backend="reference", dtype=torch.float64)
    out, state, grads = run(case, backend=backend, dtype=torch.float64, chunk_size=16)
    assert out.dtype == state.S.dtype == state.z.dtype == torch.float64
    assert rel_err(out, ref_out) < 1e-12 and rel_err(state.S, ref_state.S) < 1e-12
    for name in grads:
        assert rel_err(grads[name], ref_grads[name]) < 1e-11, name


@pytest.mark.parametrize("backend", ["chunked", "recurrent"])
def test_float16_inputs(backend):
    case = make_case(T=100, decay="head", dtype=torch.float16, seed=4)
    ref_out, ref_state, ref_grads = run(case, backend="reference", dtype=torch.float64)
    out, state, grads = run(case, backend=backend, dtype=torch.float16, chunk_size=32)
    assert out.dtype == torch.float16 and state.S.dtype == torch.float32
    assert rel_err(out, ref_out) < 2e-3
    assert rel_err(state.S, ref_state.S) < 1e-5
    for name in grads:
        assert rel_err(grads[name], ref_grads[name]) < 2e-3, name


@pytest.mark.parametrize("backend", ["chunked", "recurrent"])
def test_strong_gates_do_not_overflow(backend):
    """Gates near zero (log g = -60) inside a chunk must not overflow exp(c_t - c_s) for masked pairs."""
    case = make_case(T=40, decay="step", seed=5)
    gates = case.decay.clone()
    gates[:, 10::7] = -60.0  # near-total forgetting at some steps
    case = type(case)(**{**case.__dict__, "decay": gates})
    ref_out, ref_state, ref_grads = run(case, backend="reference", dtype=torch.float64)
    out, state, grads = run(case, backend=backend, dtype=torch.float32, chunk_size=16)
    assert rel_err(out, ref_out) < 2e-5 and rel_err(state.S, ref_state.S) < 2e-5
    for name in grads:
        assert torch.isfinite(grads[name]).all(), name
        assert rel_err(grads[name], ref_grads[name]) < 2e-5, name


def test_initial_state_is_not_modified_and_auto_is_chunked_on_cpu():
    case = make_case(T=33, decay="step", seed=6)
    q, k, v = case.q.float(), case.k.float(), case.v.float()
    state = LinearAttentionState(case.S0.float(), case.z0.float())
    before = (state.S.clone(), state.z.clone())
    outs = {}
    for backend in ("auto", "chunked", "recurrent"):
        outs[backend], _ = causal_linear_attention(
            q, k, v, decay=case.decay.float(), initial_state=state, backend=backend, chunk_size=8
        )
        assert torch.equal(state.S, before[0]) and torch.equal(state.z, before[1]), backend
    assert torch.equal(outs["auto"], outs["chunked"])
    assert rel_err(outs["recurrent"], outs["chunked"]) < 1e-5


def test_output_only_loss_and_state_only_loss():
    """Gradients flow when only the output, or only the final state, enters the loss."""
    case = make_case(T=20, decay="head", seed=7)
    for backend in ("reference", "chunked", "recurrent"):
        q = case.q.float().requires_grad_()
        out, state = causal_linear_attention(q, case.k.float(), case.v.float(), backend=backend, chunk_size=8)
        (g_out,) = torch.autograd.grad(out.sum(), q)
        q2 = case.q.float().requires_grad_()
        k2 = case.k.float().requires_grad_()
        _, state = causal_linear_attention(q2, k2, case.v.float(), backend=backend, chunk_size=8)
        g_q, g_k = torch.autograd.grad(state.S.sum(), [q2, k2], allow_unused=True)
        assert g_out.abs().sum() > 0
        assert g_q is None or torch.all(g_q == 0), backend  # the state does not depend on q
        assert g_k.abs().sum() > 0


def test_recurrent_step_is_pure_and_keeps_a_float32_state():
    case = make_case(B=2, T=3, H=2, dk=4, dv=3, decay="step", dtype=torch.bfloat16, seed=8)
    q, k, v = (x.to(torch.bfloat16) for x in (case.q, case.k, case.v))
    state = LinearAttentionState(case.S0.float(), case.z0.float())
    before = (state.S.clone(), state.z.clone())
    out, new = recurrent_step(q[:, 0], k[:, 0], v[:, 0], state, log_g_t=case.decay[:, 0].float())
    assert torch.equal(state.S, before[0]) and torch.equal(state.z, before[1])
    assert out.dtype == torch.bfloat16 and new.S.dtype == new.z.dtype == torch.float32
    assert new.S.data_ptr() != state.S.data_ptr()
    expected, ref_state = causal_linear_attention(
        q[:, :1], k[:, :1], v[:, :1], decay=case.decay[:, :1].float(), initial_state=state, backend="reference"
    )
    torch.testing.assert_close(out, expected[:, 0])
    torch.testing.assert_close(new.S, ref_state.S)
    torch.testing.assert_close(new.z, ref_state.z)


@pytest.mark.parametrize("backend", ["chunked", "recurrent"])
def test_non_contiguous_inputs(backend):
    """Inputs that are views (e.g. [B, H, T, D] transposed to [B, T, H, D]) give the same results."""
    case = make_case(T=21, decay="step", seed=9)
    q, k, v = (x.float().transpose(1, 2).contiguous().transpose(1, 2) for x in (case.q, case.k, case.v))
    gates = case.decay.float().transpose(1, 2).contiguous().transpose(1, 2)
    assert not q.is_contiguous() and not gates.is_contiguous()
    out, state = causal_linear_attention(q, k, v, decay=gates, backend=backend, chunk_size=8)
    ref, ref_state = causal_linear_attention(
        q.contiguous(), k.contiguous(), v.contiguous(), decay=gates.contiguous(), backend=backend, chunk_size=8
    )
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(state.S, ref_state.S, rtol=0, atol=0)
