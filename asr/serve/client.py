"""A Python client of ``asr serve``: send audio as a microphone would (in real time, in small frames) and collect
what comes back, with the latency of each result (``asr stream-client``, tools/bench_serve.py, the tests).

Latency is measured the way the page measures it: every result carries ``audio_decoded``, the seconds of this
stream's audio its text covers; the client remembers when it sent the frame holding that instant, and the
latency is the time from that send to the result's arrival (the audio's last sample sent -> text seen).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

ENDINGS = ("stop", "close", "wait")


@dataclass
class StreamOutcome:
    """Everything one stream got back."""

    messages: list[dict[str, Any]] = field(default_factory=list)  # every server message, in order
    latencies: list[float] = field(default_factory=list)  # seconds, per partial: its audio sent -> it received
    latency_at: list[float] = field(default_factory=list)  # the audio_decoded (s) of each of those partials
    final_latencies: list[float] = field(default_factory=list)  # the same for finals
    close_code: int | None = None
    seconds_sent: float = 0.0
    vanished: bool = False  # the client dropped the connection on purpose (vanish_after)
    frame_ms: float | None = None  # audio per message it sent (frame_ms, or what the server's chunk made it)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    @property
    def finals(self) -> list[dict[str, Any]]:
        return self.of_type("final")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.of_type("error")

    @property
    def done(self) -> dict[str, Any] | None:
        found = self.of_type("done")
        return found[-1] if found else None

    @property
    def text(self) -> str:
        """The finals' texts, space-joined."""
        return " ".join(m["text"] for m in self.finals if m["text"])


def encode_frame(samples: np.ndarray, fmt: str) -> bytes:
    """float32 samples -> a binary frame (s16le: clipped and rounded; f32le: as is)."""
    if fmt == "s16le":
        return np.round(np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype("<i2").tobytes()
    if fmt == "f32le":
        return np.asarray(samples, dtype="<f4").tobytes()
    raise ValueError(f"format must be 's16le' or 'f32le', got {fmt!r}")


RESAMPLED_FRAME_MS = 20.0  # audio per message when the server resamples (frame_ms=None)


def message_ms(ready: dict[str, Any], sample_rate: int) -> float:
    """Audio per message a client should send (``ready``: the server's ready message): one model chunk at the
    model's rate (the server decodes whole chunks, so smaller messages only add per-message work), else
    RESAMPLED_FRAME_MS."""
    if int(sample_rate) == int(ready["model_sample_rate"]):
        return float(ready["chunk_ms"])
    return RESAMPLED_FRAME_MS


def message_ends(n: int, sample_rate: int, frame_ms: float, *, lead_ms: float = 0.0) -> list[int]:
    """Where each message ends, in samples of ``n``: the first after ``frame_ms + lead_ms``, then every
    ``frame_ms``. With one chunk per message, ``lead_ms`` = the ready message's ``lookahead_ms`` makes each message
    complete a chunk (chunk k needs k * chunk_ms + lookahead_ms of audio); without it every chunk would wait for
    the next message."""
    if n <= 0:
        return []
    step = max(1, int(round(sample_rate * frame_ms / 1000.0)))
    first = max(1, int(round(sample_rate * (frame_ms + lead_ms) / 1000.0)))
    return [*range(first, n, step), n]  # the range stops short of n: the last message ends the audio


async def stream_audio(
    url: str,
    samples: np.ndarray,
    sample_rate: int,
    *,
    frame_ms: float | None = None,
    realtime: bool = True,
    fmt: str = "s16le",
    token: str | None = None,
    token_in_header: bool = True,
    on_message: Callable[[dict[str, Any]], object] | None = None,
    http: aiohttp.ClientSession | None = None,
    vanish_after: float | None = None,
    end: str = "stop",
    timeout: float = 60.0,
) -> StreamOutcome:
    """Stream ``samples`` (float32 mono at ``sample_rate``) to ``url`` and collect the results.

    ``frame_ms``: audio per message; None: one model chunk (the ``ready`` message's ``chunk_ms``) when
    ``sample_rate`` is the model's, else :data:`RESAMPLED_FRAME_MS` (the server's resampler holds back a few ms, so
    a chunk-sized message would complete its chunk only with the next one).
    ``realtime``: frame i is sent when its last sample would have been captured (a live microphone).
    ``vanish_after``: after that many seconds of audio, drop the TCP connection without a WebSocket close (a
    client that vanished). ``end``: after the audio, "stop" (send the stop message and read until the server
    closes), "close" (close the WebSocket at once, without stop) or "wait" (send nothing, read until the server
    closes: its idle timeout). ``timeout``: seconds to wait for the server after the audio is sent.
    """
    if frame_ms is not None and frame_ms <= 0:
        raise ValueError(f"frame_ms must be > 0, got {frame_ms}")
    if end not in ENDINGS:
        raise ValueError(f"end must be one of {ENDINGS}, got {end!r}")
    samples = np.asarray(samples, dtype=np.float32)
    out = StreamOutcome()
    sent_ends: list[float] = []  # seconds of audio sent after each frame
    sent_times: list[float] = []  # when each frame was sent (time.monotonic)
    headers = {"Authorization": f"Bearer {token}"} if token and token_in_header else {}
    start: dict[str, Any] = {"type": "start", "sample_rate": int(sample_rate), "format": fmt}
    if token and not token_in_header:
        start["token"] = token
    own = http is None
    http = http or aiohttp.ClientSession()
    try:
        async with http.ws_connect(url, headers=headers, heartbeat=None, max_msg_size=0) as ws:
            first: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

            async def receive() -> None:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    now = time.monotonic()
                    m = json.loads(msg.data)
                    out.messages.append(m)
                    if not first.done():
                        first.set_result(m)
                    decoded = m.get("audio_decoded")
                    if decoded is not None and m["type"] in ("partial", "final"):
                        i = bisect.bisect_left(sent_ends, decoded - 1e-4)
                        if i < len(sent_times) and m["type"] == "partial":
                            out.latencies.append(now - sent_times[i])
                            out.latency_at.append(decoded)
                        elif i < len(sent_times):
                            out.final_latencies.append(now - sent_times[i])
                    if on_message is not None:
                        on_message(m)
                if not first.done():
                    first.set_result({})

            receiver = asyncio.create_task(receive())
            await ws.send_str(json.dumps(start))
            reply = await asyncio.wait_for(asyncio.shield(first), timeout)
            if reply.get("type") == "ready":
                out.frame_ms = frame_ms if frame_ms is not None else message_ms(reply, sample_rate)
                chunked = frame_ms is None and out.frame_ms == reply.get("chunk_ms")
                ends = message_ends(len(samples), sample_rate, out.frame_ms,
                                    lead_ms=float(reply.get("lookahead_ms", 0.0)) if chunked else 0.0)  # fmt: skip
                t0 = time.monotonic()
                for begin, stop_at in zip([0, *ends[:-1]], ends):
                    if vanish_after is not None and begin / sample_rate >= vanish_after:
                        _drop(ws)
                        out.vanished = True
                        break
                    if realtime:
                        wait = t0 + stop_at / sample_rate - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    if ws.closed:
                        break
                    try:
                        await ws.send_bytes(encode_frame(samples[begin:stop_at], fmt))
                    except ConnectionResetError:  # the server closed the stream (an error, a limit, shutdown)
                        break
                    sent_ends.append(stop_at / sample_rate)
                    sent_times.append(time.monotonic())
                    out.seconds_sent = stop_at / sample_rate
                if end == "stop" and not ws.closed and not out.vanished:
                    try:
                        await ws.send_str('{"type": "stop"}')
                    except ConnectionResetError:
                        pass
                elif end == "close" and not out.vanished:
                    await ws.close()
            if out.vanished:
                receiver.cancel()
            else:
                await asyncio.wait_for(receiver, timeout)
            out.close_code = ws.close_code
    finally:
        if own:
            await http.close()
    return out


def _drop(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Cut the TCP connection under a WebSocket without a close frame (the server sees the peer vanish)."""
    sock = ws.get_extra_info("socket")
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)


def percentiles(values: list[float], qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` (NaN for no values)."""
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{round(q * 100)}": float(np.quantile(arr, q)) if arr.size else float("nan") for q in qs}


async def churn(
    url: str,
    samples: np.ndarray,
    sample_rate: int,
    *,
    seconds: float,
    clients: int,
    seed: int = 0,
    token: str | None = None,
) -> Counter[str]:
    """Clients connecting and leaving in every way for ``seconds`` (a soak): each of ``clients`` workers streams
    0.3-2 s clips of ``samples`` in real time again and again, ending each by a stop, a close without stop, a
    vanished TCP connection mid-stream, or a stall until the server's idle timeout. Returns counts per ending
    (and ``"failed"`` for streams whose ending went otherwise than expected)."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    counts: Counter[str] = Counter()

    async def worker() -> None:
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                how = rng.choice(("stop", "stop", "close", "vanish", "wait"))
                n = int(rng.uniform(0.3, 2.0) * sample_rate)
                at = rng.randrange(0, max(1, len(samples) - n))
                clip = samples[at : at + n]
                out = await stream_audio(
                    url, clip, sample_rate, http=http, token=token, frame_ms=40.0,
                    vanish_after=len(clip) / sample_rate / 2 if how == "vanish" else None,
                    end="stop" if how == "vanish" else how,
                )  # fmt: skip
                ok = {
                    "stop": out.done is not None and out.done["reason"] == "stop",
                    "close": out.done is None,
                    "vanish": out.vanished,
                    "wait": out.done is not None and out.done["reason"] == "idle_timeout",
                }[how]
                counts[how if ok else "failed"] += 1

    await asyncio.gather(*(worker() for _ in range(clients)))
    return counts
