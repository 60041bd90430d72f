"""``asr serve`` end to end over real WebSockets on loopback: transcripts equal the recognizer's own, streams
batch together, and every limit and malformed input gets an error message to that client and a clean close
while the other streams carry on."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import numpy as np
import pytest
import soxr

from asr.serve import protocol as proto
from asr.serve.client import encode_frame, stream_audio
from asr.serve.config import ServeConfig
from asr.serve.metrics import parse_metrics
from tests.asr.live.conftest import SAMPLE_RATE
from tests.asr.serve.conftest import TEST_CONFIG, WORDS, recognizer_finals, running_server


def run(coro):
    return asyncio.run(coro)


async def exchange(url: str, *steps, headers=None, timeout: float = 15.0) -> tuple[list[dict], int | None]:
    """Send ``steps`` (str: a text message, bytes: a binary one, float: a pause) and read until the close."""
    messages: list[dict] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers or {}) as ws:

        async def read() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    messages.append(json.loads(msg.data))

        reader = asyncio.create_task(read())
        for step in steps:
            if isinstance(step, float):
                await asyncio.sleep(step)
            elif isinstance(step, bytes):
                await ws.send_bytes(step)
            else:
                await ws.send_str(step)
        await asyncio.wait_for(reader, timeout)
        return messages, ws.close_code


START16 = json.dumps({"type": "start", "sample_rate": SAMPLE_RATE, "format": "s16le"})
STARTF = json.dumps({"type": "start", "sample_rate": SAMPLE_RATE, "format": "f32le"})


def kinds(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages]


def error_codes(messages: list[dict]) -> list[str]:
    return [m["code"] for m in messages if m["type"] == "error"]


@pytest.mark.parametrize(
    ("rate", "fmt", "frame_ms", "realtime"),
    [(16000, "s16le", 20, True), (44100, "f32le", 37, False), (22050, "s16le", 160, False),
     (16000, "s16le", None, False), (48000, "f32le", None, False)],  # None: as the client chooses (message_ms)
)
def test_transcript_equals_the_recognizers_own(band_model, speech, rate, fmt, frame_ms, realtime):
    audio = speech if rate == SAMPLE_RATE else soxr.resample(speech, SAMPLE_RATE, rate).astype(np.float32)
    expected = recognizer_finals(band_model, audio, rate)
    assert [f["text"] for f in expected] == WORDS  # the band model hears the words at every rate
    with running_server(band_model) as server:
        out = run(stream_audio(server.ws_url, audio, rate, frame_ms=frame_ms, fmt=fmt, realtime=realtime))
        assert server.wait_idle() == 0
        assert not server.engine.recognizer.streams  # the stream was closed and freed
    assert out.messages[0]["type"] == "ready" and out.messages[0]["model_sample_rate"] == SAMPLE_RATE
    assert [{k: f[k] for k in ("text", "start", "end")} for f in out.finals] == expected
    assert out.done == {
        "type": "done",
        "reason": "stop",
        "audio_received": pytest.approx(len(speech) / 16000, abs=0.01),
    }
    assert out.close_code == proto.CLOSE_NORMAL and not out.errors
    if frame_ms is None:  # one model chunk per message at the model's rate; 20 ms frames where the server resamples
        assert out.frame_ms == (out.messages[0]["chunk_ms"] if rate == SAMPLE_RATE else 20.0)
    for final in out.finals:  # word times and confidences; the endpoint rule
        assert [w["text"] for w in final["words"]] == final["text"].split()
        assert all(final["start"] <= w["start"] <= w["end"] <= final["end"] for w in final["words"])
        assert all(0 < w["confidence"] <= 1 for w in final["words"])
        assert final["endpoint"] in ("silence_after_speech", "input_finished")
    if realtime:  # a partial after each step, saying how much audio its text covers: whole 160 ms chunks
        decoded = [m["audio_decoded"] for m in out.messages if m["type"] == "partial"]
        assert decoded == sorted(set(decoded)) and decoded[-1] > 7.0
        assert all(abs(d / 0.16 - round(d / 0.16)) < 1e-6 for d in decoded)
        assert len(out.latencies) == len(decoded) and 0 < min(out.latencies) and max(out.latencies) < 2.0


def test_concurrent_streams_share_steps_and_each_gets_its_own_transcript(band_model, speech):
    other = np.concatenate([np.zeros(8000, np.float32), speech[::-1].copy()])  # different audio, same bands
    expected = {0: recognizer_finals(band_model, speech, SAMPLE_RATE), 1: recognizer_finals(band_model, other, 16000)}

    async def main(url):
        jobs = [stream_audio(url, [speech, other][i % 2], SAMPLE_RATE, frame_ms=40, realtime=True) for i in range(6)]
        return await asyncio.gather(*jobs)

    with running_server(band_model) as server:
        outs = run(main(server.ws_url))
        metrics = parse_metrics(server.engine.metrics.render())
    for i, out in enumerate(outs):
        assert [{k: f[k] for k in ("text", "start", "end")} for f in out.finals] == expected[i % 2], i
    assert metrics['transcurrent_step_streams{quantile="0.99"}'] >= 4  # streams were stepped in one batch
    assert metrics["transcurrent_streams_opened_total"] == 6 and metrics["transcurrent_streams_active"] == 0
    latencies = [x for out in outs for x in out.latencies]
    assert len(latencies) > 100 and max(latencies) < 2.0


def test_max_streams_refuses_with_a_clear_message_and_the_others_carry_on(band_model, speech):
    speech = speech[: int(2.6 * SAMPLE_RATE)]  # CAB and its pause (DAD starts at 2.75 s)
    expected = recognizer_finals(band_model, speech, SAMPLE_RATE)
    config = ServeConfig(**{**TEST_CONFIG.__dict__, "max_streams": 2})

    async def main(url):
        good = [asyncio.create_task(stream_audio(url, speech, SAMPLE_RATE, realtime=True)) for _ in range(2)]
        await asyncio.sleep(0.5)
        refused = await exchange(url, START16)
        return await asyncio.gather(*good), refused

    with running_server(band_model, config) as server:
        good, (messages, code) = run(main(server.ws_url))
        assert server.engine.metrics.refused["server_full"] == 1
    assert code == proto.CLOSE_TRY_AGAIN
    assert messages == [
        {"type": "error", "code": "server_full", "message": "the server is at its limit of 2 streams; try again later"}
    ]
    for out in good:
        assert [{k: f[k] for k in ("text", "start", "end")} for f in out.finals] == expected


def test_bad_clients_get_an_error_and_a_clean_close_while_a_good_stream_carries_on(band_model, speech):
    expected = recognizer_finals(band_model, speech, SAMPLE_RATE)
    config = ServeConfig(**{**TEST_CONFIG.__dict__, "max_message_bytes": 4096})
    half = encode_frame(speech[: SAMPLE_RATE // 2], "s16le")  # 16000 bytes: over the 4096-byte limit
    nan = np.zeros(320, np.float32)
    nan[17] = np.nan
    cases = {  # name: (steps, error code, close code)
        "binary before start": ((b"\x00\x01",), "expected_start", proto.CLOSE_UNSUPPORTED),
        "malformed JSON": (("{not json",), "bad_json", proto.CLOSE_INVALID),
        "wrong sample rate": (('{"type": "start", "sample_rate": 1000}',), "bad_sample_rate", proto.CLOSE_INVALID),
        "rate as text": (('{"type": "start", "sample_rate": "16k"}',), "bad_sample_rate", proto.CLOSE_INVALID),
        "unknown format": (('{"type": "start", "sample_rate": 16000, "format": "mp3"}',), "bad_format", 1007),
        "odd byte count": ((START16, encode_frame(speech[:320], "s16le"), b"\x01\x02\x03"), "malformed_frame", 1007),
        "empty frame": ((START16, b""), "malformed_frame", proto.CLOSE_INVALID),
        "NaN audio": ((STARTF, encode_frame(speech[:320], "f32le"), nan.tobytes()), "nonfinite_audio", 1007),
        "text for binary": ((START16, encode_frame(speech[:320], "s16le"), "hello"), "expected_binary", 1003),
        "too big": ((START16, half), "message_too_big", proto.CLOSE_TOO_BIG),
    }

    async def main(url):
        good = asyncio.create_task(stream_audio(url, speech, SAMPLE_RATE, frame_ms=20, realtime=True))
        results = {}
        for name, (steps, _, _) in cases.items():
            results[name] = await exchange(url, *steps)
        far = await exchange(url, START16, b"\x00" * (4 * 4096 + 2))  # far over: aiohttp's own limit closes it
        return await good, results, far

    with running_server(band_model, config) as server:
        good, results, far = run(main(server.ws_url))
        assert server.wait_idle() == 0 and not server.engine.recognizer.streams
        errors = dict(server.engine.metrics.errors)
    assert [{k: f[k] for k in ("text", "start", "end")} for f in good.finals] == expected and not good.errors
    for name, (_, code, close) in cases.items():
        messages, close_code = results[name]
        assert error_codes(messages) == [code], (name, messages)
        assert close_code == close, (name, close_code)
        if messages[0]["type"] == "ready":  # a stream had started: it is finished properly after the error
            assert kinds(messages)[-1] == "done" and messages[-1]["reason"] == code, name
    assert any(
        "NaN or infinite samples (the first at sample 17)" in m.get("message", "") for m in results["NaN audio"][0]
    )
    assert far[1] == proto.CLOSE_TOO_BIG
    assert errors["message_too_big"] == 2 and errors["expected_binary"] == 1


def test_a_stream_past_its_duration_limit_gets_its_finals_then_an_error(band_model, speech):
    config = ServeConfig(**{**TEST_CONFIG.__dict__, "max_stream_seconds": 3.0})
    expected = recognizer_finals(band_model, speech[: 3 * SAMPLE_RATE], SAMPLE_RATE)
    with running_server(band_model, config) as server:
        out = run(stream_audio(server.ws_url, speech, SAMPLE_RATE, frame_ms=100, realtime=False))
    assert error_codes(out.messages) == ["max_duration"]
    assert out.close_code == proto.CLOSE_POLICY
    assert [{k: f[k] for k in ("text", "start", "end")} for f in out.finals] == expected  # the 3 s it took
    assert out.done["reason"] == "max_duration" and out.done["audio_received"] == pytest.approx(3.0, abs=1e-3)


def test_an_idle_stream_is_finished_and_closed(band_model, speech):
    config = ServeConfig(**{**TEST_CONFIG.__dict__, "idle_timeout_s": 0.5})
    first = speech[: int(2.6 * SAMPLE_RATE)]  # CAB and its pause (DAD starts at 2.75 s)
    with running_server(band_model, config) as server:
        messages, code = run(exchange(server.ws_url, START16, encode_frame(first, "s16le"), 2.0))
        silent, silent_code = run(exchange(server.ws_url, 1.5))  # connected, never started
    assert error_codes(messages) == ["idle_timeout"] and code == proto.CLOSE_POLICY
    assert [m["text"] for m in messages if m["type"] == "final"] == ["CAB"]
    assert kinds(messages)[-1] == "done"
    assert error_codes(silent) == ["idle_timeout"] and silent_code == proto.CLOSE_POLICY


@pytest.mark.parametrize(
    ("limits", "frame_ms", "message"),
    [
        ({"max_realtime": 2.0, "burst_seconds": 1.0}, 100, "audio arrives faster than 2x real time"),
        ({"max_messages_per_s": 50.0}, 1, "more than 50 messages per second"),
    ],
)
def test_a_client_over_its_rate_is_stopped(band_model, speech, limits, frame_ms, message):
    config = ServeConfig(**{**TEST_CONFIG.__dict__, **limits})
    with running_server(band_model, config) as server:
        out = run(stream_audio(server.ws_url, speech, SAMPLE_RATE, frame_ms=frame_ms, realtime=False))
    assert error_codes(out.messages) == ["rate_limited"] and message in out.errors[0]["message"]
    assert out.close_code == proto.CLOSE_POLICY and out.done["reason"] == "rate_limited"


def test_a_vanished_client_frees_its_stream_and_the_others_carry_on(band_model, speech):
    speech = speech[: int(2.6 * SAMPLE_RATE)]  # CAB and its pause (DAD starts at 2.75 s)
    expected = recognizer_finals(band_model, speech, SAMPLE_RATE)

    async def main(url):
        good = asyncio.create_task(stream_audio(url, speech, SAMPLE_RATE, frame_ms=20, realtime=True))
        gone = await stream_audio(url, speech, SAMPLE_RATE, frame_ms=20, realtime=True, vanish_after=1.0)
        return await good, gone

    with running_server(band_model) as server:
        good, gone = run(main(server.ws_url))
        assert server.wait_idle() == 0 and not server.engine.recognizer.streams
        opened = server.engine.metrics.streams_opened
    assert gone.vanished and gone.done is None
    assert [{k: f[k] for k in ("text", "start", "end")} for f in good.finals] == expected
    assert opened == 2


def test_token_origin_and_host_checks(band_model, speech):
    config = ServeConfig(**{**TEST_CONFIG.__dict__, "token": "s3cret"})
    clip = speech[: int(2.6 * SAMPLE_RATE)]  # CAB and its pause (DAD starts at 2.75 s)

    async def handshake(url, headers):
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(url, headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    async def get(url, headers=None):
        async with aiohttp.ClientSession() as http, http.get(url, headers=headers or {}) as r:
            return r.status, await r.text()

    with running_server(band_model, config) as server:
        ws = server.ws_url
        no_token, code = run(exchange(ws, START16))
        in_header = run(stream_audio(ws, clip, SAMPLE_RATE, realtime=False, token="s3cret"))
        in_start = run(stream_audio(ws, clip, SAMPLE_RATE, realtime=False, token="s3cret", token_in_header=False))
        wrong_header = run(handshake(ws, {"Authorization": "Bearer nope"}))
        bad_origin = run(handshake(ws, {"Origin": "http://evil.example", "Authorization": "Bearer s3cret"}))
        own_origin = run(handshake(ws, {"Origin": server.url.rstrip("/"), "Authorization": "Bearer s3cret"}))
        rebound = run(get(server.url, {"Host": "evil.example"}))
        metrics_without = run(get(server.url + "metrics"))
        metrics_with = run(get(server.url + "metrics", {"Authorization": "Bearer s3cret"}))
        health = run(get(server.url + "healthz"))
    assert error_codes(no_token) == ["unauthorized"] and code == proto.CLOSE_POLICY
    assert [f["text"] for f in in_header.finals] == ["CAB"] == [f["text"] for f in in_start.finals]
    assert (wrong_header, bad_origin, own_origin) == (401, 403, 101)
    assert rebound[0] == 421 and "loopback" in rebound[1]
    assert metrics_without[0] == 401 and metrics_with[0] == 200
    assert "transcurrent_streams_opened_total 2" in metrics_with[1]
    assert json.loads(health[1])["status"] == "ok"


def test_healthz_metrics_and_the_page_are_served(band_model, speech):
    async def get(url):
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            return r.status, r.headers, await r.text()

    with running_server(band_model) as server:
        run(stream_audio(server.ws_url, speech, SAMPLE_RATE, realtime=False))
        status, _, body = run(get(server.url + "healthz"))
        m_status, m_headers, m_body = run(get(server.url + "metrics"))
        page = run(get(server.url))
        script = run(get(server.url + "static/worklet.js"))
        missing = run(get(server.url + "static/../config.py"))
    assert status == 200 and json.loads(body) == {
        "status": "ok", "streams": 0, "max_streams": 64, "device": "cpu", "model_sample_rate": 16000, "chunk_ms": 160,
        "lookahead_ms": 15.0,
    }  # fmt: skip
    assert m_status == 200 and m_headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = parse_metrics(m_body)
    assert values["transcurrent_streams_opened_total"] == 1 and values["transcurrent_streams_active"] == 0
    assert values["transcurrent_audio_seconds_total"] == pytest.approx(len(speech) / SAMPLE_RATE)
    assert values["transcurrent_chunks_total"] == band_model.features.num_frames(len(speech)) // 16  # 160 ms chunks
    assert values['transcurrent_step_seconds{quantile="0.5"}'] > 0 and values["transcurrent_step_seconds_count"] > 0
    assert values["process_resident_memory_bytes"] > 0
    for line in m_body.splitlines():  # Prometheus text format: HELP/TYPE comments and "name{labels} value"
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or len(line.rsplit(" ", 1)) == 2
    assert page[0] == 200 and 'src="/static/app.js"' in page[2]
    assert "default-src 'self'" in page[1]["Content-Security-Policy"]
    assert script[0] == 200 and "registerProcessor" in script[2]
    assert missing[0] in (403, 404)
