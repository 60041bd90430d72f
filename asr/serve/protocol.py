"""The WebSocket protocol of ``asr serve`` (docs/protocol.md is its description for client writers).

Client -> server: one JSON ``start`` message (sample rate, sample format, optional token), then binary frames of
mono little-endian PCM of any length, then optionally a JSON ``stop`` message. Server -> client: JSON messages
(``ready``, ``partial``, ``final``, ``error``, ``done``). Everything here is pure: parsing and validation raise
:class:`ClientError` (an error code for the client, a message naming the problem and a WebSocket close code),
message builders return JSON-ready dicts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from asr.serve.config import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

if TYPE_CHECKING:
    from asr.streaming.recognizer import Segment

PROTOCOL_VERSION = 1

# WebSocket close codes (RFC 6455, section 7.4.1) the server uses.
CLOSE_NORMAL = 1000  # the stream ended (client's stop, or a limit that finishes the stream)
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_UNSUPPORTED = 1003  # text where binary audio was expected, or binary before the start message
CLOSE_INVALID = 1007  # malformed JSON, a bad start message, a malformed or non-finite audio frame
CLOSE_POLICY = 1008  # unauthorized, rate limited, too long, idle, too slow to read results
CLOSE_TOO_BIG = 1009  # a message larger than the server's limit
CLOSE_INTERNAL = 1011  # the recognizer failed on this stream
CLOSE_TRY_AGAIN = 1013  # the server is full or shutting down

#: Sample formats a client may declare: name -> (numpy dtype, scale to [-1, 1)).
FORMATS: dict[str, tuple[str, float]] = {"s16le": ("<i2", 1.0 / 32768.0), "f32le": ("<f4", 1.0)}

#: Token strings that stand for the space between words (character tokenizers) or start a word (SentencePiece).
WORD_BOUNDARY = "|"
WORD_START = "\u2581"


class ClientError(Exception):
    """A problem with what a client sent: ``code`` for programs, ``message`` for people, ``close_code`` for the
    WebSocket close."""

    def __init__(self, code: str, message: str, close_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


@dataclass(frozen=True)
class StartRequest:
    sample_rate: int  # Hz of the audio the client will send
    format: str  # a key of FORMATS
    token: str | None = None  # bearer token, for clients that cannot set an Authorization header (browsers)


def parse_json(text: str) -> dict[str, Any]:
    """A client's JSON message: an object with a string ``type``."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ClientError("bad_json", f"malformed JSON message: {exc}", CLOSE_INVALID) from exc
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ClientError("bad_json", f"expected a JSON object with a string 'type', got {_clip(text)}", CLOSE_INVALID)
    return value


def parse_start(text: str) -> StartRequest:
    """The first message of a connection."""
    msg = parse_json(text)
    if msg["type"] != "start":
        raise ClientError(
            "expected_start",
            f"the first message must be {{'type': 'start', ...}}, got type {msg['type']!r}",
            CLOSE_INVALID,
        )
    unknown = sorted(set(msg) - {"type", "sample_rate", "format", "token"})
    if unknown:
        raise ClientError("bad_start", f"unknown field(s) in the start message: {unknown}", CLOSE_INVALID)
    rate = msg.get("sample_rate")
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ClientError(
            "bad_sample_rate",
            f"sample_rate must be a whole number of Hz in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}, got {rate!r}",
            CLOSE_INVALID,
        )
    fmt = msg.get("format", "s16le")
    if fmt not in FORMATS:
        raise ClientError("bad_format", f"format must be one of {sorted(FORMATS)}, got {fmt!r}", CLOSE_INVALID)
    token = msg.get("token")
    if token is not None and not isinstance(token, str):
        raise ClientError("bad_start", f"token must be a string, got {type(token).__name__}", CLOSE_INVALID)
    return StartRequest(sample_rate=rate, format=fmt, token=token)


def parse_control(text: str) -> str:
    """A text message after the start message: only ``{"type": "stop"}`` is one; returns ``"stop"``."""
    try:
        msg = parse_json(text)
    except ClientError:
        msg = None
    if msg is None or msg["type"] != "stop":
        raise ClientError(
            "expected_binary",
            f"expected binary audio frames or {{'type': 'stop'}} after the start message, got text {_clip(text)}",
            CLOSE_UNSUPPORTED,
        )
    return "stop"


def decode_audio(data: bytes, fmt: str) -> np.ndarray:
    """A binary frame -> float32 samples ``[N]`` in [-1, 1) for s16le (float32 frames are kept as sent)."""
    dtype, scale = FORMATS[fmt]
    width = np.dtype(dtype).itemsize
    if not data or len(data) % width:
        raise ClientError(
            "malformed_frame",
            f"an audio frame must hold a whole, non-zero number of {width}-byte {fmt} samples, got {len(data)} bytes",
            CLOSE_INVALID,
        )
    x = np.frombuffer(data, dtype=dtype).astype(np.float32)
    if scale != 1.0:
        x *= np.float32(scale)
    elif not np.isfinite(x.sum(dtype=np.float64)):  # one pass (a float64 sum of float32 cannot overflow)
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ClientError(
            "nonfinite_audio", f"audio frame holds NaN or infinite samples (the first at sample {bad})", CLOSE_INVALID
        )
    return x


# ------------------------------------------------------------------------------------------------ messages


def ready_message(
    *, stream_id: int, model_rate: int, chunk_ms: int, lookahead_ms: float, limits: dict[str, Any]
) -> dict[str, Any]:
    """``lookahead_ms``: audio past a chunk's end that its last feature frame needs (the analysis window's
    overhang): chunk k is whole once k * chunk_ms + lookahead_ms of audio is in."""
    return {
        "type": "ready",
        "protocol": PROTOCOL_VERSION,
        "stream_id": stream_id,
        "model_sample_rate": model_rate,
        "chunk_ms": chunk_ms,
        "lookahead_ms": lookahead_ms,
        "limits": limits,
    }


def error_message(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def done_message(reason: str, *, audio_received: float) -> dict[str, Any]:
    return {"type": "done", "reason": reason, "audio_received": round(audio_received, 3)}


def partial_message(text: str, *, audio_received: float, audio_decoded: float) -> dict[str, Any]:
    """The current segment's text so far (it may still change; ``Stream.partial``). Words with times come with
    the final: a partial is sent after every decoded chunk, and its segment can be long."""
    return {
        "type": "partial",
        "text": text,
        "audio_received": round(audio_received, 3),
        "audio_decoded": round(audio_decoded, 3),
    }


def final_message(segment: Segment, *, audio_received: float, audio_decoded: float, frame_seconds: float):
    """A finished segment: text, start/end, words with times and confidences, tokens, the endpoint rule."""
    from asr.live import segment_dict

    words = getattr(segment, "words", ())
    return {
        "type": "final",
        **segment_dict(segment),
        "words": _timed_words(words)
        if words
        else words_from_tokens(
            segment.text,
            segment.tokens,
            segment.token_times,
            segment.confidences,
            end=segment.end,
            frame_seconds=frame_seconds,
        ),
        "audio_received": round(audio_received, 3),
        "audio_decoded": round(audio_decoded, 3),
    }


def _timed_words(words) -> list[dict[str, Any]]:
    """The recognizer's own timed words (``text``, ``start``, ``end``, ``confidence``) as JSON."""
    return [
        {"text": w.text, "start": w.start, "end": w.end, "confidence": round(float(w.confidence), 4)} for w in words
    ]


def words_from_tokens(
    text: str,
    tokens: Sequence[str],
    times: Sequence[float],
    confidences: Sequence[float],
    *,
    end: float,
    frame_seconds: float,
) -> list[dict[str, Any]]:
    """Words of ``text`` with times (s) and confidences, from its tokens (decoders without words of their own).

    A word starts at its first token's time and ends one model frame after its last token's (no later than
    ``end``); its confidence is the mean of its tokens'. Tokens are split into words at ``|`` tokens
    (character tokenizers) and before ``\u2581``-prefixed tokens (SentencePiece). Where the tokens do not split
    into as many words as ``text`` has (a tokenizer without word boundaries, e.g. phones), the list is empty.
    """
    groups: list[list[int]] = []
    for i, tok in enumerate(tokens):
        if tok == WORD_BOUNDARY or tok == WORD_START:
            groups.append([])
            continue
        if tok.startswith(WORD_START) or not groups:
            groups.append([])
        groups[-1].append(i)
    groups = [g for g in groups if g]
    names = text.split()
    if len(names) != len(groups):
        return []
    words = []
    for name, g in zip(names, groups):
        start = float(times[g[0]])
        words.append(
            {
                "text": name,
                "start": round(start, 3),
                "end": round(max(start, min(float(times[g[-1]]) + frame_seconds, end)), 3),
                "confidence": round(float(sum(confidences[i] for i in g)) / len(g), 4),
            }
        )
    return words


def dumps(message: dict[str, Any]) -> str:
    """A server message as compact JSON (NaN never appears: the recognizer's numbers are finite)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _clip(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
