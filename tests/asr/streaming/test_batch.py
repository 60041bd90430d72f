"""StreamBatch, the recognizer's batch of stream states: stack then unstack gives back each stream's state bit
for bit (linear attention states and softmax KV caches of different lengths), rows are views of the batch,
and a bad row or a non-state is refused."""

from __future__ import annotations

import pytest
import torch

from asr.model.encoder import EncoderState
from asr.streaming.batch import StreamBatch
from tests.asr.streaming.conftest import make_bundle


def _leaves(state):
    return [x for x in torch.utils._pytree.tree_leaves(state) if isinstance(x, torch.Tensor)]


def _states(model, histories, seed=0):
    g = torch.Generator().manual_seed(seed)
    states = []
    with torch.inference_mode():
        for history in histories:  # different histories: softmax caches of different lengths
            state = model.init_state(1)
            for _ in range(history):
                _, state = model.step(torch.randn(1, 8, 80, generator=g), state)
            states.append(state)
    return states


@pytest.mark.parametrize("overrides", [{}, {"attention": "softmax"}], ids=["linear", "softmax-kv"])
def test_stack_then_unstack_gives_back_each_state_bit_for_bit(overrides):
    model = make_bundle(**overrides).model
    states = _states(model, (2, 0, 3, 1))
    batch = StreamBatch.stack(states)
    assert batch.size == 4 and isinstance(batch.state, EncoderState)
    rows = batch.unstack()
    assert len(rows) == 4
    for row, original in zip(rows, states, strict=True):
        assert type(row) is type(original)
        for a, b in zip(_leaves(row), _leaves(original), strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    # rows are views of the batch (no copies; a KV cache's rows are trimmed copies of their valid slots)
    assert batch.row(1).subsampling.frames.data_ptr() == batch.state.subsampling.frames[1].data_ptr()


def test_bad_rows_and_states_are_refused():
    model = make_bundle().model
    batch = StreamBatch.stack(_states(model, (1, 1)))
    with pytest.raises(IndexError, match="row 2 of a batch of 2"):
        batch.row(2)
    with pytest.raises(ValueError, match="holds an EncoderState"):
        StreamBatch((torch.zeros(1),))
