"""Feature maps: values, positivity, the registry, and the random-feature map's seeded, unbiased estimate."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kernels import (
    FEATURE_MAPS,
    PositiveRandomFeatures,
    causal_linear_attention,
    elu_plus_one,
    elu_plus_one_reference,
    get_feature_map,
    positive_random_features,
    relu,
)
from kernels.feature_maps import orthogonal_gaussian


def test_elu_plus_one_is_positive_and_matches_definition():
    x = torch.linspace(-30, 5, 200, requires_grad=True)
    phi = elu_plus_one(x)
    assert torch.all(phi > 0)  # F.elu(x) + 1 would round to 0 below about -17 in float32
    xd = x.detach().double()
    exact = torch.where(xd > 0, xd + 1, torch.exp(xd))  # elu(x) + 1 = exp(x) for x <= 0
    torch.testing.assert_close(phi.double(), exact, rtol=1e-6, atol=0)
    moderate = x.detach() > -4
    torch.testing.assert_close(phi[moderate], F.elu(x.detach()[moderate]) + 1)
    (grad,) = torch.autograd.grad(phi.sum(), x)
    torch.testing.assert_close(grad, torch.where(x > 0, 1.0, torch.exp(x)).detach())
    big = torch.tensor([100.0, -100.0], dtype=torch.float16, requires_grad=True)
    (grad,) = torch.autograd.grad(elu_plus_one(big).sum(), big)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_elu_plus_one_matches_the_where_reference_bit_for_bit(dtype):
    """Values with and without autograd, and gradients, equal the torch.where form's exactly, at the edges too:
    tiny values, where exp underflows or x is huge. At x = 0 exactly the derivative is 1 (both branches' slope);
    the reference's clamp passes no gradient there, so it gives 0."""
    x = torch.randn(4, 257, generator=torch.Generator().manual_seed(0)) * 20
    x[0, :8] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, -90.0, 90.0, 1e-3, -1e-3])
    x = x.to(dtype)
    ref = elu_plus_one_reference(x)
    with torch.inference_mode():
        assert torch.equal(elu_plus_one(x), ref)
    assert torch.equal(elu_plus_one(x), ref)  # grad mode on, but x is not tracked
    y = x.clone().requires_grad_()
    phi = elu_plus_one(y)
    assert torch.equal(phi.detach(), ref)
    upstream = torch.randn(phi.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    (g,) = torch.autograd.grad(phi, y, upstream)
    y_ref = x.clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(elu_plus_one_reference(y_ref), y_ref, upstream)
    assert g.dtype == dtype
    zero = x == 0
    assert zero.sum() >= 2  # +-0 (and +-1e-30 in float16)
    assert torch.equal(g[~zero], g_ref[~zero])
    assert torch.equal(g[zero], upstream[zero]) and not g_ref[zero].any()


def test_elu_plus_one_gradient_is_the_derivative():
    x = (torch.randn(64, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 3).requires_grad_()
    assert torch.autograd.gradcheck(elu_plus_one, (x,))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as in training: a bf16 linear's output goes in
        q = torch.nn.functional.linear(x.float().detach().requires_grad_(), torch.eye(64))
        assert q.dtype == torch.bfloat16 and elu_plus_one(q).dtype == torch.bfloat16


def test_relu_is_nonnegative_and_can_vanish():
    x = torch.tensor([-2.0, -0.0, 0.5, 3.0])
    torch.testing.assert_close(relu(x), torch.tensor([0.0, 0.0, 0.5, 3.0]))
    # an all-zero key row: the kernel's eps keeps the output finite (zero)
    q = relu(torch.randn(1, 3, 1, 4)).abs() + 1
    k = torch.zeros(1, 3, 1, 4)
    out, _ = causal_linear_attention(q, k, torch.randn(1, 3, 1, 2), backend="chunked")
    assert torch.equal(out, torch.zeros_like(out))


def test_registry_names_aliases_and_unknown():
    assert set(FEATURE_MAPS) == {"elu_plus_one", "relu", "positive_random"}
    x = torch.randn(3, 8)
    torch.testing.assert_close(get_feature_map("elu_plus_one")(x), F.elu(x) + 1)
    torch.testing.assert_close(get_feature_map("elu+1")(x), F.elu(x) + 1)
    torch.testing.assert_close(get_feature_map("relu")(x), F.relu(x))
    prf = get_feature_map("favor+", dim=8, num_features=16, seed=3)
    assert isinstance(prf, PositiveRandomFeatures) and prf(x).shape == (3, 16)
    assert prf.out_dim(8) == 16 and get_feature_map("relu").out_dim(8) == 8
    with pytest.raises(ValueError, match="'softmax'"):
        get_feature_map("softmax")
    with pytest.raises(ValueError, match="needs dim"):
        get_feature_map("positive_random")
    with pytest.raises(ValueError, match="dim=8, got 5"):
        prf.out_dim(5)


def test_random_features_are_seeded_stored_and_orthogonal():
    a = PositiveRandomFeatures(dim=6, num_features=14, seed=1)
    b = PositiveRandomFeatures(dim=6, num_features=14, seed=1)
    c = PositiveRandomFeatures(dim=6, num_features=14, seed=2)
    assert torch.equal(a.projection, b.projection) and not torch.equal(a.projection, c.projection)
    assert "projection" in a.state_dict()
    restored = PositiveRandomFeatures(dim=6, num_features=14, seed=99)
    restored.load_state_dict(a.state_dict())
    assert torch.equal(restored.projection, a.projection)
    W = orthogonal_gaussian(12, 6, seed=0).double()
    for block in (W[:6], W[6:]):  # rows orthogonal within each block of dim rows
        gram = block @ block.T
        off = gram - torch.diag(torch.diagonal(gram))
        assert float(off.abs().max()) < 1e-5


def test_random_features_estimate_the_softmax_kernel():
    """E[phi(q) . phi(k)] = exp(q . k). One feature's relative variance is exp(|q + k|^2) - 1 (about 3 for
    these norms), so with 8192 features the estimate is within a few percent, and unbiased on average."""
    g = torch.Generator().manual_seed(0)
    D = 8
    q = torch.randn(20, D, generator=g, dtype=torch.float64) * 0.3
    k = torch.randn(20, D, generator=g, dtype=torch.float64) * 0.3
    W = orthogonal_gaussian(8192, D, seed=5).double()
    est = positive_random_features(q, W) @ positive_random_features(k, W).T
    exact = torch.exp(q @ k.T)
    assert torch.all(est > 0)
    ratio = est / exact
    assert float((ratio - 1).abs().mean()) < 0.05
    assert abs(float(ratio.mean()) - 1) < 0.02


def test_query_stabiliser_cancels_in_the_attention_output():
    g = torch.Generator().manual_seed(1)
    prf = PositiveRandomFeatures(dim=4, num_features=32, seed=0)
    x_q = torch.randn(1, 9, 2, 4, generator=g) * 2
    x_k = torch.randn(1, 9, 2, 4, generator=g) * 0.5
    v = torch.randn(1, 9, 2, 3, generator=g)
    k = prf(x_k)
    plain, _ = causal_linear_attention(prf(x_q), k, v, backend="reference", eps=0.0)
    stable, _ = causal_linear_attention(prf(x_q, is_query=True), k, v, backend="reference", eps=0.0)
    torch.testing.assert_close(stable, plain, rtol=1e-5, atol=1e-6)
    assert float(prf(x_q, is_query=True).amax()) <= 1 / math.sqrt(32) + 1e-6


def test_random_features_bad_projection():
    with pytest.raises(ValueError, match=r"D = x.shape\[-1\] = 4.*\(8, 5\)"):
        positive_random_features(torch.randn(2, 4), torch.randn(8, 5))
