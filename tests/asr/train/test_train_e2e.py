"""Tiny end to end: ``asr train`` -> run folder -> ``asr eval`` (full, stream), ``transcribe``, ``plot``."""

from __future__ import annotations

import csv
import json
import math

import jiwer
import pytest
import torch
import yaml
from _train_helpers import TINY_RECIPE
from safetensors.torch import load_file

from asr.cli import main as cli_main
from asr.pipeline import load_asr_model, save_asr_model

pytestmark = pytest.mark.slow


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_run_folder_holds_config_logs_checkpoints_and_final_model(tiny_run, tiny_corpus):
    recipe = yaml.safe_load(TINY_RECIPE.read_text())
    saved = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert saved["data"]["train"] == str(tiny_corpus["train"])  # the override, resolved
    assert saved["model"]["d_model"] == recipe["model"]["d_model"]  # from the recipe
    assert saved["optim"]["betas"] == [0.9, 0.98]  # from the dataclass defaults (through base.yaml)
    assert (tiny_run / "tokenizer.json").is_file() and (tiny_run / "cmvn.safetensors").is_file()

    epochs = saved["epochs"]
    dev = _rows(tiny_run / "dev.csv")
    assert [int(r["epoch"]) for r in dev] == list(range(1, epochs + 1))
    assert all(0.0 <= float(r["dev_wer"]) and math.isfinite(float(r["train_loss"])) for r in dev)
    total_steps = int(dev[-1]["step"])
    metrics = _rows(tiny_run / "metrics.csv")
    assert [int(r["step"]) for r in metrics] == list(range(1, total_steps + 1))  # log_every_steps: 1
    assert all(math.isfinite(float(r["loss"])) for r in metrics)

    ckpt = tiny_run / "checkpoints"
    names = sorted(p.name for p in ckpt.glob("*.safetensors"))
    step_names = [n for n in names if n.startswith("step-")]
    assert [n for n in names if n.startswith("epoch-")] == [f"epoch-{e:03d}.safetensors" for e in range(1, epochs + 1)]
    assert len(step_names) == saved["keep_checkpoints"]  # older step checkpoints pruned
    assert all((ckpt / n.replace(".safetensors", ".optim.pt")).is_file() for n in names)
    assert (ckpt / "latest").read_text().strip() == f"epoch-{epochs:03d}"

    # final = the mean of the last `average_last` epoch checkpoints, and a loadable recognizer bundle.
    final = load_asr_model(tiny_run / "final.safetensors")
    averaged = [f"epoch-{e:03d}.safetensors" for e in range(epochs - saved["average_last"] + 1, epochs + 1)]
    assert final.extra["averaged"] == averaged
    parts = [load_file(ckpt / n) for n in averaged]
    final_tensors = load_file(tiny_run / "final.safetensors")
    for key, value in final_tensors.items():
        if key.startswith("model/") and value.is_floating_point():
            expected = sum(p[key].double() for p in parts) / len(parts)
            torch.testing.assert_close(value.double(), expected, rtol=0, atol=1e-6)
    assert final.model.config.vocab_size == final.tokenizer.vocab_size


@pytest.fixture(scope="module")
def peaky_model(tiny_run, tmp_path_factory):
    """The tiny run's model with the blank logit pushed down, so that it emits letters (a 6-step model mostly
    outputs blank, and two empty transcripts would agree trivially)."""
    bundle = load_asr_model(tiny_run / "final.safetensors")
    with torch.no_grad():
        bundle.model.head.bias[bundle.tokenizer.blank_id] -= 6.0
    path = tmp_path_factory.mktemp("peaky") / "peaky.safetensors"
    save_asr_model(path, bundle)
    return path


def _eval(model, data, out, *extra):
    assert (
        cli_main(["eval", "--model", str(model), "--data", str(data), "--out", str(out), "--no-progress", *extra]) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    utts = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    return summary, utts


def test_eval_full_and_stream_give_the_same_hypotheses_and_jiwer_scores(peaky_model, tiny_corpus, tmp_path, capsys):
    full, full_utts = _eval(peaky_model, tiny_corpus["dev"], tmp_path / "full")
    table = capsys.readouterr().out
    assert "Corr" in table and "Sub" in table and "WER" in table and "CER" in table
    hyps = [u["hyp"] for u in full_utts]
    assert sum(bool(h) for h in hyps) >= len(hyps) // 2, hyps  # a real comparison, not empty == empty
    for chunk_ms in (70, 330):  # not whole 40 ms model frames (70 ms: not even whole 10 ms feature frames)
        out = tmp_path / f"stream-{chunk_ms}"
        stream, stream_utts = _eval(
            peaky_model, tiny_corpus["dev"], out, "--mode", "stream", "--chunk-ms", f"{chunk_ms}"
        )
        assert [u["id"] for u in stream_utts] == [u["id"] for u in full_utts]
        assert [u["hyp"] for u in stream_utts] == hyps  # causal model: streaming == full utterance
        assert stream["wer"] == full["wer"] and stream["mode"] == "stream" and stream["chunk_ms"] == chunk_ms

    refs = [u["ref"] for u in full_utts]
    assert full["wer"] == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert full["cer"] == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    counts = full["counts"]
    assert counts["ref_len"] == sum(len(r.split()) for r in refs) and full["utterances"] == len(refs) == 6
    assert full["real_time_factor"] > 0 and full["failed"] == {}
    assert (tmp_path / "full" / "report.txt").read_text().startswith(table.splitlines()[0])


def test_transcribe_gives_the_eval_hypothesis(peaky_model, tiny_corpus, tmp_path, capsys):
    _, utts = _eval(peaky_model, tiny_corpus["dev"], tmp_path / "full")
    files = sorted(tiny_corpus["dev"].rglob("*.flac"))[:2]
    capsys.readouterr()
    assert cli_main(["transcribe", "--model", str(peaky_model), "--json", *map(str, files)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_id = {u["id"]: u["hyp"] for u in utts}
    assert [r["file"] for r in rows] == [str(f) for f in files]
    for row, f in zip(rows, files):
        assert " ".join(row["text"].split()) == by_id[f.stem]
        assert len(row["tokens"]) == len(row["times"]) == len(row["confidences"])
        assert row["times"] == sorted(row["times"]) and all(t <= row["duration"] for t in row["times"])


def test_plot_draws_a_png_of_the_run(tiny_run, tmp_path):
    out = tmp_path / "curves.png"
    assert cli_main(["plot", str(tiny_run), str(tiny_run), "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
