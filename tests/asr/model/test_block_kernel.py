"""The conv module's gate in C (asr/model/block_kernel.c) against PyTorch's GLU: written into a strided buffer
after cached rows (as PackedStep does), sizes that take the vector loop and its remainder, gate values across
the range of the approximated exp, and the argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from asr.model.block_kernel import bias_glu


@pytest.mark.parametrize(("b", "t", "d"), [(256, 4, 192), (3, 5, 7), (1, 1, 16)])
def test_bias_glu_matches_torch_into_a_strided_buffer(b, t, d):
    g = torch.Generator().manual_seed(d)
    x, bias = torch.randn(b * t, 2 * d, generator=g) * 4, torch.randn(2 * d, generator=g)
    full = torch.full((b, 3 + t, d), float("nan"))  # three cached rows first, untouched
    out = bias_glu(x, bias, full[:, 3:])
    assert out.data_ptr() == full[:, 3:].data_ptr() and torch.isnan(full[:, :3]).all()
    ref = F.glu((x + bias).double(), dim=-1).view(b, t, d)
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
