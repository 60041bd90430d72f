"""PackedStep against its plain form, CTCModel.step (and the full-utterance forward): logits and every state
tensor, for every attention option, batch sizes on both sides of the step's small/large-batch switches,
irregular chunks; purity, the weight snapshot, swapping the two forms mid-stream, and bad input."""

from __future__ import annotations

import itertools

import pytest
import torch

from asr.model import CTCModel, EncoderState, ModelConfig, PackedStep
from kernels.linear_attention import cpu_step

_BASE = dict(vocab_size=11, input_dim=20, subsampling_channels=6, d_model=16, num_layers=2, num_heads=2,
             ff_dim=24, dropout=0.0, num_random_features=8, conv_kernel_size=5)  # fmt: skip
_CHUNKS = (16, 4, 32, 8, 4)  # feature frames per step


def _leaves(state: EncoderState) -> list[torch.Tensor]:
    return [x for x in torch.utils._pytree.tree_leaves(state) if isinstance(x, torch.Tensor)]


def _model(seed: int = 0, dtype: torch.dtype = torch.float32, **overrides) -> CTCModel:
    torch.manual_seed(seed)
    model = CTCModel(ModelConfig(**{**_BASE, **overrides})).eval().to(dtype)
    with torch.no_grad():  # move every norm off its identity initialisation, so that folding them is tested
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def _stream(step, model: CTCModel, feats: torch.Tensor, chunks=_CHUNKS):
    state = model.init_state(feats.shape[0])
    outs, states, start = [], [], 0
    for c in chunks:
        with torch.no_grad():
            out, state = step(feats[:, start : start + c], state)
        outs.append(out)
        states.append(state)
        start += c
    return torch.cat(outs, dim=1), states


def _assert_states_close(a: EncoderState, b: EncoderState, tol: float) -> None:
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
        if x.dtype == torch.bool:
            assert torch.equal(x, y)
        else:
            scale = 1.0 + y.abs().max().item()
            assert (x - y).abs().max().item() <= tol * scale


_LINEAR = list(
    itertools.product(["elu+1", "relu", "positive_random"], ["none", "per_head", "gated"], ["none", "rms", "layer"])
)


@pytest.mark.parametrize("kernel", ["c", "torch"])
@pytest.mark.parametrize(("feature_map", "decay", "output_norm"), _LINEAR)
@pytest.mark.parametrize("batch", [1, 5])
def test_packed_step_equals_the_module_step(feature_map, decay, output_norm, batch, kernel):
    model = _model(feature_map=feature_map, decay=decay, output_norm=output_norm)
    feats = torch.randn(batch, sum(_CHUNKS), 20)
    packed = PackedStep(model, kernel=kernel)
    assert packed.kernel == kernel
    packed_out, packed_states = _stream(packed, model, feats)
    plain_out, plain_states = _stream(model.step, model, feats)
    assert packed_out.shape == plain_out.shape == (batch, sum(_CHUNKS) // 4, 11)
    assert (packed_out - plain_out).abs().max().item() <= 1e-5
    for a, b in zip(packed_states, plain_states, strict=True):
        _assert_states_close(a, b, 1e-5)
    with torch.no_grad():  # and the full-utterance forward (causal: the same frames)
        full, _ = model(feats, torch.full((batch,), feats.shape[1]))
    assert (packed_out - full).abs().max().item() <= 1e-4


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_a_model_stored_in_float16_steps_through_float16_panels_with_the_same_results(batch):
    """Weights exact in float16 (a model saved in float16, as the bundled one) are packed in float16 for the few-row
    products (kernels.gemm): the same logits and states as the module step, for batches on both sides of
    kernels.gemm.SMALL_ROWS (rows = streams x frames a chunk: 1, 2, 4 or 8 frames a stream here)."""
    model = _model(seed=4).half().float()
    packed = PackedStep(model, kernel="c")
    assert packed.head.panels.half and all(
        b.ff_inner.panels.half and b.attention.qkv.panels.half for b in packed.blocks
    )
    feats = torch.randn(batch, sum(_CHUNKS), 20)
    packed_out, packed_states = _stream(packed, model, feats)
    plain_out, plain_states = _stream(model.step, model, feats)
    assert (packed_out - plain_out).abs().max().item() <= 1e-5
    for a, b in zip(packed_states, plain_states, strict=True):
        _assert_states_close(a, b, 1e-5)


@pytest.mark.parametrize(
    "overrides",
    [dict(conv_module=False), dict(attention="softmax"), dict(attention="softmax", attention_window=3)],
    ids=["no_conv", "softmax", "softmax_window"],
)
def test_packed_step_other_architectures(overrides):
    model = _model(**overrides)
    feats = torch.randn(3, sum(_CHUNKS), 20)
    packed_out, packed_states = _stream(PackedStep(model), model, feats)
    plain_out, plain_states = _stream(model.step, model, feats)
    assert (packed_out - plain_out).abs().max().item() <= 1e-5
    _assert_states_close(packed_states[-1], plain_states[-1], 1e-5)


@pytest.mark.parametrize("kernel", ["c", "torch"])
def test_packed_step_big_batches_take_the_library_convolutions(kernel):
    """Past 16 (stream, frame) rows the depthwise conv and the subsampling's conv2 run through oneDNN."""
    from asr.model.inference.conv import WINDOWED_ROWS as _WINDOWED_ROWS
    from asr.model.inference.subsampling import IM2COL_ROWS as _IM2COL_ROWS

    model = _model(decay="per_head", output_norm="rms")
    batch = 9
    assert batch * 4 > max(_WINDOWED_ROWS, _IM2COL_ROWS)
    feats = torch.randn(batch, 48, 20)
    packed_out, packed_states = _stream(PackedStep(model, kernel=kernel), model, feats, chunks=(16, 16, 16))
    plain_out, plain_states = _stream(model.step, model, feats, chunks=(16, 16, 16))
    assert (packed_out - plain_out).abs().max().item() <= 1e-5
    _assert_states_close(packed_states[-1], plain_states[-1], 1e-5)


def test_packed_step_float64():
    # (the module computes a gated decay's gates and a per-head output norm in float32 even for a float64 model;
    # PackedStep does the same for the gates, and keeps the norm in float64: so neither is used here)
    model = _model(dtype=torch.float64, decay="per_head", feature_map="relu")
    feats = torch.randn(2, sum(_CHUNKS), 20, dtype=torch.float64)
    packed_out, packed_states = _stream(PackedStep(model), model, feats)
    plain_out, plain_states = _stream(model.step, model, feats)
    assert packed_out.dtype == torch.float32  # log-probs are float32, as CTCModel.step's
    assert all(x.dtype == torch.float64 for x in _leaves(packed_states[-1]))
    _assert_states_close(packed_states[-1], plain_states[-1], 1e-10)


def test_packed_and_module_steps_swap_mid_stream_and_the_input_state_is_untouched():
    model = _model(decay="per_head", output_norm="rms")
    packed = PackedStep(model)
    feats = torch.randn(2, 48, 20)
    state = model.init_state(2)
    with torch.no_grad():
        _, state = packed(feats[:, :16], state)
        before = [x.clone() for x in _leaves(state)]
        out_p, _ = packed(feats[:, 16:32], state)
        assert all(torch.equal(x, y) for x, y in zip(_leaves(state), before, strict=True))
        _, state_m = model.step(feats[:, 16:32], state)  # the module continues the packed step's state
        last_m, _ = model.step(feats[:, 32:], state_m)
        last_p, _ = packed(feats[:, 32:], state_m)  # and the other way round
        out_m, _ = model.step(feats[:, 16:32], state)
    assert (out_p - out_m).abs().max().item() <= 1e-5
    assert (last_p - last_m).abs().max().item() <= 1e-5


@pytest.mark.parametrize("attention", ["linear", "softmax"])
def test_packed_step_is_a_snapshot_of_the_weights(attention):
    model = _model(attention=attention)
    packed = PackedStep(model)
    feats = torch.randn(1, 16, 20)
    before, _ = packed(feats, model.init_state(1))
    with torch.no_grad():
        model.head.weight.zero_()
        model.encoder.blocks[0].attention.qkv.weight.mul_(3.0)
    after, _ = packed(feats, model.init_state(1))
    fresh, _ = PackedStep(model)(feats, model.init_state(1))
    assert torch.equal(before, after)
    assert not torch.allclose(fresh, before)


def test_packed_step_rejects_bad_input():
    model = _model()
    packed = PackedStep(model)
    state = model.init_state(2)
    with pytest.raises(ValueError, match=r"features must be \[B, T, 20\]"):
        packed(torch.zeros(2, 16, 21), state)
    with pytest.raises(ValueError, match="multiple of 4"):
        packed(torch.zeros(2, 6, 20), state)
    with pytest.raises(ValueError, match="batch size 3 does not match the state's 2"):
        packed(torch.zeros(3, 16, 20), state)
    with pytest.raises(ValueError, match="floating point"):
        packed(torch.zeros(2, 16, 20, dtype=torch.int64), state)
    with pytest.raises(ValueError, match="EncoderState with 2 layer states"):
        packed(torch.zeros(2, 16, 20), state._replace(layers=state.layers[:1]))
    other = _model(d_model=32, subsampling_channels=4)
    with pytest.raises(ValueError, match="subsampling cache"):
        packed(torch.zeros(2, 16, 20), other.init_state(2))
    with pytest.raises(ValueError, match="first attention state"):
        packed(torch.zeros(2, 16, 20), state._replace(layers=other.init_state(2).layers[:2]))
    with pytest.raises(ValueError, match="non-causal"):
        PackedStep(_model(causal=False))
    with pytest.raises(ValueError, match="packs a CTCModel"):
        PackedStep(model.encoder)
    with pytest.raises(ValueError, match="kernel must be one of"):
        PackedStep(model, kernel="fast")


def test_kernel_choice_when_the_c_kernel_cannot_be_built(monkeypatch, caplog):
    """auto: the C kernel on the CPU, else PyTorch ops with a warning saying why; 'c' insists."""
    model = _model()
    assert PackedStep(model).kernel == "c"  # the machines that run the tests have a C compiler

    def unavailable():
        raise cpu_step.CpuKernelUnavailable("no C compiler here (test)")

    monkeypatch.setattr(cpu_step, "load", unavailable)
    with caplog.at_level("WARNING", logger="asr.model.inference.step"):
        packed = PackedStep(model)
    assert packed.kernel == "torch" and "no C compiler here (test)" in caplog.text
    with pytest.raises(cpu_step.CpuKernelUnavailable, match="no C compiler here"):
        PackedStep(model, kernel="c")
    feats = torch.randn(2, 16, 20)
    out, _ = packed(feats, model.init_state(2))
    ref, _ = model.step(feats, model.init_state(2))
    assert (out - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("kernel", ["c", "torch"])
@pytest.mark.parametrize("batch", [1, 4])  # with the C kernels: each block in one call (4 rows), op by op (16)
def test_donated_state_is_updated_in_place_with_the_same_result(kernel, batch):
    model = _model(decay="per_head", output_norm="rms")
    packed = PackedStep(model, kernel=kernel)
    feats = torch.randn(batch, 32, 20)
    _, state = packed(feats[:, :16], model.init_state(batch))
    kept = EncoderState(*torch.utils._pytree.tree_map(lambda x: x.clone(), tuple(state)))
    pure_out, pure_state = packed(feats[:, 16:], kept)
    out, new_state = packed(feats[:, 16:], state, donate=True)
    assert torch.equal(out, pure_out)
    for a, b in zip(_leaves(new_state), _leaves(pure_state), strict=True):
        assert torch.equal(a, b)
    first = state.layers[0].attention
    assert new_state.layers[0].attention.S.data_ptr() == first.S.data_ptr()  # written over the given state
    assert torch.equal(first.S, new_state.layers[0].attention.S)


@pytest.mark.parametrize("kernel", ["c", "torch"])
@pytest.mark.parametrize("decay", ["none", "per_head", "gated"])
def test_packed_step_takes_a_long_chunk_in_kernel_sized_pieces(decay, kernel):
    """A chunk longer than the kernel's chunk size (here 3 frames) goes in pieces, with the same results."""
    model = _model(decay=decay, chunk_size=3)
    feats = torch.randn(2, 4 * 11, 20)  # 11 encoder frames: pieces of 3, 3, 3, 2
    packed_out, packed_states = _stream(PackedStep(model, kernel=kernel), model, feats, chunks=(28, 16))
    plain_out, plain_states = _stream(model.step, model, feats, chunks=(28, 16))
    assert (packed_out - plain_out).abs().max().item() <= 1e-5
    _assert_states_close(packed_states[-1], plain_states[-1], 1e-5)
    donated_out, _ = PackedStep(model, kernel=kernel)(feats, model.init_state(2), donate=True)
    assert (donated_out - plain_out).abs().max().item() <= 1e-5


def test_an_option_the_packed_form_does_not_know_is_an_error_when_packing():
    """No fallback through the modules: a layer or option without a packed form is refused at pack time."""
    model = _model()
    model.encoder.blocks[1].attention.phi = torch.nn.Identity()
    with pytest.raises(ValueError, match="no form for the feature map Identity"):
        PackedStep(model)
    model = _model()
    model.encoder.blocks[0].attention = torch.nn.Identity()
    with pytest.raises(ValueError, match="no form for the attention layer Identity"):
        PackedStep(model)


@pytest.mark.parametrize(
    ("feature_map", "decay", "output_norm", "conv_module"),
    [("elu+1", "per_head", "rms", True), ("relu", "none", "none", True), ("elu+1", "per_head", "rms", False),
     ("elu+1", "gated", "rms", True), ("elu+1", "per_head", "layer", True)],
)  # fmt: skip
@pytest.mark.parametrize("batch", [1, 2])
def test_a_few_rows_step_each_block_in_one_call(monkeypatch, feature_map, decay, output_norm, conv_module, batch):
    """A step of <= gemm.SMALL_ROWS rows runs each block in one kernels.block call where that kernel has a form
    for the block (a gated decay or a LayerNorm output norm go op by op): same logits and states as op by op and as
    the module step; the input state untouched."""
    from kernels.block import FusedBlock

    model = _model(feature_map=feature_map, decay=decay, output_norm=output_norm, conv_module=conv_module)
    packed, by_op = PackedStep(model, kernel="c"), PackedStep(model, kernel="c", fused=False)
    expect_fused = decay != "gated" and output_norm != "layer"
    assert all((b.fused is not None) == expect_fused for b in packed.blocks)
    assert all(b.fused is None for b in by_op.blocks)
    calls = []
    original = FusedBlock.step_unchecked
    monkeypatch.setattr(FusedBlock, "step_unchecked", lambda self, *a: calls.append(a[0].shape) or original(self, *a))
    feats = torch.randn(batch, sum(_CHUNKS), 20)
    out, states = _stream(packed, model, feats)
    rows = [batch * c // 4 for c in _CHUNKS]
    assert len(calls) == (2 * sum(r <= 8 for r in rows) if expect_fused else 0)  # 2 blocks a step
    ref_out, ref_states = _stream(by_op, model, feats)
    plain_out, plain_states = _stream(model.step, model, feats)
    assert (out - ref_out).abs().max().item() <= 1e-5 and (out - plain_out).abs().max().item() <= 1e-5
    for a, b, c in zip(states, ref_states, plain_states, strict=True):
        _assert_states_close(a, b, 1e-5)
        _assert_states_close(a, c, 1e-5)
    state = states[1]  # purity: a step from a kept state leaves it as it was
    kept = [x.clone() for x in _leaves(state)]
    packed(feats[:, :4], state)
    assert all(torch.equal(a, b) for a, b in zip(_leaves(state), kept, strict=True))

