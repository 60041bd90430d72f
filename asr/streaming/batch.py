"""``StreamBatch``: the encoder states of several streams stacked into one batch state, stepped as one.

The recognizer steps every stream with a chunk ready in one batched model step. Stacking each stream's state
into a batch and splitting it again after every step would copy every state twice per step; instead the
streams stepped together stay rows of one StreamBatch until one of them is read or stepped with others, and
the same batch stepped again (same streams, same order) continues its state in place.

``StreamBatch.stack(states)`` copies batch-1 states into one (softmax KV caches of different lengths are
left-padded); ``row(b)`` is row b as a batch-1 state of views (no copies; a KV cache's padding trimmed);
``unstack()`` gives every row. ``stack`` then ``unstack`` gives back each stream's state bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

from asr.model.encoder import EncoderState, stack_states
from asr.model.state import select_tree, state_batch_size

__all__ = ["StreamBatch"]


class StreamBatch:
    """A batch encoder state of ``size`` streams (row b is stream b of the step that made it)."""

    __slots__ = ("size", "state")

    def __init__(self, state: EncoderState) -> None:
        if not isinstance(state, EncoderState):
            raise ValueError(f"a StreamBatch holds an EncoderState, got {type(state).__name__}")
        self.state = state
        self.size = state_batch_size(state)

    @classmethod
    def stack(cls, states: Sequence[EncoderState]) -> StreamBatch:
        """One batch of the given states (each of batch size 1, or more), in order; fresh tensors."""
        return cls(stack_states(list(states)))

    def row(self, b: int) -> EncoderState:
        """Row ``b`` as a batch-1 EncoderState of views of the batch's tensors (no copies)."""
        if not 0 <= b < self.size:
            raise IndexError(f"row {b} of a batch of {self.size} streams")
        return select_tree(self.state, b, copy=False)

    def unstack(self) -> list[EncoderState]:
        """Every row, in order (views: see ``row``)."""
        return [self.row(b) for b in range(self.size)]
