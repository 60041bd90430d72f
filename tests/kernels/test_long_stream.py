"""Hours of streaming: 100,000 recurrent steps with float16 inputs stay finite because the state is float32.

With elu+1 features the normaliser q . z grows linearly with the number of steps; in float16 it would pass
65504 after a few thousand steps (PAPER-NOTES). The tests check that it really does exceed the float16
range here, and that outputs, state and normaliser stay finite and accurate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels import LinearAttentionState, causal_linear_attention, recurrent_step

_FP16_MAX = torch.finfo(torch.float16).max


def _stream(T: int, *, D: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = (F.elu(torch.randn(1, T, 1, D, generator=g)) + 1).half()
    k = (F.elu(torch.randn(1, T, 1, D, generator=g)) + 1).half()
    v = torch.randn(1, T, 1, D, generator=g).half()
    return q, k, v


def test_100k_fp16_steps_no_overflow_state_fp32():
    T, piece = 100_000, 10_000
    q, k, v = _stream(T)
    state, outs = None, []
    with torch.no_grad():
        for a in range(0, T, piece):  # the recurrent backend, carrying the state across pieces
            out, state = causal_linear_attention(
                q[:, a : a + piece], k[:, a : a + piece], v[:, a : a + piece],
                initial_state=state, backend="recurrent",
            )  # fmt: skip
            assert state.S.dtype == torch.float32 and state.z.dtype == torch.float32
            outs.append(out)
    out = torch.cat(outs, dim=1)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert torch.isfinite(state.S).all() and torch.isfinite(state.z).all()

    # The final state is the plain sum over all steps: check it against a float64 sum.
    k64, v64, q64 = k.double()[0, :, 0], v.double()[0, :, 0], q.double()[0, :, 0]
    S_true, z_true = k64.T @ v64, k64.sum(0)
    assert float((state.S[0, 0].double() - S_true).abs().max() / S_true.abs().max()) < 1e-4
    assert float((state.z[0, 0].double() - z_true).abs().max() / z_true.abs().max()) < 1e-5
    # The normaliser really is beyond float16's range, so a float16 state would have overflowed.
    den_last = float(q64[-1] @ z_true)
    assert den_last > _FP16_MAX
    expected_last = (q64[-1] @ S_true) / den_last
    torch.testing.assert_close(out[0, -1, 0].double(), expected_last, rtol=1e-2, atol=1e-3)


def test_step_function_matches_backend_on_fp16_stream_with_decay():
    """The per-frame ``recurrent_step`` (what streaming code calls) agrees with the backend on fp16 input."""
    T, H, D = 3_000, 2, 8
    g = torch.Generator().manual_seed(1)
    q = (F.elu(torch.randn(1, T, H, D, generator=g)) + 1).half()
    k = (F.elu(torch.randn(1, T, H, D, generator=g)) + 1).half()
    v = torch.randn(1, T, H, D, generator=g).half()
    decay = torch.tensor([0.999, 1.0])
    with torch.no_grad():
        full, final = causal_linear_attention(q, k, v, decay=decay, backend="chunked")
        state = LinearAttentionState.zeros(1, H, D, D)
        log_g = torch.log(decay).expand(1, H)
        worst = 0.0
        for t in range(T):
            out, state = recurrent_step(q[:, t], k[:, t], v[:, t], state, log_g_t=log_g)
            assert out.dtype == torch.float16
            worst = max(worst, float((out.float() - full[:, t].float()).abs().max()))
    assert state.S.dtype == torch.float32 and torch.isfinite(state.S).all()
    assert worst < 1e-2
    torch.testing.assert_close(state.S, final.S, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(state.z, final.z, rtol=1e-4, atol=1e-4)
    # With decay the normaliser stays bounded by sum_j g^j max|k|: about 1000 * max k for g = 0.999.
    assert float(state.z[0, 0].max()) < 1000 * float(k.float().max()) + 1
