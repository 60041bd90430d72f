"""A signal fed through one stream of a :class:`~asr.streaming.Recognizer`, chunk by chunk, and what ``--chunk-ms``
means.

``--chunk-ms`` means one thing in ``asr live``, ``asr transcribe --stream`` and ``asr eval --mode stream``: the
audio in each chunk the recognizer works on. The stream steps the encoder once per ``chunk_ms`` of audio
(``RecognizerConfig.chunk_frames``, :func:`recognizer_config`), and a file is fed to the stream in pieces of
``chunk_ms`` (:func:`stream_samples`), decoding after each, so every piece fed is one encoder step; a microphone
delivers short capture blocks (20 ms), which the stream gathers into the same ``chunk_ms`` steps. Chunks must be
whole model steps (the model's frame shift times its subsampling factor: 40 ms for the bundled model); ``asr eval``
alone also takes other lengths, to check that chunk boundaries do not matter: such chunks are fed as given and the
encoder steps in the whole number of model steps just above them (:func:`chunk_frames_covering`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from asr.pipeline import AsrModel
    from asr.streaming.recognizer import Recognizer, RecognizerConfig, Stream, StreamResult

__all__ = [
    "chunk_frames_covering",
    "chunk_frames_for",
    "chunk_samples",
    "feed_chunks",
    "recognizer_config",
    "stream_samples",
]


def chunk_frames_for(chunk_ms: float, *, frame_shift_ms: float, subsampling: int) -> int:
    """Feature frames per encoder step for ``chunk_ms`` of audio (a multiple of the subsampling factor)."""
    step_ms = frame_shift_ms * subsampling
    frames = chunk_ms / frame_shift_ms
    if isinstance(chunk_ms, bool) or chunk_ms <= 0 or abs(chunk_ms / step_ms - round(chunk_ms / step_ms)) > 1e-9:
        raise ValueError(
            f"--chunk-ms must be a positive multiple of {step_ms:g} ms (frame shift {frame_shift_ms:g} ms x "
            f"{subsampling}x subsampling), got {chunk_ms}"
        )
    return int(round(frames))


def chunk_frames_covering(chunk_ms: float, *, frame_shift_ms: float, subsampling: int) -> int:
    """Feature frames per encoder step for chunks of ``chunk_ms`` fed: :func:`chunk_frames_for` when ``chunk_ms``
    is whole model steps, else the whole number of model steps just above it (``asr eval --mode stream``)."""
    if isinstance(chunk_ms, bool) or chunk_ms <= 0:
        raise ValueError(f"--chunk-ms must be > 0, got {chunk_ms}")
    steps = chunk_ms / (frame_shift_ms * subsampling)
    if abs(steps - round(steps)) <= 1e-9:
        return chunk_frames_for(chunk_ms, frame_shift_ms=frame_shift_ms, subsampling=subsampling)
    return math.ceil(steps) * subsampling


def recognizer_config(bundle: AsrModel, chunk_ms: float, *, beam: int = 1) -> RecognizerConfig:
    """The recognizer settings for ``bundle`` at ``--chunk-ms`` (whole model steps of its frame shift and
    subsampling) and ``beam``; the rest at their defaults."""
    from asr.streaming.recognizer import RecognizerConfig

    frames = chunk_frames_for(
        chunk_ms, frame_shift_ms=bundle.features.frame_shift_ms, subsampling=bundle.model.subsampling_factor
    )
    return RecognizerConfig(chunk_frames=frames, beam=beam)


def chunk_samples(sample_rate: int, chunk_ms: float) -> int:
    """Samples in each chunk of ``chunk_ms`` at ``sample_rate`` (at least one)."""
    if chunk_ms <= 0:
        raise ValueError(f"chunk_ms must be > 0, got {chunk_ms}")
    return max(1, int(round(sample_rate * chunk_ms / 1000)))


def feed_chunks(
    recognizer: Recognizer,
    stream: Stream,
    samples: np.ndarray | Any,
    sample_rate: int,
    *,
    chunk_ms: float,
    realtime: bool = False,
) -> Iterator[bool]:
    """Feed ``samples`` (at ``sample_rate``; anything :meth:`Stream.accept_waveform` takes that slices along its
    first axis) to ``stream`` ``chunk_ms`` at a time, decoding after each chunk; yields once per chunk, after its
    decode, whether the result changed. ``realtime``: no chunk is fed before its last sample would have been
    captured (a file played as if it were a microphone). The stream is left open and unfinished."""
    step = chunk_samples(sample_rate, chunk_ms)
    t0 = time.monotonic()
    for start in range(0, len(samples), step):
        if realtime:
            wait = t0 + min(start + step, len(samples)) / sample_rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        stream.accept_waveform(samples[start : start + step], sample_rate)
        yield bool(recognizer.decode([stream]))


def stream_samples(
    recognizer: Recognizer,
    samples: np.ndarray | Any,
    sample_rate: int,
    *,
    chunk_ms: float,
    on_update: Callable[[StreamResult], object] | None = None,
    realtime: bool = False,
) -> StreamResult:
    """Feed ``samples`` (at ``sample_rate``) to a fresh stream ``chunk_ms`` at a time, decoding after each chunk,
    as a microphone would deliver them (:func:`feed_chunks`), then finish it; returns the final result (the stream
    is closed). ``on_update`` sees every changed result and the final one."""
    if chunk_ms <= 0:
        raise ValueError(f"chunk_ms must be > 0, got {chunk_ms}")
    stream = recognizer.create_stream()
    try:
        for updated in feed_chunks(recognizer, stream, samples, sample_rate, chunk_ms=chunk_ms, realtime=realtime):
            if updated and on_update is not None:
                on_update(stream.result)
        stream.input_finished()
        recognizer.decode([stream])
        result = stream.result
        if on_update is not None:
            on_update(result)
        return result
    finally:
        recognizer.close_stream(stream)
