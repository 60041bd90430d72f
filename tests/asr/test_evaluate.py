"""asr.evaluate (issue 15): streaming evaluation resamples in the stream as every other streaming path does (the
same file gives the same text as ``asr transcribe --stream``), the audio seconds and real-time factor count the
audio decoded, and a long utterance is decoded alone in bounded memory with the same result."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import soxr

import asr.audio
import asr.evaluate
from asr.cli import main
from asr.data.manifest import read_manifest
from asr.evaluate import evaluate_batch
from asr.pipeline import save_asr_model
from tests.asr.live.conftest import SAMPLE_RATE, burst_speech, make_band_model

WORDS = ["CAB", "DAD", "ACDC"]


@pytest.fixture(scope="module")
def band(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    bundle = make_band_model()
    ckpt = save_asr_model(root / "band.safetensors", bundle)
    speech = burst_speech(WORDS, seed=5)
    wav = root / "words22k.wav"
    sf.write(wav, soxr.resample(speech, SAMPLE_RATE, 22050), 22050, subtype="FLOAT")
    seconds = sf.info(wav).frames / 22050
    manifest = root / "m.jsonl"
    rows = [
        {"id": "a", "audio": str(wav), "duration": 100.0, "text": " ".join(WORDS), "speaker": "s"},  # wrong duration
        {"id": "b", "audio": str(root / "gone.wav"), "duration": 50.0, "text": "CAB", "speaker": "s"},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return bundle, ckpt, wav, manifest, seconds


def test_stream_mode_resamples_in_the_stream_like_transcribe_stream(band, monkeypatch, capsys):
    bundle, ckpt, wav, manifest, _ = band
    offline = []
    original = asr.audio.resample

    def spy(samples, *, orig_sr, target_sr):
        if orig_sr != target_sr:
            offline.append((orig_sr, target_sr))
        return original(samples, orig_sr=orig_sr, target_sr=target_sr)

    monkeypatch.setattr(asr.audio, "resample", spy)
    result = evaluate_batch(bundle, read_manifest(manifest)[:1], mode="stream", chunk_ms=160, progress=False)
    assert offline == []  # no second resampler: the stream's (soxr) did it, as for a microphone
    hyp = result.per_utterance[0].hyp
    assert hyp == "".join(WORDS)  # (no endpoints here, and the band model has no space token)
    assert main(["transcribe", "--stream", "--model", str(ckpt), str(wav)]) == 0
    assert capsys.readouterr().out.split() == WORDS  # one final per endpoint


@pytest.mark.parametrize("mode", ["full", "stream"])
def test_audio_seconds_count_the_audio_decoded(band, mode):
    bundle, _, _, manifest, seconds = band
    result = evaluate_batch(bundle, read_manifest(manifest), mode=mode, progress=False)
    assert list(result.failed) == ["b"]
    assert result.audio_seconds == pytest.approx(seconds, abs=0.01)  # not 150 s from the manifest
    assert result.rtf == pytest.approx(result.compute_seconds / seconds, rel=1e-3)


def test_a_long_utterance_is_decoded_alone_with_the_same_result(band, monkeypatch):
    bundle, _, _, manifest, seconds = band
    utts = read_manifest(manifest)[:1]
    whole = evaluate_batch(bundle, utts, progress=False)
    called = []
    original = bundle.utterance_log_probs

    def stepped(samples):
        called.append(samples.shape[0])
        return original(samples, long_seconds=1.0)  # in 1 s pieces

    monkeypatch.setattr(asr.evaluate, "LONG_SECONDS", seconds / 2)
    monkeypatch.setattr(bundle, "utterance_log_probs", stepped)
    pieces = evaluate_batch(bundle, utts, progress=False)
    assert called and pieces.per_utterance[0].hyp == whole.per_utterance[0].hyp == "".join(WORDS)
    assert pieces.audio_seconds == pytest.approx(seconds, abs=0.01)
