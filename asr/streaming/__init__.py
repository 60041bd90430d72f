"""Streaming recognition: the recurrent form of the model fed chunk by chunk, many streams at once."""

from asr.streaming.endpoint import EndpointConfig, detect_endpoint
from asr.streaming.recognizer import (
    Recognizer,
    RecognizerConfig,
    Segment,
    Stream,
    StreamResult,
    StreamState,
)

__all__ = [
    "EndpointConfig",
    "Recognizer",
    "RecognizerConfig",
    "Segment",
    "Stream",
    "StreamResult",
    "StreamState",
    "detect_endpoint",
]
