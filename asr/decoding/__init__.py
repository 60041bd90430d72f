"""CTC decoding: greedy and prefix beam search, both incremental (chunk by chunk) so the streaming and the
full-utterance paths share one implementation and give identical results."""

from asr.decoding.ctc import (
    BeamState,
    GreedyState,
    Hypothesis,
    beam_search,
    beam_step,
    greedy_advance,
    greedy_search,
    greedy_step,
)

__all__ = [
    "BeamState",
    "GreedyState",
    "Hypothesis",
    "beam_search",
    "beam_step",
    "greedy_advance",
    "greedy_search",
    "greedy_step",
]
