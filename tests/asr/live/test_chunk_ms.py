"""``--chunk-ms`` means one thing in ``asr live``, ``asr transcribe --stream`` and ``asr eval --mode stream``
(asr.streaming.feed): the audio per encoder step; a file is fed to the stream in pieces of that size, a microphone
in its capture blocks."""

from __future__ import annotations

import json
import queue

import numpy as np
import pytest
import soundfile as sf

import asr.live
from asr.cli import main
from asr.live import AudioBlock
from asr.pipeline import save_asr_model
from asr.streaming.feed import chunk_frames_covering, chunk_samples, feed_chunks
from asr.streaming.recognizer import Recognizer, Stream
from tests.asr.live.conftest import SAMPLE_RATE, burst_speech, make_band_model

WORDS = ["CAB", "DAD", "ACDC"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("chunk_ms")
    ckpt = save_asr_model(root / "band.safetensors", make_band_model())
    speech = burst_speech(WORDS, seed=3)
    wav = root / "words.wav"
    sf.write(wav, speech, SAMPLE_RATE, subtype="FLOAT")
    manifest = root / "m.jsonl"
    row = {"id": "a", "audio": str(wav), "duration": len(speech) / SAMPLE_RATE, "text": " ".join(WORDS), "speaker": "s"}
    manifest.write_text(json.dumps(row) + "\n")
    return ckpt, wav, manifest, speech


@pytest.fixture
def seen(monkeypatch):
    """What the recognizer was asked to do: the samples of every piece fed, the frames of every encoder step."""
    record = {"fed": [], "step_frames": set()}
    accept, decode = Stream.accept_waveform, Recognizer.decode

    def accept_spy(self, samples, sample_rate, **kw):
        record["fed"].append(len(samples))
        return accept(self, samples, sample_rate, **kw)

    def decode_spy(self, streams=None):
        record["step_frames"].add(self.config.chunk_frames)
        return decode(self, streams)

    monkeypatch.setattr(Stream, "accept_waveform", accept_spy)
    monkeypatch.setattr(Recognizer, "decode", decode_spy)
    return record


def _pieces(n: int, chunk_ms: int) -> list[int]:
    step = chunk_samples(SAMPLE_RATE, chunk_ms)
    return [min(step, n - i) for i in range(0, n, step)]


@pytest.mark.parametrize("chunk_ms", [160, 320])
def test_transcribe_stream_feeds_chunk_ms_pieces_one_encoder_step_each(files, seen, chunk_ms, capsys):
    ckpt, wav, _, speech = files
    assert main(["transcribe", "--stream", "--chunk-ms", str(chunk_ms), "--model", str(ckpt), str(wav)]) == 0
    assert capsys.readouterr().out.split() == WORDS
    assert seen["fed"] == _pieces(len(speech), chunk_ms)
    assert seen["step_frames"] == {chunk_ms // 10}


@pytest.mark.parametrize("chunk_ms", [160, 320])
def test_eval_stream_feeds_chunk_ms_pieces_one_encoder_step_each(files, seen, chunk_ms, tmp_path):
    ckpt, _, manifest, speech = files
    out = tmp_path / "eval"
    argv = ["eval", "--model", str(ckpt), "--data", str(manifest), "--mode", "stream", "--chunk-ms", str(chunk_ms)]
    assert main([*argv, "--no-lm", "--no-progress", "--out", str(out)]) == 0
    assert seen["fed"] == _pieces(len(speech), chunk_ms)  # as transcribe --stream feeds the file
    assert seen["step_frames"] == {chunk_ms // 10}  # (it stepped 160 ms whatever --chunk-ms said)
    hyp = json.loads((out / "utterances.jsonl").read_text().splitlines()[0])["hyp"]
    assert hyp == "".join(WORDS)  # no endpoints here, and the band model has no space token


def test_eval_chunks_of_part_of_a_model_step_are_fed_as_given_and_stepped_in_whole_steps_above():
    def cover(ms, shift=10.0, sub=4):
        return chunk_frames_covering(ms, frame_shift_ms=shift, subsampling=sub)

    assert cover(160) == 16 and cover(320.0) == 32
    assert cover(70) == 8 and cover(330) == 36 and cover(1) == 4
    assert cover(70, 20.0) == 4 and cover(160, 20.0) == 8 and cover(90, 10.0, 8) == 16  # the geometry is the model's
    with pytest.raises(ValueError, match="> 0"):
        cover(0)


@pytest.mark.parametrize("chunk_ms", [160, 320])
def test_live_steps_the_encoder_chunk_ms_at_a_time_from_its_capture_blocks(files, seen, chunk_ms, monkeypatch, capsys):
    ckpt, _, _, speech = files

    class Microphone:  # delivers the speech in 20 ms blocks at once, then is gone (run_live then finalises)
        def __init__(self, device=None, *, block_ms: float = 20.0) -> None:
            self.device_name, self.sample_rate, self.blocks = "test", SAMPLE_RATE, queue.Queue()
            self.block = chunk_samples(SAMPLE_RATE, block_ms)

        def start(self) -> None:
            for i in range(0, len(speech), self.block):
                self.blocks.put(AudioBlock(np.asarray(speech[i : i + self.block]), overflow=False))

        def alive(self) -> bool:
            return False

        def stop(self) -> None:
            pass

    monkeypatch.setattr(asr.live, "MicrophoneSource", Microphone)
    assert main(["live", "--model", str(ckpt), "--chunk-ms", str(chunk_ms), "--device", "cpu"]) == 1  # source gone
    assert capsys.readouterr().out.split() == WORDS  # what transcribe --stream gives for the same audio
    assert seen["fed"] == _pieces(len(speech), 20)  # the capture blocks as they came
    assert seen["step_frames"] == {chunk_ms // 10}


def test_feed_chunks_yields_once_per_chunk_after_its_decode(files):
    _, _, _, speech = files
    recognizer = Recognizer(make_band_model(), device="cpu")
    stream = recognizer.create_stream()
    updates = list(feed_chunks(recognizer, stream, speech, SAMPLE_RATE, chunk_ms=160))
    assert len(updates) == len(_pieces(len(speech), 160)) and any(updates)
    assert not stream.finished and stream.samples_received == len(speech)
    recognizer.close_stream(stream)
