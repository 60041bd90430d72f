"""A short soak: clients connecting and leaving in every way (stop, close without stop, TCP cut mid-stream,
stall until the idle timeout) for ~12 s; afterwards no session or recognizer stream is left and memory is flat.
tools/bench_serve.py --soak runs the same churn for minutes."""

from __future__ import annotations

import asyncio

from asr.serve.client import churn
from asr.serve.config import ServeConfig
from asr.serve.metrics import resident_bytes
from tests.asr.live.conftest import SAMPLE_RATE
from tests.asr.serve.conftest import TEST_CONFIG, running_server


def test_churning_clients_leak_no_stream_and_no_memory(band_model, speech):
    config = ServeConfig(**{**TEST_CONFIG.__dict__, "idle_timeout_s": 0.7})
    with running_server(band_model, config) as server:
        warm = asyncio.run(churn(server.ws_url, speech, SAMPLE_RATE, seconds=4, clients=6, seed=1))
        before = resident_bytes()
        counts = asyncio.run(churn(server.ws_url, speech, SAMPLE_RATE, seconds=8, clients=6, seed=2))
        after = resident_bytes()
        assert server.wait_idle() == 0
        assert not server.engine.recognizer.streams
        metrics = server.engine.metrics
        assert metrics.streams_active == 0
        assert metrics.streams_opened == sum(warm.values()) + sum(counts.values())
    assert counts["failed"] == 0 and warm["failed"] == 0, (warm, counts)
    assert all(counts[k] > 0 for k in ("stop", "close", "vanish", "wait")), counts
    assert sum(counts.values()) > 30
    assert after - before < 40 * 2**20, (before, after)  # flat: no per-stream growth (glibc may keep a few MB)
