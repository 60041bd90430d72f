"""One :class:`~asr.streaming.Recognizer` for every connected stream: the batching loop of ``asr serve``.

The event loop owns the sessions (one per WebSocket): handlers append decoded audio to a session's pending
list and set flags (finish, abandon); nothing there touches the recognizer. A single task, :meth:`Engine.run`,
repeatedly takes what has arrived from every session and hands it to ONE worker thread, which feeds each
stream, runs one ``Recognizer.decode`` over every stream that has a whole chunk ready (one batched model step,
on the GPU when the recognizer is there), turns the results into JSON messages and frees the streams that
finished or whose client left. While the worker steps, the loop keeps receiving audio, so the next step
batches whatever arrived meanwhile. Gathering: a step starts as soon as every open stream that is sending
audio has a whole chunk in (so the batch holds every stream, the Recognizer's best case), or when the oldest
whole chunk waiting has waited ``batch_window_ms`` (default: one chunk), whichever comes first; a stream
alone, or streams whose chunks complete together, are stepped at once, and a client that pauses holds the
others back by at most the window. With clients at random phases the steps settle on one phase: each holds
every stream.

Results go to a per-session :class:`Outbox`; each connection has its own sender task, so a client that reads
slowly (or not at all) never delays the step or the other clients: its partials are coalesced (only the
newest waits), and when finals pile up past ``max_outbox`` it is dropped with a ``slow_consumer`` error.

Recognizer state is touched by the worker thread only (``Session.stream``, ``finals_sent``, ``chunks``);
the loop reads those fields never, and the worker reads the loop's fields only through the snapshot
(:class:`_Work`) taken between steps.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from asr.serve import protocol as proto
from asr.serve.config import ServeConfig
from asr.serve.metrics import Metrics

if TYPE_CHECKING:
    from asr.streaming.recognizer import Recognizer, Stream

logger = logging.getLogger(__name__)

#: Outbox items: ("partial" | "final" | "ready" | "error" | "done", JSON text); a close is queued separately.
Message = tuple[str, str]


class Outbox:
    """Messages waiting to be sent to one client (event loop only). A new partial replaces a queued one."""

    def __init__(self, limit: int, metrics: Metrics | None = None) -> None:
        self.limit = limit
        self._items: deque[Message] = deque()
        self._event = asyncio.Event()
        self._metrics = metrics
        self.close_with: tuple[int, str] | None = None  # (WebSocket close code, reason) once closing

    def __len__(self) -> int:
        return len(self._items)

    def put(self, kind: str, text: str) -> None:
        if self.close_with is not None:
            return  # closing: the client gets nothing after the close frame (queued messages still go)
        if kind == "partial" and self._items and self._items[-1][0] == "partial":
            self._items[-1] = (kind, text)
            if self._metrics is not None:
                self._metrics.partials_coalesced += 1
        else:
            self._items.append((kind, text))
        self._event.set()

    def put_message(self, message: dict) -> None:
        self.put(message["type"], proto.dumps(message))

    def clear(self) -> None:
        self._items.clear()

    @property
    def overflowed(self) -> bool:
        return len(self._items) > self.limit

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close the WebSocket with ``code``."""
        if self.close_with is None:
            self.close_with = (code, reason)
        self._event.set()

    async def get(self) -> Message | None:
        """The next message, or None once everything is sent and a close was asked for."""
        while not self._items:
            if self.close_with is not None:
                return None
            self._event.clear()
            await self._event.wait()
        return self._items.popleft()


OPEN, FINISHING, ABANDONED, DONE = "open", "finishing", "abandoned", "done"


@dataclass(eq=False)
class Session:
    """One client's stream, as the event loop sees it (plus the worker's private fields at the end)."""

    id: int
    sample_rate: int  # of the client's audio
    outbox: Outbox
    pending: list[np.ndarray] = field(default_factory=list)  # float32 at sample_rate, not yet handed over
    samples_in: int = 0  # everything received, at sample_rate
    state: str = OPEN
    finish_reason: str = ""  # why the stream was finished: "stop", "server_shutdown" or an error code
    close_code: int = proto.CLOSE_NORMAL  # the WebSocket close once the stream is done
    finish_sent: bool = False  # the finish has been handed to the worker
    chunks_in: int = 0  # whole encoder chunks in samples_in (for gathering; worker's count is ``chunks``)
    chunks_taken: int = 0  # chunks_in when its audio was last handed to the worker
    ready_since: float = 0.0  # time.monotonic() when chunks_in first passed chunks_taken
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # -- worker thread only --
    stream: Stream | None = None
    finals_sent: int = 0
    chunks: int = 0  # encoder chunks decoded so far
    samples_accepted: int = 0  # at sample_rate, fed to the stream
    partial: str = ""  # last partial text sent

    @property
    def seconds_in(self) -> float:
        return self.samples_in / self.sample_rate


@dataclass
class _Work:
    """What one session hands the worker for one step."""

    session: Session
    audio: np.ndarray | None  # new samples at the session's rate
    finish: bool  # input_finished() after this audio
    abandon: bool  # the client left: free the stream, send nothing


@dataclass
class _Update:
    session: Session
    messages: list[Message]
    closed: bool  # the stream is freed (done, abandoned or failed)
    error: str | None = None  # the error code sent, if the stream failed


class Engine:
    """Batches every session's stream through one recognizer, stepping in one worker thread."""

    def __init__(self, recognizer: Recognizer, *, config: ServeConfig, metrics: Metrics | None = None) -> None:
        self.recognizer = recognizer
        self.config = config
        self.metrics = metrics or Metrics()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-step")
        self._sessions: dict[int, Session] = {}
        self._ids = itertools.count()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        rec = recognizer
        self._chunk_frames = rec.config.chunk_frames
        self._frame_seconds = rec.seconds_per_frame
        self._chunk_seconds = rec.config.chunk_frames * rec.bundle.features.frame_shift_ms / 1000.0
        self._num_frames: Callable[[int], int] = rec.bundle.features.num_frames
        feats = rec.bundle.features
        # audio past a chunk's end its last feature frame needs (the window's overhang: 15 ms for 25 / 10 ms frames)
        self.lookahead_ms = round(1000.0 * (feats.window_length - feats.hop_length) / feats.sample_rate, 3)

    # -- the event loop's side ---------------------------------------------------------------------------
    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def limits(self) -> dict[str, float]:
        c = self.config
        return {
            "max_message_bytes": c.max_message_bytes,
            "max_stream_seconds": c.max_stream_seconds,
            "idle_timeout_s": c.idle_timeout_s,
            "max_realtime": c.max_realtime,
            "burst_seconds": c.burst_seconds,
            "max_messages_per_s": c.max_messages_per_s,
        }

    def open(self, request: proto.StartRequest, outbox: Outbox) -> Session:
        """A new session; ClientError ``server_full`` / ``shutting_down`` when it cannot have one."""
        if self._stopping:
            self.metrics.refused["shutting_down"] += 1
            raise proto.ClientError("shutting_down", "the server is shutting down", proto.CLOSE_TRY_AGAIN)
        if len(self._sessions) >= self.config.max_streams:
            self.metrics.refused["server_full"] += 1
            raise proto.ClientError(
                "server_full",
                f"the server is at its limit of {self.config.max_streams} streams; try again later",
                proto.CLOSE_TRY_AGAIN,
            )
        session = Session(id=next(self._ids), sample_rate=request.sample_rate, outbox=outbox)
        self._sessions[session.id] = session
        self.metrics.streams_opened += 1
        self.metrics.streams_active = len(self._sessions)
        outbox.put_message(
            proto.ready_message(
                stream_id=session.id,
                model_rate=self.recognizer.sample_rate,
                chunk_ms=self.config.chunk_ms,
                lookahead_ms=self.lookahead_ms,
                limits=self.limits(),
            )
        )
        return session

    def feed(self, session: Session, samples: np.ndarray) -> bool:
        """Queue a frame for the next step. False (nothing queued) once the stream is finished: audio that
        crossed a server-side finish (shutdown, a limit) is not transcribed; ``done`` says how much was."""
        if session.state != OPEN:
            return False
        session.pending.append(samples)
        session.samples_in += samples.size
        self.metrics.audio_seconds += samples.size / session.sample_rate
        chunks = self._chunks_in(session)
        if chunks > session.chunks_in:
            if session.chunks_in == session.chunks_taken:
                session.ready_since = time.monotonic()
            session.chunks_in = chunks
            self._wake.set()  # a whole chunk: maybe time to step (audio within a chunk need not wake the loop)
        return True

    def _chunks_in(self, session: Session) -> int:
        """Whole encoder chunks in what the session has received (at the model's rate; resampling's delay aside)."""
        samples = session.samples_in * self.recognizer.sample_rate // session.sample_rate
        return self._num_frames(samples) // self._chunk_frames

    def finish(self, session: Session, reason: str, close_code: int = proto.CLOSE_NORMAL) -> None:
        """No more audio: decode what was received, send the last finals, ``done``, then close."""
        if session.state == OPEN:
            session.state = FINISHING
            session.finish_reason = reason
            session.close_code = close_code
            self._wake.set()

    def abandon(self, session: Session) -> None:
        """The client left: free the stream at the next step, send nothing."""
        if session.state in (OPEN, FINISHING):
            session.state = ABANDONED
            session.pending.clear()
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="asr-engine")

    async def run(self) -> None:
        """Step until :meth:`stop`: take what every session sent, step it in the worker, deliver results."""
        loop = asyncio.get_running_loop()
        window = self.config.window_ms / 1000.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (deadline := self._gather_deadline(window)) is not None:  # wait for the other streams' chunks
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                self._wake.clear()
            if self._stopping and not self._sessions:
                return
            work = self._take_work()
            if not work:
                continue
            try:
                updates = await loop.run_in_executor(self._executor, self._step, work)
            except Exception:  # a bug in the step: every stream in it fails, the server carries on
                logger.exception("recognizer step failed")
                updates = [self._failed(w.session, "the recognizer failed on this step") for w in work]
            self._deliver(updates)

    def _gather_deadline(self, window: float) -> float | None:
        """When to step if not every stream's chunk is in by then; None: step now (or nothing waits for one)."""
        if window <= 0 or self._stopping:
            return None
        oldest = None
        for s in self._sessions.values():
            if s.state != OPEN:
                return None  # a finish or a departure is handled at once
            if s.chunks_in > s.chunks_taken:
                oldest = s.ready_since if oldest is None else min(oldest, s.ready_since)
        if oldest is None:
            return None  # no whole chunk anywhere: step what arrived (nothing to gather for)
        if all(s.chunks_in > s.chunks_taken or s.samples_in == 0 for s in self._sessions.values()):
            return None  # every stream that sends audio has a chunk in: the fullest batch there can be
        deadline = oldest + window
        return deadline if deadline > time.monotonic() else None

    def _take_work(self) -> list[_Work]:
        work = []
        for s in self._sessions.values():
            if s.state == ABANDONED:
                work.append(_Work(s, None, False, True))
            elif s.pending or (s.state == FINISHING and not s.finish_sent):
                audio = None
                if s.pending:
                    audio = s.pending[0] if len(s.pending) == 1 else np.concatenate(s.pending)
                    s.pending = []
                    s.chunks_taken = s.chunks_in
                finish = s.state == FINISHING and not s.finish_sent
                s.finish_sent = s.finish_sent or finish
                work.append(_Work(s, audio, finish, False))
        return work

    def _deliver(self, updates: list[_Update]) -> None:
        for u in updates:
            s = u.session
            if u.error is not None:
                self.metrics.errors[u.error] += 1
            for kind, text in u.messages:
                s.outbox.put(kind, text)
            if u.closed:
                self._close(s)
            elif s.outbox.overflowed:  # the client reads slower than results come: drop it
                logger.warning(
                    "stream %d: client not reading its results (%d queued); dropping it", s.id, len(s.outbox)
                )
                s.outbox.clear()
                self.report_error(s.outbox, "slow_consumer", "results were not read fast enough; closing")
                s.outbox.close(proto.CLOSE_POLICY, "slow_consumer")
                self.abandon(s)

    def _close(self, s: Session) -> None:
        s.outbox.close(s.close_code, s.finish_reason or "done")  # a no-op where a close is already queued
        s.state = DONE
        self._sessions.pop(s.id, None)
        self.metrics.streams_active = len(self._sessions)
        s.done.set()
        if self._stopping and not self._sessions:
            self._wake.set()  # let run() return

    def report_error(self, outbox: Outbox, code: str, message: str) -> None:
        """Queue an error message for a client and count it."""
        self.metrics.errors[code] += 1
        outbox.put_message(proto.error_message(code, message))

    async def shutdown(self, timeout: float) -> None:
        """Refuse new streams, finish every stream with its final results (up to ``timeout`` s), stop."""
        self._stopping = True
        for s in list(self._sessions.values()):
            self.finish(s, "server_shutdown", proto.CLOSE_GOING_AWAY)
        pending = [s.done.wait() for s in self._sessions.values()]
        if pending:
            logger.info("finishing %d stream(s) before shutting down", len(pending))
            try:
                await asyncio.wait_for(asyncio.gather(*pending), timeout)
            except asyncio.TimeoutError:
                logger.warning("%d stream(s) not finished after %.1f s; closing them", len(self._sessions), timeout)
                for s in list(self._sessions.values()):
                    s.outbox.close(proto.CLOSE_GOING_AWAY, "server_shutdown")
                    self.abandon(s)  # freed at the next step, which run() still takes
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except asyncio.TimeoutError:
                self._task.cancel()
        self._executor.shutdown(wait=True)  # after the step in flight, if any

    # -- the worker thread's side ------------------------------------------------------------------------
    def warm_up(self) -> None:
        """One stream through a second of silence (compiles kernels, fills caches) before clients come."""
        rec = self.recognizer
        stream = rec.create_stream()
        try:
            stream.accept_waveform(np.zeros(rec.sample_rate, dtype=np.float32), rec.sample_rate)
            stream.input_finished()
            rec.decode([stream])
        finally:
            rec.close_stream(stream)

    def _ready_chunks(self, stream: Stream) -> int:
        """Encoder chunks the stream's audio so far makes (the recognizer steps every whole chunk at once)."""
        return self._num_frames(stream.samples_received) // self._chunk_frames

    def _step(self, work: list[_Work]) -> list[_Update]:
        rec = self.recognizer
        updates: list[_Update] = []
        stepping: list[Session] = []
        for w in work:
            s = w.session
            if w.abandon:
                if s.stream is not None:
                    rec.close_stream(s.stream)
                    s.stream = None
                updates.append(_Update(s, [], True))
                continue
            if s.stream is None:
                s.stream = rec.create_stream()
            try:
                if w.audio is not None:
                    s.stream.accept_waveform(w.audio, s.sample_rate)
                    s.samples_accepted += w.audio.size
            except ValueError as exc:  # the protocol checks should have caught it; this client alone fails
                updates.append(self._failed(s, str(exc), code="bad_audio"))
                continue
            if w.finish:
                s.stream.input_finished()
            if w.finish or self._ready_chunks(s.stream) > s.chunks:
                stepping.append(s)
        if not stepping:
            return updates
        # In a fixed order (stream ids): streams that step together again find their batch state as the last step
        # left it and it is continued in place, not split and stacked again (Recognizer's StreamBatch).
        stepping.sort(key=lambda s: s.stream.id)
        t0 = time.perf_counter()
        try:
            rec.decode([s.stream for s in stepping])
        except Exception:
            logger.exception("recognizer step failed for streams %s", [s.id for s in stepping])
            return updates + [self._failed(s, "the recognizer failed on this stream") for s in stepping]
        elapsed = time.perf_counter() - t0
        chunks = 0
        for s in stepping:
            update, new_chunks = self._results(s)
            chunks += new_chunks
            updates.append(update)
        self.metrics.record_step(elapsed, len(stepping), chunks)
        return updates

    def _results(self, s: Session) -> tuple[_Update, int]:
        """Messages for what changed on ``s`` in the step just run; frees the stream once it is done."""
        stream = s.stream
        assert stream is not None
        rec = self.recognizer
        received = s.samples_accepted / s.sample_rate
        done = stream.finished and stream.is_done
        ready = self._ready_chunks(stream)
        new_chunks = max(0, ready - s.chunks)
        s.chunks = max(s.chunks, ready)
        decoded = received if done else s.chunks * self._chunk_seconds
        messages: list[Message] = []
        spf = self._frame_seconds
        finals = stream.finals
        for segment in finals[s.finals_sent :]:
            msg = proto.final_message(segment, audio_received=received, audio_decoded=decoded, frame_seconds=spf)
            messages.append(("final", proto.dumps(msg)))
        s.finals_sent = len(finals)
        partial = stream.partial  # the text alone: Stream.result would build every token's time and word too
        if not done and (new_chunks or partial != s.partial):
            msg = proto.partial_message(partial, audio_received=received, audio_decoded=decoded)
            messages.append(("partial", proto.dumps(msg)))
        s.partial = partial
        if done:
            messages.append(("done", proto.dumps(proto.done_message(s.finish_reason, audio_received=received))))
            rec.close_stream(stream)
            s.stream = None
        return _Update(s, messages, done), new_chunks

    def _failed(self, s: Session, message: str, *, code: str = "internal_error") -> _Update:
        """An update that reports an error to this client alone and frees its stream (worker or loop)."""
        if s.stream is not None:
            self.recognizer.close_stream(s.stream)
            s.stream = None
        s.close_code = proto.CLOSE_INTERNAL if code == "internal_error" else proto.CLOSE_INVALID
        s.finish_reason = code
        return _Update(s, [("error", proto.dumps(proto.error_message(code, message)))], True, error=code)
