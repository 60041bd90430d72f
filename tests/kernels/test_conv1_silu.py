"""The 3x3 stride-2 conv + SiLU op in C (kernels/conv/conv.c) against its PyTorch reference in float64:
channel counts that take the specialised copies and the general loop, outputs written into a strided buffer
(after a cached row), activations across the range of the approximated exp, and the argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels.conv import conv1_silu, conv1_silu_reference


def _reference(frames, weight, bias, t1):
    return conv1_silu_reference(frames.double(), weight.double(), bias.double(), t1)


@pytest.mark.parametrize("channels", [64, 32, 128, 5, 20])
@pytest.mark.parametrize(("rows", "bins"), [(17, 80), (9, 23), (3, 7)])
def test_conv1_silu_matches_conv2d_and_silu(channels, rows, bins):
    g = torch.Generator().manual_seed(channels * rows)
    frames = torch.randn(3, rows, bins, generator=g) * 3
    weight, bias = torch.randn(9, channels, generator=g), torch.randn(channels, generator=g)
    t1, f1 = (rows - 1) // 2, (bins - 3) // 2 + 1
    buf = torch.full((3, 1 + t1, f1, channels), float("nan"))  # written after a cached row
    out = conv1_silu(frames, weight, bias, buf[:, 1:])
    assert out.data_ptr() == buf[:, 1:].data_ptr()
    assert torch.isnan(buf[:, 0]).all() and torch.isfinite(buf[:, 1:]).all()  # only its rows are written
    ref = _reference(frames, weight, bias, t1)
    assert (out.double() - ref).abs().max().item() <= 2e-6 * (1 + ref.abs().max().item())


def test_silu_over_the_whole_range_of_activations():
    """Pre-activations from -200 to 200 (exp's clamps at both ends) against torch's SiLU in float64."""
    a = torch.linspace(-200, 200, 4001)
    weight = torch.zeros(9, 1)
    weight[0, 0] = 1.0  # the output is the first tap of each window: out = silu(x[2t, 2f])
    frames = torch.zeros(1, 3, 2 * a.numel() + 1)
    frames[0, 0, 0::2][: a.numel()] = a
    out = conv1_silu(frames, weight, torch.zeros(1), torch.empty(1, 1, a.numel(), 1))[0, 0, :, 0]
    ref = F.silu(a.double())
    err = (out.double() - ref).abs()
    assert (err <= 2e-7 * ref.abs() + 1e-30).all(), err.max()  # ~2 ulp; ~0 where silu underflows


def test_bad_arguments_are_refused():
    frames, weight, bias = torch.randn(2, 9, 20), torch.randn(9, 4), torch.randn(4)
    with pytest.raises(ValueError, match="float32"):
        conv1_silu(frames.double(), weight, bias, torch.empty(2, 4, 9, 4))
    with pytest.raises(ValueError, match="too short"):
        conv1_silu(frames, weight, bias, torch.empty(2, 5, 9, 4))
    with pytest.raises(ValueError, match="contiguous"):
        conv1_silu(frames, weight, bias, torch.empty(2, 4, 4, 9).transpose(2, 3))
    with pytest.raises(ValueError, match=r"weight must be a contiguous \[9, 4\]"):
        conv1_silu(frames, weight.t().contiguous().t(), bias, torch.empty(2, 4, 9, 4))
