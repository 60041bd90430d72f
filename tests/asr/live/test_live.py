"""The live front end without a sound card: display, chunk validation, the capture loop fed from a queue,
and ``asr transcribe --stream`` end to end on the band-energy model (see conftest.py)."""

from __future__ import annotations

import io
import json
import logging
import queue
import threading
import time

import numpy as np
import pytest
import soxr

from asr import live
from asr.cli import main
from asr.live import PARTIAL_MARK, AudioBlock, LiveConfig, TranscriptWriter, run_live
from asr.pipeline import save_asr_model
from asr.streaming.feed import chunk_frames_for, recognizer_config, stream_samples
from asr.streaming.recognizer import Recognizer, Segment, StreamResult
from tests.asr.live.conftest import SAMPLE_RATE, burst_speech, make_band_model

WORDS = ["CAB", "DAD", "ACDC"]


@pytest.fixture(scope="module")
def band_model():
    return make_band_model()


@pytest.fixture(scope="module")
def speech():
    return burst_speech(WORDS, seed=1)


def _recognizer(bundle, chunk_ms=160):
    return Recognizer(bundle, device="cpu", config=recognizer_config(bundle, chunk_ms))


def _segment(text, start, end):
    return Segment(text, start, end, tuple(text), (start,) * len(text), (0.9,) * len(text), "silence_after_speech")


# ------------------------------------------------------------------------------------------------ helpers


@pytest.mark.parametrize("ms,frames", [(40, 4), (160, 16), (640, 64), (2000, 200)])
def test_chunk_frames_for(ms, frames):
    assert chunk_frames_for(ms, frame_shift_ms=10.0, subsampling=4) == frames


@pytest.mark.parametrize("ms", [0, -160, 100, 30, True])
def test_chunk_frames_rejects_chunks_that_are_not_whole_encoder_frames(ms):
    with pytest.raises(ValueError, match="multiple of 40 ms"):
        chunk_frames_for(ms, frame_shift_ms=10.0, subsampling=4)


def test_recognizer_config_takes_the_model_step_from_the_model(band_model):
    import dataclasses

    assert recognizer_config(band_model, 160).chunk_frames == 16
    # a model whose features shift 20 ms steps 80 ms at a time: 160 ms is 8 feature frames, 120 ms is not whole steps
    coarse = dataclasses.replace(band_model, features=dataclasses.replace(band_model.features, frame_shift_ms=20.0))
    assert recognizer_config(coarse, 160).chunk_frames == 8
    with pytest.raises(ValueError, match="multiple of 80 ms"):
        recognizer_config(coarse, 120)


def test_writer_on_a_terminal_rewrites_the_partial_and_ends_lines_at_finals():
    out = io.StringIO()
    w = TranscriptWriter(out, tty=True)
    w.update(StreamResult(partial="HEL", finals=()))
    w.update(StreamResult(partial="HELLO", finals=()))
    w.update(StreamResult(partial="HELLO", finals=()))  # unchanged: nothing written
    w.update(StreamResult(partial="WO", finals=(_segment("HELLO", 0.0, 1.0),)))
    w.update(StreamResult(partial="", finals=(_segment("HELLO", 0.0, 1.0), _segment("WORLD", 1.0, 2.0))))
    w.finish()
    text = out.getvalue()
    assert text == "\r\x1b[KHEL\r\x1b[KHELLO\r\x1b[KHELLO\n\r\x1b[KWO\r\x1b[KWORLD\n"
    # what a terminal shows: the last state of each line
    assert [line.split("\r\x1b[K")[-1] for line in text.split("\n")][:2] == ["HELLO", "WORLD"]


def test_writer_to_a_pipe_writes_finals_only_and_json_has_times():
    out = io.StringIO()
    w = TranscriptWriter(out, tty=False, prefix="f.wav\t")
    w.update(StreamResult(partial="HEL", finals=()))
    w.update(StreamResult(partial="", finals=(_segment("HELLO", 0.0, 1.2),)))
    assert out.getvalue() == "f.wav\tHELLO\n"
    out = io.StringIO()
    w = TranscriptWriter(out, json_lines=True, tty=True, extra={"file": "f.wav"})
    w.update(StreamResult(partial="HEL", finals=()))
    w.update(StreamResult(partial="", finals=(_segment("HELLO", 0.4, 1.2),)))
    w.finish()
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["file"], r["text"], r["start"], r["end"]) for r in rows] == [("f.wav", "HELLO", 0.4, 1.2)]


def test_writer_to_a_pipe_logs_changed_partials_on_their_own_lines_when_asked():
    out = io.StringIO()
    w = TranscriptWriter(out, tty=False, partials=True)
    w.update(StreamResult(partial="HEL", finals=()))
    w.update(StreamResult(partial="HEL", finals=()))  # unchanged: not repeated
    w.update(StreamResult(partial="HELLO", finals=()))
    written = w.update(StreamResult(partial="", finals=(_segment("HELLO", 0.0, 1.2),)))
    w.finish()
    assert [s.text for s in written] == ["HELLO"]
    assert out.getvalue() == f"{PARTIAL_MARK}HEL\n{PARTIAL_MARK}HELLO\nHELLO\n"


def test_realtime_file_streaming_is_paced_by_the_audio_and_gives_the_same_result(band_model, speech):
    rate = SAMPLE_RATE
    clip = speech[: int(1.2 * rate)]  # the lead silence and the first word
    t0 = time.monotonic()
    paced = stream_samples(_recognizer(band_model), clip, rate, chunk_ms=160, realtime=True)
    elapsed = time.monotonic() - t0
    fast = stream_samples(_recognizer(band_model), clip, rate, chunk_ms=160)
    assert elapsed >= len(clip) / rate  # never ahead of the "microphone"
    assert paced.finals == fast.finals and paced.partial == fast.partial


# -------------------------------------------------------------------------------------- the capture loop


def test_band_model_transcribes_the_words_offline_and_streaming(band_model, speech):
    """The test model works as designed, so the microphone test compares meaningful transcripts."""
    import torch

    text, _ = band_model.transcribe(torch.from_numpy(speech))
    assert text == "".join(WORDS)
    result = stream_samples(_recognizer(band_model), speech, SAMPLE_RATE, chunk_ms=160)
    assert [s.text for s in result.finals] == WORDS
    assert all(s.endpoint == "silence_after_speech" for s in result.finals)


def _feed(blocks: queue.Queue, samples: np.ndarray, block: int, overflow_at: int = -1) -> None:
    for i, start in enumerate(range(0, len(samples), block)):
        blocks.put(AudioBlock(samples[start : start + block].copy(), i == overflow_at))


def test_run_live_equals_file_streaming_and_keeps_everything_captured_at_stop(band_model, speech, caplog):
    """Blocks at 44.1 kHz from a 'callback' thread; stop is set the moment the last block is queued: every
    captured block is still decoded and the last word finalised. An overflow flag gives a warning."""
    rate = 44100
    audio = soxr.resample(speech, SAMPLE_RATE, rate).astype(np.float32)
    blocks: queue.Queue = queue.Queue()
    stop = threading.Event()
    first = []

    def capture():
        _feed(blocks, audio, block=rate // 50, overflow_at=3)
        stop.set()

    thread = threading.Thread(target=capture)
    out = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="asr.live"):
        thread.start()
        result = run_live(
            _recognizer(band_model),
            blocks,
            rate,
            stop=stop,
            writers=[TranscriptWriter(out, tty=False)],
            on_first_block=lambda: first.append(True),
        )
        thread.join()
    reference = stream_samples(_recognizer(band_model), audio, rate, chunk_ms=160)
    assert [s.text for s in result.finals] == [s.text for s in reference.finals] == WORDS
    assert [(s.start, s.end) for s in result.finals] == [(s.start, s.end) for s in reference.finals]
    assert out.getvalue().splitlines() == WORDS
    assert first == [True]
    assert any("input overflow" in r.getMessage() for r in caplog.records)


def test_run_live_warns_when_decoding_falls_behind(band_model, speech, caplog):
    blocks: queue.Queue = queue.Queue()
    _feed(blocks, speech, block=SAMPLE_RATE // 50)  # ~10 s arrive at once: a backlog far beyond 0.5 s
    stop = threading.Event()
    calls = []

    def stop_capture():
        calls.append(True)

    rec = _recognizer(band_model)
    original = rec.decode

    def decode_then_stop(streams):  # stop after the first decode, with most of the audio still queued
        stop.set()
        return original(streams)

    rec.decode = decode_then_stop
    with caplog.at_level(logging.WARNING, logger="asr.live"):
        result = run_live(
            rec, blocks, SAMPLE_RATE, stop=stop, config=LiveConfig(max_backlog_s=0.5), stop_capture=stop_capture
        )
    assert calls == [True]
    assert any("falling behind" in r.getMessage() for r in caplog.records)
    assert [s.text for s in result.finals] == WORDS  # the queued audio is still decoded at stop


def _words_then(speech: np.ndarray, words: int) -> np.ndarray:
    """The audio of the first ``words`` words of WORDS in ``speech`` (cut in the pause after the last one)."""
    ends = np.flatnonzero(np.abs(speech) > 0)
    gaps = np.flatnonzero(np.diff(ends) > SAMPLE_RATE)  # the > 1 s pauses between words
    return speech[: ends[gaps[words - 1]] + SAMPLE_RATE]


def test_run_live_ends_with_an_error_when_the_source_dies(band_model, speech):
    """The device goes away (PortAudio ends the stream) after two words: run_live notices within ~0.1 s,
    finalises what was heard and raises SourceLost carrying that transcript."""
    blocks: queue.Queue = queue.Queue()
    _feed(blocks, _words_then(speech, 2), block=SAMPLE_RATE // 50)
    stop, alive, stopped = threading.Event(), [True], []

    def capture_ends():  # the source says it is gone once its last block was taken
        while not blocks.empty():
            time.sleep(0.01)
        alive[0] = False

    threading.Thread(target=capture_ends, daemon=True).start()
    out = io.StringIO()
    t0 = time.monotonic()
    with pytest.raises(live.SourceLost, match="the audio source stopped") as lost:
        run_live(
            _recognizer(band_model), blocks, SAMPLE_RATE, stop=stop, writers=[TranscriptWriter(out, tty=False)],
            source_alive=lambda: alive[0], stop_capture=lambda: stopped.append(True),
        )
    assert time.monotonic() - t0 < 10
    assert [s.text for s in lost.value.result.finals] == WORDS[:2]  # what was heard is kept
    assert out.getvalue().splitlines() == WORDS[:2] and stopped == [True]


def test_run_live_warns_when_audio_stops_coming_then_gives_up(band_model, speech, caplog):
    """A source that stays 'alive' but delivers nothing (a hung device): a warning after stall_warn_s, an error
    after stall_give_up_s; the words before are kept."""
    blocks: queue.Queue = queue.Queue()
    _feed(blocks, _words_then(speech, 1), block=SAMPLE_RATE // 50)
    config = LiveConfig(stall_warn_s=0.3, stall_give_up_s=1.0, warn_every_s=0.2)
    with caplog.at_level(logging.WARNING, logger="asr.live"), pytest.raises(live.SourceLost, match="no audio") as lost:
        run_live(_recognizer(band_model), blocks, SAMPLE_RATE, stop=threading.Event(), config=config,
                 source_alive=lambda: True)
    assert any("no audio from the input for" in r.getMessage() for r in caplog.records)
    assert [s.text for s in lost.value.result.finals] == WORDS[:1]


def test_run_live_gives_up_when_no_first_block_arrives(band_model):
    config = LiveConfig(first_block_timeout_s=0.5)
    with pytest.raises(live.SourceLost, match="no audio arrived within 0.5 s"):
        run_live(_recognizer(band_model), queue.Queue(), SAMPLE_RATE, stop=threading.Event(), config=config)


# ------------------------------------------------------------------------------- asr transcribe --stream


def test_transcribe_stream_cli_text_and_json(band_model, speech, tmp_path, capsys):
    import soundfile as sf

    ckpt = save_asr_model(tmp_path / "band.safetensors", band_model)
    wav = tmp_path / "words.wav"
    sf.write(wav, soxr.resample(speech, SAMPLE_RATE, 48000), 48000)  # the stream resamples 48k -> 16k
    assert main(["transcribe", "--stream", "--model", str(ckpt), str(wav)]) == 0
    assert capsys.readouterr().out.splitlines() == WORDS
    assert main(["transcribe", "--stream", "--chunk-ms", "80", "--json", "--model", str(ckpt), str(wav)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == WORDS
    assert all(r["file"] == str(wav) for r in rows)
    starts, ends = [r["start"] for r in rows], [r["end"] for r in rows]
    assert starts[0] == 0.0 and all(e > s for s, e in zip(starts, ends)) and starts[1:] == ends[:-1]
    assert ends[-1] <= len(speech) / SAMPLE_RATE + 0.05


def test_transcribe_stream_cli_errors(band_model, speech, tmp_path, capsys):
    import soundfile as sf

    ckpt = save_asr_model(tmp_path / "band.safetensors", band_model)
    wav = tmp_path / "words.wav"
    sf.write(wav, speech, SAMPLE_RATE)
    assert main(["transcribe", "--stream", "--chunk-ms", "100", "--model", str(ckpt), str(wav)]) == 2
    assert "multiple of 40 ms" in capsys.readouterr().err
    missing = tmp_path / "missing.wav"
    assert main(["transcribe", "--stream", "--model", str(ckpt), str(missing), str(wav)]) == 1
    captured = capsys.readouterr()
    assert "missing.wav" in captured.err
    assert captured.out.splitlines() == [f"{wav}\t{w}" for w in WORDS]
