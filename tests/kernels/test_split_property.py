"""Property: feeding a sequence in arbitrary pieces, carrying the state, equals one pass over the whole."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import LinearAttentionState, causal_linear_attention, recurrent_step
from tests.kernels._cases import make_case


@st.composite
def _split_case(draw):
    T = draw(st.integers(1, 90))
    cuts = sorted(draw(st.sets(st.integers(1, T - 1), max_size=6))) if T > 1 else []
    return {
        "T": T,
        "bounds": [0, *cuts, T],
        "decay": draw(st.sampled_from(["none", "head", "step"])),
        "chunk_size": draw(st.sampled_from([1, 3, 7, 16, 64])),
        "with_state": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def _pieces_vs_whole(backend: str, spec: dict) -> None:
    case = make_case(
        B=2, T=spec["T"], H=2, dk=4, dv=3, decay=spec["decay"], with_state=spec["with_state"],
        dtype=torch.float64, seed=spec["seed"],
    )  # fmt: skip
    state0 = LinearAttentionState(case.S0, case.z0) if spec["with_state"] else None
    kw = {"backend": backend, "chunk_size": spec["chunk_size"]}
    whole, final = causal_linear_attention(case.q, case.k, case.v, decay=case.decay, initial_state=state0, **kw)

    outs, state = [], state0
    for a, b in zip(spec["bounds"][:-1], spec["bounds"][1:]):
        decay = case.decay[:, a:b] if spec["decay"] == "step" else case.decay
        out, state = causal_linear_attention(
            case.q[:, a:b], case.k[:, a:b], case.v[:, a:b], decay=decay, initial_state=state, **kw
        )
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=1), whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state.S, final.S, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state.z, final.z, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(spec=_split_case())
def test_chunked_pieces_equal_one_pass(spec):
    _pieces_vs_whole("chunked", spec)


@settings(max_examples=25, deadline=None)
@given(spec=_split_case())
def test_recurrent_pieces_equal_one_pass(spec):
    _pieces_vs_whole("recurrent", spec)


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 40), decay=st.sampled_from(["none", "head", "step"]), seed=st.integers(0, 2**16))
def test_step_by_step_equals_one_pass(T, decay, seed):
    """recurrent_step, one frame at a time (the streaming path), equals the chunked backend."""
    case = make_case(B=1, T=T, H=3, dk=4, dv=5, decay=decay, dtype=torch.float64, seed=seed)
    state = LinearAttentionState(case.S0, case.z0)
    whole, final = causal_linear_attention(
        case.q, case.k, case.v, decay=case.decay, initial_state=state, backend="chunked", chunk_size=8
    )
    if decay == "step":
        log_g = case.decay
    elif decay == "head":
        log_g = torch.log(case.decay).expand(1, T, 3)
    else:
        log_g = None
    outs = []
    for t in range(T):
        out, state = recurrent_step(
            case.q[:, t], case.k[:, t], case.v[:, t], state, log_g_t=None if log_g is None else log_g[:, t]
        )
        outs.append(out)
    torch.testing.assert_close(torch.stack(outs, dim=1), whole, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state.S, final.S, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state.z, final.z, rtol=1e-10, atol=1e-12)
