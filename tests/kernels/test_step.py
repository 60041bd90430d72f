"""The streaming entry point ``causal_linear_attention_step`` against the float64 reference: outputs, the state
going in and coming out, and the gradients of q, k, v, the decay and the initial state, at odd lengths and
odd piece sizes; purity, layouts and the shape checks."""

from __future__ import annotations

import pytest
import torch

from kernels import LinearAttentionState, causal_linear_attention
from kernels.linear_attention import causal_linear_attention_step
from tests.kernels._cases import DECAYS, Case, make_case, rel_err, run, run_with

_TOL = {torch.float32: 2e-5, torch.bfloat16: 1.6e-2}


def _run_step(case: Case, *, dtype: torch.dtype, chunk_size: int = 64, eps: float = 1e-6):
    """``run`` (tests/kernels/_cases.py) for the step function: same leaves, same weighted loss."""
    assert case.S0 is not None  # the step always continues a state

    def call(q, k, v, decay, state):
        return causal_linear_attention_step(q, k, v, state, decay=decay, chunk_size=chunk_size, eps=eps)

    return run_with(case, call, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize(("T", "chunk_size"), [(1, 64), (4, 64), (4, 1), (63, 7), (130, 64), (130, 16)])
def test_step_matches_reference(T, chunk_size, decay, dtype):
    case = make_case(T=T, decay=decay, dtype=dtype, seed=T)
    ref_out, ref_state, ref_grads = run(case, backend="reference", dtype=torch.float64)
    out, state, grads = _run_step(case, dtype=dtype, chunk_size=chunk_size)
    assert out.dtype == dtype and out.shape == ref_out.shape
    assert state.S.dtype == state.z.dtype == torch.float32
    tol = _TOL[dtype]
    assert rel_err(out, ref_out) < tol
    assert rel_err(state.S, ref_state.S) < 2e-5 and rel_err(state.z, ref_state.z) < 2e-5
    assert set(grads) == set(ref_grads)
    for name, grad in grads.items():
        assert grad.dtype == (dtype if name in ("q", "k", "v") else torch.float32), name
        assert rel_err(grad, ref_grads[name]) < tol, (name, rel_err(grad, ref_grads[name]))


def test_float64_stays_float64_and_strong_gates_stay_finite():
    case = make_case(T=40, decay="step", dtype=torch.float64, seed=3)
    gates = case.decay.clone()
    gates[:, 10::7] = -60.0  # near-total forgetting inside a piece: exp(c_t - c_s) must not overflow
    case = type(case)(**{**case.__dict__, "decay": gates})
    ref_out, ref_state, ref_grads = run(case, backend="reference", dtype=torch.float64)
    out, state, grads = _run_step(case, dtype=torch.float64, chunk_size=16)
    assert out.dtype == state.S.dtype == torch.float64
    assert rel_err(out, ref_out) < 1e-12 and rel_err(state.S, ref_state.S) < 1e-12
    for name in grads:
        assert torch.isfinite(grads[name]).all(), name
        assert rel_err(grads[name], ref_grads[name]) < 1e-10, name


def test_chunked_stream_equals_one_call_and_state_is_pure():
    """Streaming a sequence in irregular chunks through the step equals the chunked backend on the whole."""
    case = make_case(B=3, T=57, H=2, dk=6, dv=5, decay="step", seed=11)
    q, k, v, gates = case.q.float(), case.k.float(), case.v.float(), case.decay.float()
    state = LinearAttentionState(case.S0.float(), case.z0.float())
    full, final = causal_linear_attention(q, k, v, decay=gates, initial_state=state, backend="chunked")
    before = (state.S.clone(), state.z.clone())
    outs, carried, a = [], state, 0
    with torch.inference_mode():
        for n in (4, 1, 16, 3, 4, 29):
            out, new = causal_linear_attention_step(
                q[:, a : a + n], k[:, a : a + n], v[:, a : a + n], carried, decay=gates[:, a : a + n], chunk_size=8
            )
            assert new.S.data_ptr() != carried.S.data_ptr() and new.z.data_ptr() != carried.z.data_ptr()
            outs.append(out)
            carried, a = new, a + n
    assert a == 57
    assert torch.equal(state.S, before[0]) and torch.equal(state.z, before[1])
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(carried.S, final.S, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(carried.z, final.z, rtol=1e-5, atol=1e-5)


def test_head_major_views_and_contiguous_inputs_agree():
    """[B, H, T, D] tensors passed transposed (the model's layout) give exactly the contiguous results."""
    case = make_case(T=9, decay="head", seed=12)
    q, k, v = (x.float().transpose(1, 2).contiguous().transpose(1, 2) for x in (case.q, case.k, case.v))
    assert not q.is_contiguous()
    state = LinearAttentionState(case.S0.float(), case.z0.float())
    out, new = causal_linear_attention_step(q, k, v, state, decay=case.decay.float())
    ref, ref_new = causal_linear_attention_step(
        q.contiguous(), k.contiguous(), v.contiguous(), state, decay=case.decay.float()
    )
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(new.S, ref_new.S, rtol=0, atol=0)


def test_step_checks_shapes():
    case = make_case(B=2, T=4, H=2, dk=3, dv=5, seed=13)
    q, k, v = case.q.float(), case.k.float(), case.v.float()
    state = LinearAttentionState(case.S0.float(), case.z0.float())
    with pytest.raises(ValueError, match="needs a state"):
        causal_linear_attention_step(q, k, v, None)
    with pytest.raises(ValueError, match="initial_state shapes"):
        causal_linear_attention_step(q, k, v, LinearAttentionState(state.S[:1], state.z[:1]))
    with pytest.raises(ValueError, match="q and k must have the same shape"):
        causal_linear_attention_step(q, k[..., :2], v, state)
    with pytest.raises(ValueError, match=r"decay must have shape \[H\]=\(2,\)"):
        causal_linear_attention_step(q, k, v, state, decay=torch.full((3,), 0.9))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        causal_linear_attention_step(q, k, v, state, chunk_size=0)


@pytest.mark.parametrize("gates_shape", ["head", "step"])
def test_precomputed_gates_and_out_layout_equal_the_plain_chunk_step(gates_shape):
    """``recurrent_chunk_step`` with ChunkGates computed beforehand (what a model with a constant per-head decay
    reuses chunk after chunk) and with an ``out`` tensor in another layout gives the same numbers as the call
    that takes log gates and returns a fresh [B, H, T, Dv] result; the float64 reference agrees."""
    from kernels.linear_attention.recurrent import chunk_gates, recurrent_chunk_step

    torch.manual_seed(7)
    B, H, T, D = 3, 2, 5, 4
    q, k = torch.rand(B, H, T, D), torch.rand(B, H, T, D)
    v = torch.randn(B, H, T, D)
    state = LinearAttentionState(torch.randn(B, H, D, D), torch.rand(B, H, D))
    if gates_shape == "head":
        log_g = torch.log(torch.tensor([0.5, 0.9])).view(1, H, 1).expand(1, H, T)
    else:
        log_g = -torch.rand(B, H, T)
    plain, plain_state = recurrent_chunk_step(q, k, v, state, log_g=log_g)
    out = torch.full((B, T, H, D), float("nan"))
    result, new_state = recurrent_chunk_step(q, k, v, state, gates=chunk_gates(log_g), out=out.transpose(1, 2))
    assert result.data_ptr() == out.data_ptr()
    assert torch.equal(out.transpose(1, 2), plain)
    assert torch.equal(new_state.S, plain_state.S) and torch.equal(new_state.z, plain_state.z)
    decay = log_g.expand(B, H, T).transpose(1, 2).contiguous()  # [B, T, H] log gates for the reference
    ref, ref_state = causal_linear_attention(
        *(x.transpose(1, 2).double() for x in (q, k, v)),
        initial_state=LinearAttentionState(state.S.double(), state.z.double()),
        decay=decay.double(),
        backend="reference",
    )
    assert rel_err(out, ref) < 2e-6 and rel_err(new_state.S, ref_state.S) < 2e-6


def test_chunk_gates_checks_its_input():
    from kernels.linear_attention.recurrent import chunk_gates

    with pytest.raises(ValueError, match=r"\[B\|1, H, T\]"):
        chunk_gates(torch.zeros(2, 3))


@pytest.mark.parametrize("decay", ["none", "head"])
def test_inplace_state_update_equals_the_pure_one(decay):
    from kernels.linear_attention.recurrent import chunk_gates, recurrent_chunk_step

    torch.manual_seed(8)
    B, H, T, D = 2, 3, 4, 5
    q, k, v = torch.rand(B, H, T, D), torch.rand(B, H, T, D), torch.randn(B, H, T, D)
    gates = chunk_gates(-torch.rand(1, H, 1).expand(1, H, T)) if decay == "head" else None
    S, z = torch.randn(B, H, D, D), torch.rand(B, H, D)
    out, pure = recurrent_chunk_step(q, k, v, LinearAttentionState(S, z), gates=gates)
    given = LinearAttentionState(S.clone(), z.clone())
    out2, new = recurrent_chunk_step(q, k, v, given, gates=gates, inplace=True)
    assert torch.equal(out, out2) and torch.equal(new.S, pure.S) and torch.equal(new.z, pure.z)
    assert new.S.data_ptr() == given.S.data_ptr() and torch.equal(given.S, pure.S)
    with pytest.raises(ValueError, match="contiguous state"):
        recurrent_chunk_step(q, k, v, LinearAttentionState(S.transpose(2, 3), z), inplace=True)
