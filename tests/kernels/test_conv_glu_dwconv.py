"""The GLU and depthwise conv ops in C (kernels/conv/conv.c) against their PyTorch references in float64: the gate
(GLU) written into a strided buffer after cached rows, the depthwise conv + LayerNorm + SiLU read from such a buffer,
sizes that take the vector loops and their remainders, values across the range of the approximated exp, and
the argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels.conv import bias_glu, bias_glu_reference, dwconv_ln_silu, dwconv_ln_silu_reference


@pytest.mark.parametrize(("b", "t", "d"), [(256, 4, 192), (3, 5, 7), (1, 1, 16)])
def test_bias_glu_matches_torch_into_a_strided_buffer(b, t, d):
    g = torch.Generator().manual_seed(d)
    x, bias = torch.randn(b * t, 2 * d, generator=g) * 4, torch.randn(2 * d, generator=g)
    full = torch.full((b, 3 + t, d), float("nan"))  # three cached rows first, untouched
    out = bias_glu(x, bias, full[:, 3:])
    assert out.data_ptr() == full[:, 3:].data_ptr() and torch.isnan(full[:, :3]).all()
    ref = bias_glu_reference(x.double(), bias.double()).view(b, t, d)
    err = (full[:, 3:].double() - ref).abs()
    assert (err <= 2e-7 * ref.abs() + 1e-7).all(), err.max()


def test_gates_over_the_whole_range():
    gate = torch.linspace(-150, 150, 3001)
    x = torch.stack([torch.full_like(gate, 3.0), gate], dim=1)  # d = 1: value 3, gate g
    out = bias_glu(x, torch.zeros(2), torch.empty(gate.numel(), 1, 1)).flatten()
    ref = 3.0 * torch.sigmoid(gate.double())
    assert ((out.double() - ref).abs() <= 2e-7 * ref.abs() + 1e-30).all()


def test_bad_arguments_are_refused():
    x, bias = torch.randn(8, 6), torch.randn(6)
    with pytest.raises(ValueError, match="float32"):
        bias_glu(x.double(), bias, torch.empty(2, 4, 3))
    with pytest.raises(ValueError, match=r"x must be \[8, 8\]"):
        bias_glu(x, bias, torch.empty(2, 4, 4))
    with pytest.raises(ValueError, match="contiguous last dimension"):
        bias_glu(x, bias, torch.empty(2, 3, 4).transpose(1, 2))


@pytest.mark.parametrize(("b", "t", "k", "d"), [(256, 4, 15, 192), (3, 7, 5, 20), (1, 1, 3, 16), (2, 2, 1, 8)])
def test_dwconv_ln_silu_matches_depthwise_layer_norm_silu(b, t, k, d):
    g = torch.Generator().manual_seed(k * d)
    store = torch.randn(b, k - 1 + t + 3, d, generator=g) * 2  # rows after the view are not read
    x = store[:, : k - 1 + t]  # batch stride != rows * d, as a buffer with spare rows would give
    w = torch.randn(d, k, generator=g)  # the module's [d, K]
    bias, gain, shift = (torch.randn(d, generator=g) for _ in range(3))
    out = dwconv_ln_silu(x, w.t().contiguous(), bias, gain, shift, 1e-5)
    ref = dwconv_ln_silu_reference(x.double(), w.t().double(), bias.double(), gain.double(), shift.double(), 1e-5)
    conv = F.conv1d(x.double().transpose(1, 2), w.double()[:, None], bias.double(), groups=d)
    assert torch.allclose(  # the reference is the causal depthwise conv, LayerNorm and SiLU
        ref, F.silu(F.layer_norm(conv.transpose(1, 2), (d,), gain.double(), shift.double(), 1e-5)).reshape(b * t, d)
    )
    assert out.shape == (b * t, d)
    assert (out.double() - ref).abs().max().item() <= 2e-5 * (1 + ref.abs().max().item())


def test_dwconv_ln_silu_refuses_bad_arguments():
    x, w, v = torch.randn(2, 6, 8), torch.randn(5, 8), torch.randn(8)
    with pytest.raises(ValueError, match="at least 7"):
        dwconv_ln_silu(x, torch.randn(7, 8), v, v, v, 1e-5)
    with pytest.raises(ValueError, match=r"contiguous \[K, d\]"):
        dwconv_ln_silu(x, torch.randn(10, 8)[::2], v, v, v, 1e-5)
    with pytest.raises(ValueError, match=r"norm_bias must be \[8\]"):
        dwconv_ln_silu(x, w, v, v, torch.randn(9), 1e-5)
    with pytest.raises(ValueError, match="float32"):
        dwconv_ln_silu(x.double(), w, v, v, v, 1e-5)
