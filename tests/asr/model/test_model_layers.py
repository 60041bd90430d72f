"""Each layer alone: step over random chunkings equals forward; states are pure; bad chunks are refused."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from asr.model import (
    CausalConvSubsampling,
    ConvModule,
    CTCModel,
    EncoderBlock,
    LinearAttention,
    SoftmaxAttention,
)

from ._model_helpers import CAUSAL_VARIANTS, one_thread, random_chunks, tiny

TOL = 1e-4


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _run_steps(layer, x: torch.Tensor, sizes: list[int]):
    state = layer.init_state(x.shape[0])
    outs, start = [], 0
    for n in sizes:
        y, state = layer.step(x[:, start : start + n], state)
        outs.append(y)
        start += n
    return torch.cat(outs, dim=1), state


def _attention(cfg):
    return LinearAttention(cfg) if cfg.attention == "linear" else SoftmaxAttention(cfg)


@pytest.mark.parametrize("variant", sorted(CAUSAL_VARIANTS))
@pytest.mark.parametrize("seed", [0, 1])
def test_attention_step_matches_forward(variant: str, seed: int) -> None:
    torch.manual_seed(seed)
    cfg = tiny(**CAUSAL_VARIANTS[variant])
    layer = _attention(cfg).eval()
    x = torch.randn(2, 41, cfg.d_model)
    sizes = random_chunks(41, rng=random.Random(seed))
    with torch.no_grad():
        full = layer(x)
        streamed, _ = _run_steps(layer, x, sizes)
    assert streamed.shape == full.shape
    assert (streamed - full).abs().max().item() <= TOL, sizes


@pytest.mark.parametrize("variant", ["linear-conv", "linear-gated-layernorm", "softmax-window"])
def test_block_step_matches_forward(variant: str) -> None:
    torch.manual_seed(3)
    cfg = tiny(**CAUSAL_VARIANTS[variant])
    block = EncoderBlock(cfg).eval()
    x = torch.randn(3, 29, cfg.d_model)
    with torch.no_grad():
        full = block(x)
        streamed, _ = _run_steps(block, x, random_chunks(29, rng=random.Random(5)))
    assert (streamed - full).abs().max().item() <= TOL


@pytest.mark.parametrize("kernel_size", [1, 2, 5])
def test_conv_module_step_matches_forward(kernel_size: int) -> None:
    torch.manual_seed(kernel_size)
    conv = ConvModule(d_model=8, kernel_size=kernel_size, causal=True, dropout=0.0).eval()
    x = torch.randn(2, 23, 8)
    with torch.no_grad():
        full = conv(x)
        streamed, state = _run_steps(conv, x, [1, 3, 1, 7, 2, 9])
    assert (streamed - full).abs().max().item() <= TOL
    assert state.cache.shape == (2, kernel_size - 1, 8)


def test_conv_module_step_matches_forward_for_big_batches() -> None:
    """Batches on both sides of the packed step's switch (``WINDOWED_ROWS`` rows): the module step is the same
    reference for any batch."""
    from asr.model.inference.conv import WINDOWED_ROWS as _WINDOWED_ROWS

    torch.manual_seed(3)
    conv = ConvModule(d_model=8, kernel_size=5, causal=True, dropout=0.0).eval()
    batch = _WINDOWED_ROWS // 4 + 1
    x = torch.randn(batch, 14, 8)
    with torch.no_grad():
        full = conv(x)
        streamed, _ = _run_steps(conv, x, [4, 1, 4, 5])  # 4 and 5 frames: over the threshold, 1: under it
    assert batch * 4 > _WINDOWED_ROWS >= batch
    assert (streamed - full).abs().max().item() <= TOL


def test_subsampling_is_causal_block_aligned_and_streams() -> None:
    torch.manual_seed(0)
    sub = CausalConvSubsampling(input_dim=20, channels=4, d_model=8).eval()
    x = torch.randn(2, 4 * 13 + 3, 20)  # 3 extra frames: not enough for another output frame
    lengths = torch.tensor([x.shape[1], 30])
    with torch.no_grad():
        full, out_lengths = sub(x, lengths)
        assert full.shape == (2, 13, 8)
        assert out_lengths.tolist() == [13, 7]
        # Output frame t depends on input frames <= 4t + 3 only: changing frame 4t + 4 leaves it unchanged.
        t = 5
        x2 = x.clone()
        x2[:, 4 * t + 4 :] = torch.randn_like(x2[:, 4 * t + 4 :])
        changed, _ = sub(x2, lengths)
        assert torch.equal(changed[:, : t + 1], full[:, : t + 1])
        assert not torch.allclose(changed[:, t + 1], full[:, t + 1])
        streamed, _ = _run_steps(sub, x[:, : 4 * 13], random_chunks(4 * 13, rng=random.Random(2), multiple=4))
    assert (streamed - full).abs().max().item() <= TOL


@pytest.mark.parametrize("autocast", [False, True])
def test_subsampling_forward_equals_left_padded_convolutions(autocast) -> None:
    """forward's convolutions (their own padding, the right-pad frame dropped) compute F.pad on the left then an
    unpadded conv, for odd and even lengths, forward and backward (and under bf16 autocast), up to the rounding
    of oneDNN's summation order (it may pick another algorithm for another padding)."""
    torch.manual_seed(0)
    sub = CausalConvSubsampling(input_dim=20, channels=4, d_model=8)

    def reference(x):
        h = F.silu(sub.conv1(F.pad(x.unsqueeze(1), (0, 0, 1, 0))))
        h = F.silu(sub.conv2(F.pad(h, (0, 0, 1, 0))))
        return sub._project(h)

    for t in (4, 5, 6, 7, 9, 10, 31, 64):
        x = torch.randn(2, t, 20)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            ours, lengths = sub(x, torch.tensor([t, t]))
            ref = reference(x)
        assert ours.shape == ref.shape == (2, t // 4, 8) and lengths.tolist() == [t // 4] * 2
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
        grads = torch.autograd.grad(ours.float().square().sum(), list(sub.parameters()))
        ref_grads = torch.autograd.grad(ref.float().square().sum(), list(sub.parameters()))
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)


def test_subsampling_refuses_chunks_that_are_not_multiples_of_four() -> None:
    sub = CausalConvSubsampling(input_dim=20, channels=4, d_model=8)
    state = sub.init_state(1)
    for bad in (0, 3, 6):
        with pytest.raises(ValueError, match="multiple of 4"):
            sub.step(torch.zeros(1, bad, 20), state)
    with pytest.raises(ValueError, match=r"\[B, T, 20\]"):
        sub.step(torch.zeros(1, 4, 21), state)
    with pytest.raises(ValueError, match="at least 4"):
        sub(torch.zeros(1, 3, 20), torch.tensor([3]))


@pytest.mark.parametrize("variant", ["linear-gated-layernorm", "softmax"])
def test_step_does_not_modify_its_input_state(variant: str) -> None:
    torch.manual_seed(0)
    cfg = tiny(**CAUSAL_VARIANTS[variant])
    layer = _attention(cfg).eval()
    _, state = _run_steps(layer, torch.randn(2, 6, cfg.d_model), [6])
    before = [t.clone() for t in state]
    with torch.no_grad():
        layer.step(torch.randn(2, 4, cfg.d_model), state)
    assert all(torch.equal(a, b) for a, b in zip(before, state, strict=True))


def test_softmax_window_keeps_a_bounded_cache() -> None:
    cfg = tiny(attention="softmax", attention_window=4)
    layer = SoftmaxAttention(cfg).eval()
    with torch.no_grad():
        _, state = _run_steps(layer, torch.randn(1, 50, cfg.d_model), [7] * 7 + [1])
    assert state.k.shape[2] == 3 and bool(state.valid.all())


def test_noncausal_layers_cannot_step() -> None:
    cfg = tiny(causal=False)
    for layer in (LinearAttention(cfg), SoftmaxAttention(tiny(causal=False, attention="softmax"))):
        with pytest.raises(ValueError, match="non-causal"):
            layer.init_state(1)
    with pytest.raises(ValueError, match="non-causal"):
        ConvModule(d_model=8, kernel_size=3, causal=False, dropout=0.0).init_state(1)


def test_random_features_are_stored_and_differ_between_layers() -> None:
    model = CTCModel(tiny(feature_map="positive_random", num_random_features=12))
    keys = [k for k in model.state_dict() if k.endswith("phi.projection")]
    assert len(keys) == model.config.num_layers
    first, second = (model.state_dict()[k] for k in keys[:2])
    assert first.shape == (12, model.config.head_dim) and not torch.equal(first, second)
    assert model.encoder.blocks[0].attention.key_dim == 12
