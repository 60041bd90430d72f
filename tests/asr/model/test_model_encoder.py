"""The whole model: streaming equals the full pass, batched equals single streams, padding is harmless."""

from __future__ import annotations

import random

import pytest
import torch

from asr.model import CTCModel, EncoderState, ModelConfig, stack_states, unstack_state

from ._model_helpers import CAUSAL_VARIANTS, one_thread, random_chunks, tiny

TOL = 1e-4


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


def _model(cfg: ModelConfig, seed: int = 0) -> CTCModel:
    torch.manual_seed(seed)
    return CTCModel(cfg).eval()


def _stream(model: CTCModel, feats: torch.Tensor, sizes: list[int], state: EncoderState | None = None):
    state = model.init_state(feats.shape[0]) if state is None else state
    outs, start = [], 0
    with torch.no_grad():
        for n in sizes:
            y, state = model.step(feats[:, start : start + n], state)
            outs.append(y)
            start += n
    return torch.cat(outs, dim=1), state


def _tensors(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if state is None:
        return []
    return [t for part in state for t in _tensors(part)]


def _states_equal(a, b) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return len(ta) == len(tb) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(ta, tb, strict=True))


@pytest.mark.parametrize("variant", sorted(CAUSAL_VARIANTS))
def test_streaming_equals_full_forward_for_random_chunkings(variant: str) -> None:
    model = _model(tiny(**CAUSAL_VARIANTS[variant]))
    feats = torch.randn(2, 4 * 33, model.config.input_dim)
    lengths = torch.tensor([feats.shape[1], feats.shape[1]])
    with torch.no_grad():
        full, out_lengths = model(feats, lengths)
    assert full.shape == (2, 33, model.config.vocab_size) and out_lengths.tolist() == [33, 33]
    for seed in range(3):
        sizes = random_chunks(feats.shape[1], rng=random.Random(seed), multiple=4, max_chunk=9)
        streamed, _ = _stream(model, feats, sizes)
        diff = (streamed - full).abs().max().item()
        assert diff <= TOL, f"{variant}: chunks {sizes} differ by {diff}"


def test_streaming_equals_full_forward_at_default_size() -> None:
    """The default configuration (real widths, 8 layers) over ~3 s of features in irregular chunks."""
    model = _model(ModelConfig(backend="chunked"))
    feats = torch.randn(1, 4 * 75, 80)
    with torch.no_grad():
        full, _ = model(feats, torch.tensor([feats.shape[1]]))
    streamed, _ = _stream(model, feats, [4, 64, 16, 4, 200, 12])
    assert (streamed - full).abs().max().item() <= TOL


@pytest.mark.parametrize("variant", ["linear-decay-rms", "softmax", "softmax-window"])
def test_batched_step_equals_single_steps_with_different_histories(variant: str) -> None:
    model = _model(tiny(**CAUSAL_VARIANTS[variant]))
    d = model.config.input_dim
    torch.manual_seed(1)
    # Three streams that have already heard 0, 8 and 24 frames.
    histories = [torch.randn(1, n, d) for n in (0, 8, 24)]
    states = [model.init_state(1) if h.shape[1] == 0 else _stream(model, h, [h.shape[1]])[1] for h in histories]
    chunks = [torch.randn(1, 12, d) for _ in states]
    with torch.no_grad():
        singles = [model.step(c, s) for c, s in zip(chunks, states, strict=True)]
        batched_out, batched_state = model.step(torch.cat(chunks), stack_states(states))
    for i, (out, state) in enumerate(singles):
        assert (batched_out[i : i + 1] - out).abs().max().item() <= TOL
        got = unstack_state(batched_state)[i]
        for x, y in zip(_tensors(got), _tensors(state), strict=True):
            assert x.shape == y.shape and (x.double() - y.double()).abs().max().item() <= TOL


@pytest.mark.parametrize("variant", ["linear-conv", "softmax-window", "softmax"])
def test_stack_and_unstack_are_inverse(variant: str) -> None:
    model = _model(tiny(**CAUSAL_VARIANTS[variant]))
    torch.manual_seed(2)
    states = [_stream(model, torch.randn(b, n, model.config.input_dim), [n])[1] for b, n in ((1, 4), (2, 16), (1, 8))]
    singles = [s for state in states for s in unstack_state(state)]
    assert len(singles) == 4
    stacked = stack_states(singles)
    assert all(_states_equal(a, b) for a, b in zip(unstack_state(stacked), singles, strict=True))
    again = stack_states(unstack_state(stacked))
    assert _states_equal(again, stacked)
    # Fresh tensors: editing an unstacked state must not reach the batch.
    first = unstack_state(stacked)[0]
    first.layers[0].attention[0].add_(1.0)
    assert _states_equal(stack_states(unstack_state(stacked)), stacked)


def test_stack_refuses_mismatched_states() -> None:
    a = _model(tiny()).init_state(1)
    b = _model(tiny(attention="softmax")).init_state(1)
    with pytest.raises(ValueError):
        stack_states([a, b])
    with pytest.raises(ValueError):
        stack_states([])


@pytest.mark.parametrize("variant", ["linear-conv", "softmax"])
def test_causal_right_padding_never_changes_valid_outputs(variant: str) -> None:
    model = _model(tiny(**CAUSAL_VARIANTS[variant]))
    torch.manual_seed(4)
    feats = torch.randn(1, 37, model.config.input_dim)
    padded = torch.cat([feats, 100 * torch.randn(1, 27, model.config.input_dim)], dim=1)
    with torch.no_grad():
        alone, n = model(feats, torch.tensor([37]))
        batch, m = model(padded, torch.tensor([37]))
    assert n.tolist() == m.tolist() == [9]
    assert (batch[:, :9] - alone).abs().max().item() <= TOL


@pytest.mark.parametrize(
    "overrides",
    [dict(causal=False), dict(causal=False, attention="softmax"), dict(causal=False, feature_map="positive_random")],
    ids=["linear", "softmax", "linear-random"],
)
def test_noncausal_padded_batch_equals_individual_runs(overrides: dict) -> None:
    model = _model(tiny(**overrides))
    torch.manual_seed(5)
    lengths = [61, 24, 40, 2]  # the last one is shorter than one encoder frame
    utts = [torch.randn(n, model.config.input_dim) for n in lengths]
    batch = torch.nn.utils.rnn.pad_sequence(utts, batch_first=True, padding_value=7.0)
    with torch.no_grad():
        out, out_lengths = model(batch, torch.tensor(lengths))
        assert out_lengths.tolist() == [n // 4 for n in lengths]
        assert bool(torch.isfinite(out).all())
        for i, u in enumerate(utts[:3]):
            alone, _ = model(u[None], torch.tensor([len(u)]))
            assert (out[i, : lengths[i] // 4] - alone[0]).abs().max().item() <= TOL
    # Non-causal really attends to the future: changing the last frames changes the first output frame.
    changed = batch.clone()
    changed[0, 40:61] += 1.0
    with torch.no_grad():
        out2, _ = model(changed, torch.tensor(lengths))
    assert not torch.allclose(out2[0, 0], out[0, 0])


def test_noncausal_model_cannot_stream() -> None:
    model = _model(tiny(causal=False))
    with pytest.raises(ValueError, match="non-causal"):
        model.init_state(1)


def test_bad_inputs_raise_value_errors_naming_them() -> None:
    model = _model(tiny())
    state = model.init_state(2)
    with pytest.raises(ValueError, match=r"\[B, T, 20\]"):
        model(torch.zeros(2, 16, 21), torch.tensor([16, 16]))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.zeros(2, 16, 20), torch.tensor([16, 17]))
    with pytest.raises(ValueError, match="lengths"):
        model(torch.zeros(2, 16, 20), torch.tensor([16]))
    with pytest.raises(ValueError, match="multiple of 4"):
        model.step(torch.zeros(2, 6, 20), state)
    with pytest.raises(ValueError, match="batch size 1"):
        model.step(torch.zeros(1, 8, 20), state)


@pytest.mark.parametrize("variant", sorted(CAUSAL_VARIANTS))
def test_training_gradients_are_finite_and_reach_every_parameter(variant: str) -> None:
    model = _model(tiny(**CAUSAL_VARIANTS[variant]))
    model.train()
    torch.manual_seed(6)
    feats = torch.randn(2, 48, model.config.input_dim)
    lengths = torch.tensor([48, 36])
    log_probs, out_lengths = model(feats, lengths)
    targets = torch.randint(1, model.config.vocab_size, (2, 4))
    loss = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), targets, out_lengths, torch.tensor([4, 3]), blank=0, zero_infinity=True
    )
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert p.grad.abs().sum().item() > 0, name


def test_params_and_flops_accounting() -> None:
    linear = _model(ModelConfig())
    assert linear.num_params() == sum(p.numel() for p in linear.parameters())
    # Linear attention costs the same after an hour as after a second; softmax grows with its history.
    assert linear.flops_per_second(context_seconds=1) == linear.flops_per_second(context_seconds=3600)
    soft = _model(ModelConfig(attention="softmax"))
    assert soft.num_params() == linear.num_params()
    f10, f20 = soft.flops_per_second(context_seconds=10), soft.flops_per_second(context_seconds=20)
    assert f20 > f10 > linear.flops_per_second()
    windowed = _model(ModelConfig(attention="softmax", attention_window=25))
    assert windowed.flops_per_second(context_seconds=10) == windowed.flops_per_second(context_seconds=3600)
    # Halving the depth roughly halves the block cost.
    shallow = _model(ModelConfig(num_layers=4))
    assert 0.4 < shallow.flops_per_second() / linear.flops_per_second() < 0.6
