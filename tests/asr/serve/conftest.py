"""Helpers for the server tests: ``asr serve`` in a background thread on a free loopback port, the band model
(tests/asr/live/conftest.py: each burst of band-k noise decodes to letter k, robustly against resampling and
offsets) and its "speech", and the transcript the recognizer itself gives the same audio."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from asr.serve.app import run_server
from asr.serve.config import ServeConfig
from asr.serve.engine import Engine
from asr.streaming.feed import recognizer_config, stream_samples
from asr.streaming.recognizer import Recognizer
from tests.asr.live.conftest import burst_speech, make_band_model

WORDS = ["CAB", "DAD", "ACDC"]

#: Limits loose enough that only the test that is about a limit meets it (audio is sent faster than real time).
TEST_CONFIG = ServeConfig(port=0, max_realtime=1000.0, burst_seconds=1000.0, max_messages_per_s=10000.0)


@pytest.fixture(scope="session")
def band_model():
    return make_band_model()


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    """Three words of band-noise bursts, 16 kHz float32 (~6 s)."""
    return burst_speech(WORDS, seed=3)


def recognizer_finals(bundle, samples: np.ndarray, rate: int, *, chunk_ms: int = 160) -> list[dict]:
    """The finals the recognizer gives ``samples`` streamed on its own (asr.streaming.feed.stream_samples, as
    ``asr transcribe --stream`` does): text, start, end."""
    config = recognizer_config(bundle, chunk_ms)
    result = stream_samples(Recognizer(bundle, device="cpu", config=config), samples, rate, chunk_ms=chunk_ms)
    return [{"text": s.text, "start": s.start, "end": s.end} for s in result.finals]


@dataclasses.dataclass
class RunningServer:
    url: str  # http://127.0.0.1:PORT/
    engine: Engine
    loop: asyncio.AbstractEventLoop
    config: ServeConfig

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[4:] + "ws"

    def wait_idle(self, timeout: float = 10.0) -> int:
        """Wait until no session is left (vanished clients are noticed and freed within a step or two);
        returns the number left at the deadline."""
        deadline = time.monotonic() + timeout
        while (left := self.call(lambda: self.engine.sessions)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the server's event loop and return its result (engine state is loop-owned)."""
        done = threading.Event()
        box: list = []
        self.loop.call_soon_threadsafe(lambda: (box.append(fn(*args)), done.set()))
        assert done.wait(5), "server loop did not answer"
        return box[0]


@contextmanager
def running_server(bundle, config: ServeConfig = TEST_CONFIG) -> Iterator[RunningServer]:
    """``asr serve``'s engine and app on a free loopback port, in a background thread; graceful stop at exit."""
    rconfig = recognizer_config(bundle, config.chunk_ms)
    engine = Engine(Recognizer(bundle, device="cpu", config=rconfig), config=config)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    urls: list[str] = []
    stop: list[asyncio.Event] = []
    errors: list[BaseException] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        await run_server(
            engine, config, on_listening=lambda u: (urls.append(u), started.set()), stop=stop[0], handle_signals=False
        )

    def target() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="asr-serve-test", daemon=True)
    thread.start()
    assert started.wait(30), "server did not start"
    assert not errors, errors
    try:
        yield RunningServer(url=urls[0], engine=engine, loop=loop, config=config)
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(30)
        assert not thread.is_alive(), "server did not stop"
    assert not errors, errors
