"""The engine's gathering rule (asr.serve.engine): a step waits for every sending stream's whole chunk, at most
the batching window after the oldest one; a lone stream, a finish or an empty window never wait."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np
import pytest

from asr.serve import protocol as proto
from asr.serve.engine import Engine, Outbox
from asr.streaming.recognizer import Recognizer
from tests.asr.serve.conftest import TEST_CONFIG

CHUNK = 2560 + 240  # 160 ms at 16 kHz, plus the fbank window's overhang for the first chunk


def _engine(band_model, **overrides) -> Engine:
    config = dataclasses.replace(TEST_CONFIG, **overrides)
    return Engine(Recognizer(band_model, device="cpu"), config=config)


def _open(engine: Engine):
    return engine.open(proto.StartRequest(sample_rate=16000, format="f32le"), Outbox(16))


def test_a_lone_stream_steps_as_soon_as_its_chunk_is_in(band_model):
    async def main():
        engine = _engine(band_model)
        a = _open(engine)
        engine.feed(a, np.zeros(1000, np.float32))
        assert engine._gather_deadline(0.16) is None  # no whole chunk anywhere: nothing to wait for
        engine.feed(a, np.zeros(CHUNK, np.float32))
        assert a.chunks_in == 1 and engine._gather_deadline(0.16) is None

    asyncio.run(main())


def test_a_chunk_waits_for_the_other_streams_then_no_longer_than_the_window(band_model):
    async def main():
        engine = _engine(band_model)
        assert engine.config.window_ms == engine.config.chunk_ms == 160  # the default window: one chunk
        a, b, idle = _open(engine), _open(engine), _open(engine)  # idle never sends: it holds no one back
        engine.feed(b, np.zeros(1000, np.float32))
        t0 = time.monotonic()
        engine.feed(a, np.zeros(CHUNK, np.float32))
        deadline = engine._gather_deadline(0.16)
        assert deadline is not None and t0 + 0.16 <= deadline <= time.monotonic() + 0.16  # b's chunk is not in
        engine.feed(b, np.zeros(CHUNK, np.float32))
        assert engine._gather_deadline(0.16) is None  # every sending stream has a chunk in: step now
        work = engine._take_work()
        assert {w.session.id for w in work} == {a.id, b.id} and idle.chunks_in == 0
        assert a.chunks_taken == a.chunks_in and engine._gather_deadline(0.16) is None  # nothing waits now
        engine.feed(a, np.zeros(2560, np.float32))
        assert engine._gather_deadline(0.0) is None  # window 0: step at once
        assert engine._gather_deadline(0.16) is not None
        engine.finish(b, "stop")
        assert engine._gather_deadline(0.16) is None  # a finish is handled at once

    asyncio.run(main())


def test_the_window_must_not_be_negative():
    with pytest.raises(ValueError, match="batch_window_ms"):
        dataclasses.replace(TEST_CONFIG, batch_window_ms=-1.0)
    assert dataclasses.replace(TEST_CONFIG, batch_window_ms=40.0, chunk_ms=320).window_ms == 40.0
    assert dataclasses.replace(TEST_CONFIG, chunk_ms=320).window_ms == 320.0
