"""Non-causal linear attention (paper Eq. 6) against a quadratic float64 reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels import noncausal_linear_attention


def _quadratic(q, k, v, mask, eps):
    """out_i = sum_j (q_i . k_j) v_j / (sum_j q_i . k_j + eps) over unpadded j, in float64."""
    q, k, v = q.double(), k.double(), v.double()
    scores = torch.einsum("bihd,bjhd->bhij", q, k)  # [B, H, T, T]
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :], 0.0)
    num = torch.einsum("bhij,bjhe->bihe", scores, torch.nan_to_num(v, posinf=0.0, neginf=0.0))
    den = scores.sum(-1).transpose(1, 2).unsqueeze(-1)  # [B, T, H, 1]
    return num / (den + eps)


def _inputs(B=3, T=11, H=2, dk=5, dv=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = F.elu(torch.randn(B, T, H, dk, generator=g)) + 1
    k = F.elu(torch.randn(B, T, H, dk, generator=g)) + 1
    v = torch.randn(B, T, H, dv, generator=g)
    return q, k, v


@pytest.mark.parametrize("with_mask", [False, True])
def test_matches_quadratic_reference_with_gradients(with_mask):
    q, k, v = _inputs()
    mask = None
    if with_mask:
        lengths = torch.tensor([11, 7, 1])
        mask = torch.arange(11)[None, :] >= lengths[:, None]  # True = padding
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out = noncausal_linear_attention(*leaves, key_padding_mask=mask)
    ref_leaves = [x.double().requires_grad_() for x in (q, k, v)]
    ref = _quadratic(*ref_leaves, mask, 1e-6)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    grads = torch.autograd.grad((out * w).sum(), leaves)
    ref_grads = torch.autograd.grad((ref * w.double()).sum(), ref_leaves)
    for name, a, b in zip("qkv", grads, ref_grads):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5, msg=f"grad {name}")


def test_padding_is_ignored_even_when_not_finite():
    q, k, v = _inputs(B=2, T=8, seed=1)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[1, 5:] = True
    out = noncausal_linear_attention(q, k, v, key_padding_mask=mask)
    k2, v2 = k.clone(), v.clone()
    k2[1, 5:] = 1e4
    v2[1, 5:] = float("inf")
    out2 = noncausal_linear_attention(q, k2, v2, key_padding_mask=mask)
    torch.testing.assert_close(out2, out)
    # the padded sequence equals the same sequence cut to its length
    short = noncausal_linear_attention(q[1:, :5], k[1:, :5], v[1:, :5])
    torch.testing.assert_close(out[1:, :5], short)


def test_all_padding_gives_zero_and_low_precision_inputs():
    q, k, v = _inputs(B=2, T=6, seed=2)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0] = True
    out = noncausal_linear_attention(q, k, v, key_padding_mask=mask)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    for dtype, tol in ((torch.bfloat16, 1e-2), (torch.float16, 2e-3)):
        low = noncausal_linear_attention(q.to(dtype), k.to(dtype), v.to(dtype))
        ref = _quadratic(q.to(dtype), k.to(dtype), v.to(dtype), None, 1e-6)
        assert low.dtype == dtype
        assert float((low.double() - ref).abs().max() / ref.abs().max()) < tol


def test_is_the_last_step_of_the_causal_form():
    """Every query sees every key: equal to the causal form's output at the last step, for any query."""
    from kernels import causal_linear_attention

    q, k, v = _inputs(B=1, T=9, seed=3)
    out = noncausal_linear_attention(q, k, v)
    for i in (0, 4, 8):
        qi = q.clone()
        qi[:, -1] = q[:, i]
        causal, _ = causal_linear_attention(qi, k, v, backend="chunked", chunk_size=4)
        torch.testing.assert_close(causal[:, -1], out[:, i], rtol=1e-5, atol=1e-6)
