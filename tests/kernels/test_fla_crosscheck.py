"""Cross-check against an independent implementation: fla-core's pure-PyTorch naive linear attention.

fla's ``naive_recurrent_linear_attn(q, k, v, scale, initial_state, output_final_state, normalize)`` uses our
[B, T, H, D] layout, multiplies q by ``scale`` (we pass 1.0: our q is already feature-mapped), and with
``normalize=True`` returns o / (q . z_t + 1e-10) with z_t = z_0 + cumsum(k); its state is (S [B, H, K, V],
z [B, 1, H, K]). ``naive_chunk_linear_attn`` is its chunked form (chunks of 64, no state, T % 64 == 0).
Neither has decay. fla adds 1e-10 to the normaliser, so we call ours with eps=1e-10.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from kernels import LinearAttentionState, causal_linear_attention
from tests.kernels._cases import make_case

with warnings.catch_warnings():  # fla warns at import that its Triton kernels need a GPU: we use none of them
    warnings.filterwarnings("ignore", message="Triton is not supported on current platform")
    from fla.ops.linear_attn.naive import naive_chunk_linear_attn, naive_recurrent_linear_attn

_FLA_EPS = 1e-10


@pytest.mark.parametrize("backend", ["reference", "chunked", "recurrent"])
@pytest.mark.parametrize("T", [1, 37, 100])
def test_matches_fla_naive_recurrent(backend, T):
    case = make_case(B=2, T=T, H=3, dk=8, dv=5, seed=T)
    q, k, v = case.q.float(), case.k.float(), case.v.float()
    S0, z0 = case.S0.float(), case.z0.float()
    fla_out, (fla_S, fla_z) = naive_recurrent_linear_attn(
        q, k, v, scale=1.0, initial_state=(S0, z0.unsqueeze(1)), output_final_state=True, normalize=True
    )
    out, state = causal_linear_attention(
        q, k, v, initial_state=LinearAttentionState(S0, z0), backend=backend, chunk_size=16, eps=_FLA_EPS
    )
    torch.testing.assert_close(out, fla_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.S, fla_S, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.z, fla_z.squeeze(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [7, 64])
def test_matches_fla_naive_chunk_with_gradients(chunk_size):
    case = make_case(B=1, T=128, H=2, dk=16, dv=16, with_state=False, seed=11)
    ours = [x.float().requires_grad_() for x in (case.q, case.k, case.v)]
    theirs = [x.float().requires_grad_() for x in (case.q, case.k, case.v)]
    out, _ = causal_linear_attention(*ours, backend="chunked", chunk_size=chunk_size, eps=_FLA_EPS)
    fla_out = naive_chunk_linear_attn(*theirs, scale=1.0, normalize=True)
    torch.testing.assert_close(out, fla_out, rtol=1e-5, atol=1e-5)
    w = case.w_out.float()
    grads = torch.autograd.grad((out * w).sum(), ours)
    fla_grads = torch.autograd.grad((fla_out * w).sum(), theirs)
    for name, a, b in zip("qkv", grads, fla_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"grad {name}")


def test_fla_unnormalised_numerator_matches_our_state_readout():
    """fla's un-normalised output q_t S_t equals q_t applied to our carried state after step t."""
    case = make_case(B=1, T=12, H=2, dk=4, dv=3, with_state=False, seed=5)
    q, k, v = case.q.float(), case.k.float(), case.v.float()
    fla_num, _ = naive_recurrent_linear_attn(q, k, v, scale=1.0, normalize=False)
    state = None
    for t in range(q.shape[1]):
        _, state = causal_linear_attention(
            q[:, t : t + 1], k[:, t : t + 1], v[:, t : t + 1], initial_state=state, backend="chunked"
        )
        num_t = torch.einsum("bhk,bhkv->bhv", q[:, t], state.S)
        torch.testing.assert_close(num_t, fla_num[:, t], rtol=1e-5, atol=1e-5)
