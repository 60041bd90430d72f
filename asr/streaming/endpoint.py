"""Endpoint detection from the CTC decoder: when is an utterance over?

Three rules, any of which ends the current segment (times in seconds of audio):
1. trailing silence with no speech decoded yet >= ``silence_without_speech`` (the segment is dropped: no final)
2. trailing silence after some speech >= ``silence_after_speech`` (a final result)
3. segment length >= ``max_utterance`` (a final result, whatever the decoder is doing)
"Silence" is the run of trailing frames whose most likely label is the CTC blank (it dominates wherever nobody
speaks), which is what the decoder sees; no separate voice-activity detector is needed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EndpointConfig:
    enabled: bool = True  # False: one segment per stream, finalised only when the input ends
    silence_without_speech: float = 5.0  # rule 1: seconds of trailing silence before any speech
    silence_after_speech: float = 0.8  # rule 2: seconds of trailing silence after speech
    max_utterance: float = 30.0  # rule 3: seconds of segment length
    reset_attention_state: bool = False  # at an endpoint, also zero the encoder's attention state (S, z)

    def __post_init__(self) -> None:
        values = (self.silence_without_speech, self.silence_after_speech, self.max_utterance)
        if min(values) <= 0:
            raise ValueError(f"endpoint durations must be > 0, got {values}")


def detect_endpoint(
    config: EndpointConfig, *, segment_seconds: float, trailing_silence: float, has_speech: bool
) -> str | None:
    """The name of the rule that fires, or None."""
    if not config.enabled:
        return None
    if not has_speech and trailing_silence >= config.silence_without_speech:
        return "silence_without_speech"
    if has_speech and trailing_silence >= config.silence_after_speech:
        return "silence_after_speech"
    if segment_seconds >= config.max_utterance:
        return "max_utterance"
    return None
