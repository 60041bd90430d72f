"""Smoke tests for tools/bench_train_throughput.py and tools/bench_augment_cost.py (tiny runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.asr.train._tiny_corpus import write_corpus
from tests.tools import load_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_precision_and_worker_variants_side_by_side(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", train=16, dev=2, seed=3)
    bench = load_tool("bench_train_throughput")
    out = tmp_path / "bench"
    argv = ["--data", str(corpus["train"]), "--recipe", str(REPO / "recipes/synth/tiny.yaml"), "--steps", "4",
            "--warmup-steps", "1", "--out", str(out), "--set", "data.max_batch_frames=600"]  # fmt: skip
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "precision: bf16" in printed and "workers: 1 worker" in printed and "CPU bf16:" in printed
    data = json.loads((out / "bench_train_throughput.json").read_text())
    runs = data["variants"]
    assert set(runs) == {"precision: fp32", "precision: bf16", "workers: in-process", "workers: 1 worker"}
    assert all(len(r["losses"]) == 4 and r["audio_s_per_wall_s"] > 0 and r["audio_s_per_cpu_s"] > 0
               for r in runs.values())  # fmt: skip
    assert runs["workers: in-process"]["losses"] == runs["workers: 1 worker"]["losses"]  # the same batches
    assert runs["workers: in-process"]["loader_cpu_s"] == 0 < runs["workers: 1 worker"]["loader_cpu_s"]
    assert runs["precision: bf16"]["precision"] == "bf16" and runs["precision: fp32"]["precision"] == "fp32"
    fp32, bf16 = runs["precision: fp32"]["losses"], runs["precision: bf16"]["losses"]
    assert fp32 != bf16 and fp32 == pytest.approx(bf16, rel=0.05)  # another arithmetic, the same curve
    assert (out / "bench_train_throughput.png").stat().st_size > 1000


def test_augment_cost_names_every_stage(tmp_path, capsys):
    bench = load_tool("bench_augment_cost")
    assert bench.main(["--seconds", "1", "--repeats", "1", "--rirs", "1", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "bench_augment_cost.json").read_text())
    expected = {"room", "noise", "babble", "eq", "gain", "telephone", "vtlp (features)", "specaugment"}
    assert expected | {f"codec:{c}" for c in ("mulaw", "gsm", "opus", "codec2", "mp3")} <= set(data["ms"])
    assert all(ms > 0 for ms in data["ms"].values()) and data["rir_ms"] > 0
    assert "codec:opus" in capsys.readouterr().out
