"""The pieces of ``asr serve`` without a network: message parsing, audio frames, word times, the outbox's
coalescing and slow-client drop, rate buckets, metrics text, the settings' checks and the chunk bookkeeping
against the recognizer's own."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from asr.serve import protocol as proto
from asr.serve.app import TokenBucket, _host_name
from asr.serve.client import encode_frame, message_ends, message_ms, percentiles
from asr.serve.config import ServeConfig, is_loopback
from asr.serve.engine import Engine, Message, Outbox, Session, _Update
from asr.serve.metrics import Metrics, parse_metrics
from asr.streaming.feed import recognizer_config
from asr.streaming.recognizer import Recognizer


def client_error(fn, *args) -> proto.ClientError:
    with pytest.raises(proto.ClientError) as info:
        fn(*args)
    return info.value


def test_start_message_parsing():
    assert proto.parse_start('{"type": "start", "sample_rate": 48000}') == proto.StartRequest(48000, "s16le")
    assert proto.parse_start('{"type": "start", "sample_rate": 44100.0, "format": "f32le", "token": "t"}') == (
        proto.StartRequest(44100, "f32le", "t")
    )
    cases = {
        '{"type": "start"}': ("bad_sample_rate", "got None"),
        '{"type": "start", "sample_rate": 7999}': ("bad_sample_rate", "8000..192000, got 7999"),
        '{"type": "start", "sample_rate": true}': ("bad_sample_rate", "got True"),
        '{"type": "start", "sample_rate": 16000.5}': ("bad_sample_rate", "got 16000.5"),
        '{"type": "start", "sample_rate": 16000, "format": "ulaw"}': ("bad_format", "got 'ulaw'"),
        '{"type": "start", "sample_rate": 16000, "rate": 1}': ("bad_start", "unknown field(s) in the start message"),
        '{"type": "start", "sample_rate": 16000, "token": 5}': ("bad_start", "token must be a string"),
        '{"type": "stop"}': ("expected_start", "got type 'stop'"),
        "[1, 2]": ("bad_json", "expected a JSON object with a string 'type'"),
        '{"type": 3}': ("bad_json", "expected a JSON object"),
        "{oops": ("bad_json", "malformed JSON message"),
    }
    for text, (code, words) in cases.items():
        err = client_error(proto.parse_start, text)
        assert err.code == code and words in err.message, (text, err.message)
        assert err.close_code == proto.CLOSE_INVALID
    assert proto.parse_control('{"type": "stop"}') == "stop"
    for text in ('{"type": "start", "sample_rate": 16000}', "stop", "x" * 500):
        err = client_error(proto.parse_control, text)
        assert err.code == "expected_binary" and err.close_code == proto.CLOSE_UNSUPPORTED
        assert len(err.message) < 250  # long texts are clipped in the message


def test_audio_frames_decode_scale_and_reject_bad_ones():
    x = np.array([0.0, 0.5, -1.0, 0.999], np.float32)
    assert np.array_equal(proto.decode_audio(encode_frame(x, "f32le"), "f32le"), x)
    s16 = proto.decode_audio(encode_frame(x, "s16le"), "s16le")
    assert s16.dtype == np.float32 and np.allclose(s16, x, atol=1 / 32768)
    assert proto.decode_audio(np.array([-32768, 32767], "<i2").tobytes(), "s16le").tolist() == [-1.0, 32767 / 32768]
    assert client_error(proto.decode_audio, b"\x00\x00\x00", "s16le").code == "malformed_frame"
    assert client_error(proto.decode_audio, b"\x00\x00", "f32le").code == "malformed_frame"
    assert client_error(proto.decode_audio, b"", "s16le").code == "malformed_frame"
    bad = np.zeros(100, np.float32)
    bad[[41, 60]] = [np.inf, np.nan]
    err = client_error(proto.decode_audio, bad.tobytes(), "f32le")
    assert err.code == "nonfinite_audio" and "the first at sample 41" in err.message
    assert err.close_code == proto.CLOSE_INVALID
    big = np.full(4, 3e38, np.float32)  # finite, however loud: the sum check must not overflow into inf
    assert np.array_equal(proto.decode_audio(big.tobytes(), "f32le"), big)


def test_words_from_tokens():
    chars = ["H", "I", "|", "Y", "O", "U"]
    words = proto.words_from_tokens(
        "HI YOU",
        chars,
        [0.04, 0.08, 0.12, 0.2, 0.24, 0.4],
        [1.0, 0.5, 0.9, 0.8, 0.6, 0.4],
        end=0.42,
        frame_seconds=0.04,
    )
    assert words == [
        {"text": "HI", "start": 0.04, "end": 0.12, "confidence": 0.75},
        {"text": "YOU", "start": 0.2, "end": 0.42, "confidence": 0.6},  # capped at `end`
    ]
    pieces = ["\u2581he", "llo", "\u2581world"]
    assert [
        w["text"] for w in proto.words_from_tokens("hello world", pieces, [0, 1, 2], [1, 1, 1], end=9, frame_seconds=1)
    ] == [
        "hello",
        "world",
    ]
    phones = ["HH", "AY"]  # no word boundaries: no word list rather than a wrong one
    assert proto.words_from_tokens("HH AY", phones, [0, 1], [1, 1], end=2, frame_seconds=1) == []
    assert proto.words_from_tokens("", [], [], [], end=0, frame_seconds=0.04) == []


def test_messages_prefer_the_recognizers_own_words():
    @dataclasses.dataclass(frozen=True)
    class Word:  # the shape of the recognizer's timed words (lexicon decoders)
        text: str
        start: float
        end: float
        confidence: float

    word = Word(text="HELLO", start=0.1, end=0.5, confidence=0.91234)
    segment = SimpleNamespace(
        text="HELLO", start=0.0, end=0.9, tokens=("H",), token_times=(0.1,), confidences=(0.9,), endpoint="x",
        words=(word,),
    )  # fmt: skip
    msg = proto.final_message(segment, audio_received=1.0, audio_decoded=0.96, frame_seconds=0.04)
    assert msg["words"] == [{"text": "HELLO", "start": 0.1, "end": 0.5, "confidence": 0.9123}]
    assert msg["type"] == "final" and msg["endpoint"] == "x" and msg["audio_decoded"] == 0.96
    json.loads(proto.dumps(msg))


def test_outbox_coalesces_partials_and_closes_after_the_queue():
    async def main():
        metrics = Metrics()
        box = Outbox(limit=3, metrics=metrics)
        box.put("partial", "p1")
        box.put("partial", "p2")  # replaces p1 (not sent yet)
        box.put("final", "f1")
        box.put("partial", "p3")
        box.close(1000, "stop")
        box.put("final", "late")  # nothing after a close
        got = [await box.get() for _ in range(4)]
        return got, metrics.partials_coalesced

    got, coalesced = asyncio.run(main())
    assert got == [("partial", "p2"), ("final", "f1"), ("partial", "p3"), None]
    assert coalesced == 1


def test_a_client_that_does_not_read_is_dropped(band_model):
    async def main():
        config = ServeConfig(max_outbox=2)
        engine = Engine(Recognizer(band_model, device="cpu", config=recognizer_config(band_model, 160)), config=config)
        session = engine.open(proto.StartRequest(16000, "s16le"), Outbox(config.max_outbox, engine.metrics))
        finals: list[Message] = [("final", f"f{i}") for i in range(3)]
        engine._deliver([_Update(session, finals, closed=False)])
        items = []
        while (item := await session.outbox.get()) is not None:
            items.append(item)
        return session, items, session.outbox.close_with, engine.metrics.errors["slow_consumer"]

    session, items, close_with, errors = asyncio.run(main())
    assert [json.loads(text)["code"] for kind, text in items] == ["slow_consumer"]
    assert close_with == (proto.CLOSE_POLICY, "slow_consumer") and errors == 1
    assert session.state == "abandoned"  # its stream is freed at the next step


def test_chunk_bookkeeping_matches_the_recognizer(band_model, speech):
    """The engine counts decoded chunks from the samples a stream received (public API); the recognizer's own
    decoder frame counter (its progress, read here only to check) must agree after every step."""
    recognizer = Recognizer(band_model, device="cpu", config=recognizer_config(band_model, 160))
    engine = Engine(recognizer, config=ServeConfig())
    session = Session(id=0, sample_rate=16000, outbox=None)
    session.stream = recognizer.create_stream()
    rng = np.random.default_rng(0)
    start = 0
    while start < len(speech):
        n = int(rng.integers(1, 4000))
        session.stream.accept_waveform(speech[start : start + n], 16000)
        recognizer.decode([session.stream])
        start += n
        engine._results(session)
        assert session.chunks * 4 == session.stream.progress.decoder.frame  # 16 fbank frames = 4 model frames
    assert session.chunks == band_model.features.num_frames(len(speech)) // 16


def test_one_chunk_per_message_with_the_lookahead_completes_a_chunk_per_message(band_model):
    """A client at the model's rate sends chunk_ms + lookahead_ms first and chunk_ms after (message_ends): after
    message k the engine counts exactly k + 1 whole chunks; without the lead each message would leave its chunk
    15 ms short, to be finished by the next one."""

    async def main():
        rec = Recognizer(band_model, device="cpu", config=recognizer_config(band_model, 160))
        engine = Engine(rec, config=ServeConfig())
        session = engine.open(proto.StartRequest(16000, "s16le"), Outbox(8, engine.metrics))
        return engine, session, json.loads((await session.outbox.get())[1])

    engine, session, ready = asyncio.run(main())
    assert ready["chunk_ms"] == 160 and ready["lookahead_ms"] == 15.0  # the 25 ms window's overhang past 10 ms
    assert message_ms(ready, 16000) == 160 and message_ms(ready, 48000) == 20.0
    n = 16000 * 3
    ends = message_ends(n, 16000, 160, lead_ms=ready["lookahead_ms"])
    assert ends[:3] == [2800, 5360, 7920] and ends[-1] == n
    for k, end in enumerate(ends[:-1]):
        assert engine._chunks_in(dataclasses.replace(session, samples_in=end)) == k + 1
        assert engine._chunks_in(dataclasses.replace(session, samples_in=end - 1)) == k  # not a sample early
    plain = message_ends(n, 16000, 160)  # no lead: chunk k is whole only after message k + 1
    assert [engine._chunks_in(dataclasses.replace(session, samples_in=e)) for e in plain[:3]] == [0, 1, 2]
    assert message_ends(0, 16000, 160) == [] and message_ends(100, 16000, 160) == [100]


def test_token_bucket():
    bucket = TokenBucket(rate=1000.0, capacity=2.0)
    assert bucket.take(1.5) and not bucket.take(1.0)
    bucket._t -= 0.01  # 10 ms later: +10 units, capped at the capacity
    assert bucket.take(2.0) and not bucket.take(0.5)


def test_metrics_text_and_quantiles():
    m = Metrics(window=4)
    for seconds in (0.01, 0.02, 0.03, 0.04, 0.05):
        m.record_step(seconds, streams=3, chunks=3)
    m.refused["server_full"] += 2
    values = parse_metrics(m.render())
    assert values['transcurrent_step_seconds{quantile="0.5"}'] == pytest.approx(0.035)  # the last 4 steps
    assert values["transcurrent_step_seconds_count"] == 5 and values["transcurrent_chunks_total"] == 15
    assert values["transcurrent_chunks_per_second"] == pytest.approx(1.5)  # 15 chunks in the 10 s window
    assert values['transcurrent_streams_refused_total{reason="server_full"}'] == 2
    assert values['transcurrent_step_streams{quantile="0.99"}'] == 3
    empty = parse_metrics(Metrics().render())
    assert np.isnan(empty['transcurrent_step_seconds{quantile="0.95"}'])
    assert percentiles([1.0, 2.0, 3.0])["p50"] == 2.0 and np.isnan(percentiles([])["p95"])


def test_settings_and_host_checks():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert ServeConfig().loopback and not ServeConfig(host="0.0.0.0").loopback
    assert _host_name("127.0.0.1:8000") == "127.0.0.1" and _host_name("[::1]:80") == "::1"
    assert _host_name("localhost") == "localhost" and _host_name("::1") == "::1"
    with pytest.raises(ValueError, match="max_streams"):
        ServeConfig(max_streams=0)
    with pytest.raises(ValueError, match="port"):
        ServeConfig(port=70000)
    with pytest.raises(ValueError, match="token"):
        ServeConfig(token=" ")
