"""The bundled model and audio (asr/assets/): loaded by default, within the size limit, streaming == full, and the
WER `asr eval` prints for the bundled test set is what jiwer computes from its per-utterance output."""

from __future__ import annotations

import json

import jiwer
import pytest
import torch

from asr import pipeline
from asr.cli import main
from asr.data.manifest import read_manifest
from asr.streaming import EndpointConfig, Recognizer
from asr.streaming.feed import stream_samples

AUDIO = pipeline.BUNDLED_MODEL_DIR.parent / "audio"


@pytest.fixture(scope="module")
def bundle():
    return pipeline.load_asr_model(pipeline.resolve_model_path(None))  # no --model: the bundled one


def test_the_bundled_model_is_found_without_a_model_argument_and_fits_the_limit():
    path = pipeline.resolve_model_path(None)
    assert path == pipeline.BUNDLED_MODEL_DIR / "model.safetensors"
    assert path.stat().st_size <= 25 * 1024 * 1024
    card = (pipeline.BUNDLED_MODEL_DIR / "README.md").read_text()
    assert "tools/make_bundle.py" in card and "licen" in card.lower()


def test_bundled_manifests_name_existing_audio_with_licences():
    assert (AUDIO / "LICENSES.md").is_file()
    for name in ("synth_test.jsonl", "real.jsonl"):
        utts = read_manifest(AUDIO / name)
        assert utts
        for u in utts:
            samples = u.load_audio()
            assert samples.shape[0] == pytest.approx(u.duration * 16000, abs=9)  # durations kept to 1 ms


def test_streaming_the_bundled_model_equals_its_full_utterance_output(bundle):
    utts = read_manifest(AUDIO / "synth_test.jsonl")[:3] + read_manifest(AUDIO / "real.jsonl")[:2]
    # No endpointing: one segment per file, so its text compares with the one full-utterance pass.
    recognizer = Recognizer(bundle, device="cpu", endpoint=EndpointConfig(enabled=False))
    for u in utts:
        samples = u.load_audio()
        full_text, _ = bundle.transcribe(samples)
        result = stream_samples(recognizer, samples.numpy(), 16000, chunk_ms=160)
        assert result.text == full_text, u.id
    assert any(bundle.transcribe(u.load_audio())[0] for u in utts)  # not a model that outputs nothing


def test_asr_eval_on_the_bundled_test_set_reports_what_jiwer_computes(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--data", str(AUDIO / "synth_test.jsonl"), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    assert len(rows) == summary["utterances"] == len(read_manifest(AUDIO / "synth_test.jsonl"))
    expected = jiwer.wer([r["ref"] for r in rows], [r["hyp"] for r in rows])
    assert summary["wer"] == pytest.approx(expected)
    assert summary["model"].endswith("model.safetensors")
    assert torch.isfinite(torch.tensor(summary["real_time_factor"]))
    assert "WER" in capsys.readouterr().out
