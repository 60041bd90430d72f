"""Live front ends of the streaming recognizer: a microphone (sounddevice/PortAudio) and files streamed in chunks.

    asr live                                  # microphone -> partial line in place, finals on their own lines
    asr transcribe --stream speech.wav        # the same display for a file fed in --chunk-ms pieces

The microphone is opened at its native rate, mono; the audio callback (PortAudio's thread) only copies each
block into a queue, and the main thread feeds the stream and runs the recognizer, so a slow decode never blocks
capture. The stream resamples (``Stream.accept_waveform`` takes any rate), so the file and microphone paths run
the same code from samples on. Ctrl-C sets a flag (it never interrupts a decode step): capture stops, the
blocks already captured are decoded, the last segment is finalised and the transcript is kept.

Two ways of not keeping up are reported: PortAudio's ``input_overflow`` (samples were dropped before the
callback saw them) and a backlog of captured audio waiting in the queue (decoding slower than real time).

A source that dies (the device unplugged, the sound server gone: PortAudio ends the stream) or stops delivering
audio ends the capture with :class:`SourceLost`: a warning when no block has come for ``stall_warn_s``, the end
when the stream has ended or nothing came for ``stall_give_up_s``; what was heard is finalised and kept either way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

if TYPE_CHECKING:  # the recognizer pulls in torch: imported where used, so `asr devices` stays light
    from asr.streaming.recognizer import Recognizer, Segment, Stream, StreamResult

logger = logging.getLogger(__name__)

__all__ = [
    "AudioBlock",
    "LiveConfig",
    "MicrophoneSource",
    "SourceLost",
    "TranscriptWriter",
    "input_devices",
    "run_live",
    "stream_file",
    "stream_files",
]

_CLEAR_LINE = "\r\x1b[K"  # carriage return + erase to end of line (ANSI)
PARTIAL_MARK = "... "  # starts a partial result's line when partials are logged to a pipe or file


# --------------------------------------------------------------------------------------------- display


def segment_dict(segment: Segment) -> dict[str, Any]:
    """A final result as a JSON-ready dict (times in seconds from the start of the stream)."""
    return {
        "text": segment.text,
        "start": segment.start,
        "end": segment.end,
        "tokens": list(segment.tokens),
        "token_times": list(segment.token_times),
        "confidences": [round(float(c), 4) for c in segment.confidences],
        "endpoint": segment.endpoint,
        **({"words": [dataclasses.asdict(w) for w in segment.words]} if segment.words else {}),
    }


class TranscriptWriter:
    """Shows a stream's results on a text stream as they change.

    Text mode on a terminal: the partial line is rewritten in place (``\\r``), each final replaces it and ends
    the line. Text mode elsewhere (a pipe, a file): finals only, one per line; with ``partials=True`` also each
    changed partial on its own line, marked ``PARTIAL_MARK`` (a log of what a terminal would have shown). JSON
    mode: one JSON object per final (``extra`` fields first, e.g. the file name), partials never shown.
    """

    def __init__(
        self,
        out: TextIO,
        *,
        json_lines: bool = False,
        tty: bool | None = None,
        prefix: str = "",
        extra: dict[str, Any] | None = None,
        partials: bool = False,
    ) -> None:
        self.out = out
        self.partials = partials
        self.json_lines = json_lines
        self.tty = (out.isatty() if hasattr(out, "isatty") else False) if tty is None else tty
        self.prefix = prefix
        self.extra = dict(extra or {})
        self._shown_finals = 0
        self._partial = ""

    def update(self, result: StreamResult) -> list[Segment]:
        """Write what is new in ``result``; returns the finals written by this call."""
        new = list(result.finals[self._shown_finals :])
        for segment in new:
            if self.json_lines:
                self.out.write(json.dumps({**self.extra, **segment_dict(segment)}, ensure_ascii=False) + "\n")
            else:
                self.out.write((_CLEAR_LINE if self.tty and self._partial else "") + self.prefix + segment.text + "\n")
            self._partial = ""
        self._shown_finals += len(new)
        changed = result.partial != self._partial
        logged = False
        if self.tty and not self.json_lines and changed:
            self.out.write(_CLEAR_LINE + self.prefix + result.partial)
            self._partial = result.partial
        elif self.partials and not self.tty and not self.json_lines and changed:
            if result.partial:
                self.out.write(self.prefix + PARTIAL_MARK + result.partial + "\n")
                logged = True
            self._partial = result.partial
        if new or logged or self.tty:
            self.out.flush()
        return new

    def finish(self) -> None:
        """End a dangling partial line (the stream should have been finalised first)."""
        if self.tty and self._partial:
            self.out.write("\n")
            self._partial = ""
        self.out.flush()


# ------------------------------------------------------------------------------------------ file streaming


def stream_file(
    recognizer: Recognizer,
    path: str | Path,
    *,
    chunk_ms: int,
    writers: Sequence[TranscriptWriter] = (),
    realtime: bool = False,
) -> StreamResult:
    """Stream one audio file at its own sample rate (the stream resamples, exactly as for a microphone)."""
    from asr.audio import read_audio
    from asr.streaming.feed import stream_samples

    samples, rate = read_audio(path)

    def show(result: StreamResult) -> None:
        for w in writers:
            w.update(result)

    result = stream_samples(recognizer, samples.numpy(), rate, chunk_ms=chunk_ms, on_update=show, realtime=realtime)
    for w in writers:
        w.finish()
    return result


# ---------------------------------------------------------------------------------------------- microphone


@dataclass(frozen=True)
class AudioBlock:
    """One block from the audio callback."""

    samples: np.ndarray  # [N] float32 mono, copied out of PortAudio's buffer
    overflow: bool  # PortAudio dropped input before this block (status.input_overflow)


@dataclass(frozen=True)
class LiveConfig:
    block_ms: float = 20.0  # audio callback block length (PortAudio's blocksize)
    max_backlog_s: float = 1.0  # warn when more captured audio than this waits to be decoded
    warn_every_s: float = 5.0  # at most one overflow / backlog / stall warning per this many seconds
    first_block_timeout_s: float = 15.0  # give up when the source delivers nothing for this long after start
    stall_warn_s: float = 1.0  # warn when no block has arrived for this long (blocks come every block_ms)
    stall_give_up_s: float = 10.0  # give up (SourceLost) when no block has arrived for this long


class SourceLost(RuntimeError):
    """The audio source died or stopped delivering audio; ``result`` is the transcript finalised up to then."""

    def __init__(self, message: str, result: StreamResult) -> None:
        super().__init__(message)
        self.result = result


def input_devices() -> list[dict[str, Any]]:
    """Every PortAudio device with input channels: index, name, host API, channels, default rate, default."""
    sd = _sounddevice()
    try:
        default_in = sd.default.device[0]
        if default_in is None or default_in < 0:
            default_in = sd.query_hostapis(0)["default_input_device"]
    except (sd.PortAudioError, IndexError, KeyError, TypeError):  # no default configured
        default_in = -1
    hostapis = sd.query_hostapis()
    rows = []
    for dev in sd.query_devices():
        if dev["max_input_channels"] < 1:
            continue
        rows.append(
            {
                "index": dev["index"],
                "name": dev["name"],
                "hostapi": hostapis[dev["hostapi"]]["name"],
                "channels": dev["max_input_channels"],
                "default_samplerate": dev["default_samplerate"],
                "default": dev["index"] == default_in,
            }
        )
    return rows


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio shared library is missing
        raise ValueError(
            f"cannot load PortAudio ({exc}); install it (Debian: apt-get install libportaudio2)"
        ) from exc
    return sounddevice


class MicrophoneSource:
    """A PortAudio input stream (via sounddevice) whose callback queues :class:`AudioBlock` items."""

    def __init__(self, device: int | str | None = None, *, block_ms: float = 20.0) -> None:
        sd = _sounddevice()
        try:
            info = sd.query_devices(device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            names = ", ".join(f"{d['index']}: {d['name']}" for d in input_devices()) or "none"
            raise ValueError(f"input device {device!r} not usable ({exc}); input devices: {names}") from exc
        if info["max_input_channels"] < 1:
            raise ValueError(f"device {device!r} ({info['name']}) has no input channels")
        self.device_name = info["name"]
        self.sample_rate = int(info["default_samplerate"])  # the device's native rate; the stream resamples
        self.blocks: queue.Queue[AudioBlock] = queue.Queue()
        self._error = sd.PortAudioError
        self._ended = threading.Event()  # PortAudio ended the stream (stop() or an error: the device is gone)
        self._stopping = False
        try:
            self._stream = sd.InputStream(
                device=device,
                samplerate=self.sample_rate,
                channels=1,
                dtype="float32",
                blocksize=max(1, int(self.sample_rate * block_ms / 1000)),
                callback=self._callback,
                finished_callback=self._ended.set,
            )
        except sd.PortAudioError as exc:
            raise ValueError(
                f"cannot open input device {device!r} ({self.device_name}) at {self.sample_rate} Hz mono: {exc}"
            ) from exc

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: copy and queue, nothing else (no allocation-heavy work, no locks held long).
        self.blocks.put_nowait(AudioBlock(indata[:, 0].copy(), bool(status.input_overflow)))

    def start(self) -> None:
        try:
            self._stream.start()
        except self._error as exc:
            raise ValueError(f"cannot start recording from {self.device_name!r}: {exc}") from exc

    def alive(self) -> bool:
        """False once PortAudio has ended the stream by itself (the device or the sound server went away)."""
        return self._stopping or not self._ended.is_set()

    def stop(self) -> None:
        self._stopping = True
        try:
            self._stream.stop()
            self._stream.close()
        except self._error as exc:  # a stream whose device is gone may fail to stop cleanly: it is over anyway
            logger.debug("closing the input stream: %s", exc)


def _drain(blocks: queue.Queue[AudioBlock], *, wait_s: float) -> list[AudioBlock]:
    """Every queued block, waiting up to ``wait_s`` for the first."""
    try:
        out = [blocks.get(timeout=wait_s)]
    except queue.Empty:
        return []
    while True:
        try:
            out.append(blocks.get_nowait())
        except queue.Empty:
            return out


def run_live(
    recognizer: Recognizer,
    blocks: queue.Queue[AudioBlock],
    sample_rate: int,
    *,
    stop: threading.Event,
    writers: Iterable[TranscriptWriter] = (),
    config: LiveConfig = LiveConfig(),
    on_first_block: Callable[[], object] | None = None,
    stop_capture: Callable[[], object] | None = None,
    source_alive: Callable[[], bool] | None = None,
) -> StreamResult:
    """Decode blocks from ``blocks`` until ``stop`` is set, then finalise: returns the whole transcript.

    ``stop_capture`` is called once ``stop`` is set (before the last blocks are drained), so audio captured
    up to that moment is still decoded. When the source dies (``source_alive()`` turns False) or delivers nothing
    for ``config.stall_give_up_s`` (``config.first_block_timeout_s`` before its first block), the transcript is
    finalised the same way and :class:`SourceLost` is raised with it.
    """
    writers = list(writers)
    stream: Stream = recognizer.create_stream()
    received = 0  # samples
    overflows = 0
    last_warning = -float("inf")
    first = True  # no block seen yet

    def feed(items: list[AudioBlock]) -> None:
        nonlocal received, overflows, last_warning, first
        if items and first:
            first = False
            if on_first_block is not None:
                on_first_block()
        for block in items:
            if block.overflow:
                overflows += 1
                now = time.monotonic()
                if now - last_warning >= config.warn_every_s:
                    logger.warning(
                        "input overflow: the audio device dropped samples (%d time(s) so far); this machine "
                        "is not keeping up -- try a larger --chunk-ms, --device cuda or a smaller model",
                        overflows,
                    )
                    last_warning = now
            if block.samples.size:
                stream.accept_waveform(block.samples, sample_rate)
                received += block.samples.size

    def decode() -> None:
        if recognizer.decode([stream]):
            result = stream.result
            for w in writers:
                w.update(result)

    started = last_block = time.monotonic()
    lost: str | None = None
    try:
        while not stop.is_set():
            items = _drain(blocks, wait_s=0.05)
            if not items:
                lost = _check_source(source_alive, first, started, last_block, config)
                if lost is not None:
                    break
                quiet = time.monotonic() - last_block
                if not first and quiet >= config.stall_warn_s and time.monotonic() - last_warning >= (
                    config.warn_every_s
                ):
                    logger.warning("no audio from the input for %.1f s (is the device still there?)", quiet)
                    last_warning = time.monotonic()
                continue
            last_block = time.monotonic()
            feed(items)
            decode()
            backlog = sum(b.samples.size for b in items) / sample_rate  # audio that waited for this decode
            if backlog > config.max_backlog_s:
                now = time.monotonic()
                if now - last_warning >= config.warn_every_s:
                    logger.warning(
                        "decoding is falling behind real time: %.1f s of captured audio waiting "
                        "(try a larger --chunk-ms, --device cuda or a smaller model)",
                        backlog,
                    )
                    last_warning = now
    finally:
        if stop_capture is not None:
            stop_capture()
        feed(_drain(blocks, wait_s=0.0))
        stream.input_finished()
        recognizer.decode([stream])
        result = stream.result
        for w in writers:
            w.update(result)
            w.finish()
        recognizer.close_stream(stream)
    logger.info(
        "stopped after %.1f s of audio (%d final segment(s), %d overflow(s))",
        received / sample_rate,
        len(result.finals),
        overflows,
    )
    if lost is not None:
        raise SourceLost(lost, result)
    return result


def _check_source(
    alive: Callable[[], bool] | None, first: bool, started: float, last_block: float, config: LiveConfig
) -> str | None:
    """Why the capture must end (the source died or went silent for good), or None while it may go on."""
    now = time.monotonic()
    if alive is not None and not alive():
        return "the audio source stopped (the device or the sound server went away)"
    if first and now - started >= config.first_block_timeout_s:
        return f"no audio arrived within {config.first_block_timeout_s:g} s of opening the input"
    if not first and now - last_block >= config.stall_give_up_s:
        return f"no audio from the input for {now - last_block:.1f} s: giving up"
    return None


def open_output(path: str | Path | None) -> TextIO | None:
    """The transcript file (truncated now, appended to as finals arrive, flushed after each)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"--output {str(p)!r} is a folder; name the transcript file (e.g. {str(p / 'live.txt')!r})")
    if p.parent and not p.parent.exists():
        raise ValueError(f"--output {str(p)!r}: folder {str(p.parent)!r} does not exist")
    try:
        return open(p, "w", encoding="utf-8")  # noqa: SIM115 (closed by the caller)
    except OSError as exc:
        raise ValueError(f"--output {str(p)!r}: cannot write it ({exc.strerror or exc})") from None



def stream_files(
    bundle: Any,  # asr.pipeline.AsrModel
    paths: Sequence[str | Path],
    *,
    chunk_ms: int = 160,
    json_lines: bool = False,
    beam: int = 1,
    device: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    partials: bool = False,
    realtime: bool = False,
    lm: Any = None,  # asr.decoding.lm_decoder.LMDecoder: decode with that lexicon / LM search
) -> int:
    """``asr transcribe --stream``: each file through a stream in ``chunk_ms`` pieces (one encoder step each: see
    :mod:`asr.streaming.feed`), results shown as they
    come (text: finals per line, ``FILE<TAB>`` first when several files; JSON: one object per final with
    ``file``, ``start``, ``end``). ``partials``: partial results on their own lines also when ``out`` is not a
    terminal; ``realtime``: chunks paced at the audio's own rate. Unreadable files are reported on ``err`` and
    skipped: exit status 1."""
    from asr.streaming.feed import recognizer_config
    from asr.streaming.recognizer import Recognizer

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    config = recognizer_config(bundle, chunk_ms, beam=beam)
    recognizer = Recognizer(bundle, device=device, config=config, lm=lm)
    status = 0
    for path in paths:
        prefix = f"{path}\t" if len(paths) > 1 else ""
        writer = TranscriptWriter(
            out, json_lines=json_lines, prefix=prefix, extra={"file": str(path)}, partials=partials
        )
        try:
            stream_file(recognizer, path, chunk_ms=chunk_ms, writers=[writer], realtime=realtime)
        except ValueError as exc:  # asr.audio.AudioError included
            writer.finish()
            print(f"asr transcribe: {path}: {exc}", file=err)
            status = 1
    return status
