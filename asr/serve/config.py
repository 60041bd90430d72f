"""The server's settings: where it listens and the limits it enforces on every connection."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

#: Sample rates a client may declare (Hz); the stream resamples anything in this range to the model's rate.
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback only; any other address must be asked for (asr serve --host)
    port: int = 8000  # 0: any free port (the one chosen is logged and printed)
    token: str | None = None  # bearer token every /ws and /metrics request must carry; None: no token
    allowed_origins: tuple[str, ...] = ()  # browser Origins allowed on /ws besides the server's own
    max_streams: int = 64  # connected streams at once; the next one is refused with "server_full"
    max_message_bytes: int = 512 * 1024  # largest WebSocket message (an audio frame or a JSON message)
    max_stream_seconds: float = 3600.0  # audio per stream; then its results are finished and it is closed
    idle_timeout_s: float = 30.0  # a connection that sends nothing for this long is finished and closed
    max_realtime: float = 4.0  # per connection: audio seconds accepted per wall-clock second, sustained ...
    burst_seconds: float = 10.0  # ... above a burst of this many seconds of audio (a token bucket)
    max_messages_per_s: float = 500.0  # per connection: messages per second, sustained (burst: one second's)
    max_outbox: int = 256  # results queued for a client that does not read them; then it is dropped
    chunk_ms: int = 160  # audio per encoder step (a multiple of 40 ms)
    # how long a whole chunk waits for the other streams' chunks to join its step (asr.serve.engine); None: one
    # chunk (chunk_ms), after which every stream has one in; 0: step whatever has arrived, at once
    batch_window_ms: float | None = None
    shutdown_grace_s: float = 10.0  # on SIGTERM: time allowed to finish every stream with its final result
    close_timeout_s: float = 5.0  # how long a close handshake may wait for the client's reply

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty (omit it for no token)")
        positive = {
            "max_streams": self.max_streams,
            "max_message_bytes": self.max_message_bytes,
            "max_stream_seconds": self.max_stream_seconds,
            "idle_timeout_s": self.idle_timeout_s,
            "max_realtime": self.max_realtime,
            "burst_seconds": self.burst_seconds,
            "max_messages_per_s": self.max_messages_per_s,
            "max_outbox": self.max_outbox,
            "chunk_ms": self.chunk_ms,
            "shutdown_grace_s": self.shutdown_grace_s,
            "close_timeout_s": self.close_timeout_s,
        }
        bad = {k: v for k, v in positive.items() if not v > 0}
        if bad:
            raise ValueError(f"these settings must be > 0: {bad}")
        if self.batch_window_ms is not None and not self.batch_window_ms >= 0:
            raise ValueError(f"batch_window_ms must be >= 0, got {self.batch_window_ms}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be >= 1024 (a start message), got {self.max_message_bytes}")

    @property
    def window_ms(self) -> float:
        """The batching window in effect (``batch_window_ms``, or one chunk)."""
        return float(self.chunk_ms) if self.batch_window_ms is None else self.batch_window_ms

    @property
    def loopback(self) -> bool:
        """Whether ``host`` is reachable from this machine only."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1 are loopback; every other name or address is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
