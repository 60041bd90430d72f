"""asr.model.dropout.Dropout: nn.Dropout's distribution and arithmetic, a cheaper mask, seeded like the rest."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asr.model.dropout import Dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keeps_one_minus_p_and_scales_the_kept(p):
    torch.manual_seed(0)
    x = torch.randn(400_000).abs() + 0.5  # no zeros: a zero in the output is a dropped element
    out = Dropout(p).train()(x)
    kept = out != 0
    n = x.numel()
    # binomial: 5 standard deviations
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * (p * (1 - p) / n) ** 0.5
    torch.testing.assert_close(out[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_numbers_as_nn_dropout_for_the_same_mask(dtype):
    """The kept elements are multiplied by 1 / (1 - p) rounded to the input's dtype, as nn.Dropout does."""
    torch.manual_seed(1)
    x = (torch.randn(64, 50).abs() + 0.5).to(dtype)
    ref = nn.Dropout(0.1).train()(x)
    keep = ref != 0
    assert torch.equal(x * keep.to(dtype).mul_(1 / 0.9), ref)
    ours = Dropout(0.1).train()(x)
    assert ours.dtype == dtype
    mask = ours != 0
    assert torch.equal(ours, x * mask.to(dtype).mul_(1 / 0.9))


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(2)
    x = (torch.randn(32, 40).abs() + 0.5).requires_grad_()
    out = Dropout(0.3).train()(x)
    upstream = torch.randn(out.shape)
    (g,) = torch.autograd.grad(out, x, upstream)
    kept = (out != 0).float()
    torch.testing.assert_close(g, upstream * kept / 0.7, rtol=1e-6, atol=0)


def test_eval_mode_and_zero_p_pass_the_input_through():
    x = torch.randn(8, 16)
    assert Dropout(0.4).eval()(x) is x
    assert Dropout(0.0).train()(x) is x


def test_same_seed_same_mask_and_the_seed_moves_it():
    x = torch.ones(1000)
    torch.manual_seed(3)
    a = Dropout(0.2).train()(x)
    torch.manual_seed(3)
    b = Dropout(0.2).train()(x)
    c = Dropout(0.2).train()(x)
    assert torch.equal(a, b) and not torch.equal(b, c)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_rejects_a_rate_outside_0_1(p):
    with pytest.raises(ValueError, match="dropout p must be in"):
        Dropout(p)


def test_the_model_uses_it_and_its_checkpoint_keys_are_unchanged():
    from asr.model.config import ModelConfig
    from asr.model.ctc import CTCModel

    model = CTCModel(ModelConfig(num_layers=2, d_model=32, num_heads=2, ff_dim=64, vocab_size=10))
    kinds = {type(m) for m in model.modules()}
    assert Dropout in kinds and nn.Dropout not in kinds
    assert not any("dropout" in key for key in model.state_dict())
