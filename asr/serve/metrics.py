"""Server metrics in the Prometheus text exposition format (version 0.0.4), without a client library.

Counters and gauges are plain numbers updated on the event loop; the model step's times and batch sizes are
recorded by the worker thread under a lock and summarised over the last ``window`` steps (quantiles 0.5, 0.95,
0.99, as a Prometheus summary). Encoder chunks per second is also given as a gauge over the last 10 s so the
figure can be read without a Prometheus server (``curl /metrics``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque

import numpy as np

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (0.5, 0.95, 0.99)
_RATE_WINDOW_S = 10.0


class Metrics:
    def __init__(self, *, window: int = 1000) -> None:
        self._lock = threading.Lock()
        self.streams_active = 0
        self.streams_opened = 0
        self.refused: Counter[str] = Counter()  # reason -> count
        self.errors: Counter[str] = Counter()  # error code -> count
        self.audio_seconds = 0.0  # received from clients (at their rates)
        self.chunks = 0  # encoder chunks decoded, summed over streams
        self.steps = 0
        self.step_seconds_sum = 0.0
        self.messages_sent = 0
        self.partials_coalesced = 0  # partials replaced by a newer one before a slow client read them
        self._step_times: deque[float] = deque(maxlen=window)
        self._step_streams: deque[int] = deque(maxlen=window)
        self._chunk_times: deque[tuple[float, int]] = deque()  # (monotonic time, chunks) of recent steps

    def record_step(self, seconds: float, streams: int, chunks: int) -> None:
        """One recognizer step (worker thread): its duration, the streams in it and the chunks it decoded."""
        now = time.monotonic()
        with self._lock:
            self.steps += 1
            self.step_seconds_sum += seconds
            self.chunks += chunks
            self._step_times.append(seconds)
            self._step_streams.append(streams)
            self._chunk_times.append((now, chunks))
            while self._chunk_times and self._chunk_times[0][0] < now - _RATE_WINDOW_S:
                self._chunk_times.popleft()

    def step_quantiles(self) -> dict[float, float]:
        with self._lock:
            times = np.array(self._step_times, dtype=np.float64)
        return {q: float(np.quantile(times, q)) for q in QUANTILES} if times.size else {}

    def chunks_per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            recent = sum(n for t, n in self._chunk_times if t >= now - _RATE_WINDOW_S)
        return recent / _RATE_WINDOW_S

    def render(self) -> str:
        """Everything, in the Prometheus text format."""
        with self._lock:
            times = np.array(self._step_times, dtype=np.float64)
            sizes = np.array(self._step_streams, dtype=np.float64)
            steps, step_sum, chunks = self.steps, self.step_seconds_sum, self.chunks
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {_number(value)}")

        metric("transcurrent_streams_active", "gauge", "Streams connected now.", [("", self.streams_active)])
        metric("transcurrent_streams_opened_total", "counter", "Streams accepted.", [("", self.streams_opened)])
        metric(
            "transcurrent_streams_refused_total",
            "counter",
            "Connections refused, by reason.",
            [(f'{{reason="{r}"}}', n) for r, n in sorted(self.refused.items())] or [('{reason="server_full"}', 0)],
        )
        metric(
            "transcurrent_stream_errors_total",
            "counter",
            "Error messages sent to clients, by code.",
            [(f'{{code="{c}"}}', n) for c, n in sorted(self.errors.items())] or [('{code="internal_error"}', 0)],
        )
        metric(
            "transcurrent_audio_seconds_total", "counter", "Audio received from clients.", [("", self.audio_seconds)]
        )
        metric("transcurrent_chunks_total", "counter", "Encoder chunks decoded (all streams).", [("", chunks)])
        metric(
            "transcurrent_chunks_per_second",
            "gauge",
            f"Encoder chunks decoded per second over the last {_RATE_WINDOW_S:g} s.",
            [("", self.chunks_per_second())],
        )
        metric(
            "transcurrent_step_seconds",
            "summary",
            f"Duration of one batched recognizer step (quantiles over the last {times.size} steps).",
            [*_quantiles(times), ("_sum", step_sum), ("_count", steps)],
        )
        metric(
            "transcurrent_step_streams",
            "summary",
            f"Streams in one batched recognizer step (quantiles over the last {sizes.size} steps).",
            [*_quantiles(sizes), ("_sum", float(sizes.sum())), ("_count", sizes.size)],
        )
        metric("transcurrent_messages_sent_total", "counter", "Messages sent to clients.", [("", self.messages_sent)])
        metric(
            "transcurrent_partials_coalesced_total",
            "counter",
            "Partial results replaced by a newer one before a slow client read them.",
            [("", self.partials_coalesced)],
        )
        cpu = os.times()
        metric(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the server.",
            [("", cpu.user + cpu.system)],
        )
        metric("process_resident_memory_bytes", "gauge", "Resident memory of the server.", [("", resident_bytes())])
        return "\n".join(out) + "\n"


def _quantiles(values: np.ndarray) -> list[tuple[str, float]]:
    if not values.size:
        return [(f'{{quantile="{q}"}}', float("nan")) for q in QUANTILES]
    return [(f'{{quantile="{q}"}}', float(np.quantile(values, q))) for q in QUANTILES]


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:  # NaN
        return "NaN"
    return repr(float(value))


def resident_bytes() -> int:
    """This process's resident memory (Linux: /proc/self/statm; 0 where that is unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample line of a Prometheus text page (clients, tests, benchmarks)."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values
