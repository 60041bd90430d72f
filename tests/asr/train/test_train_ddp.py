"""Two-process DDP on CPU (gloo): ``torchrun --standalone --nproc_per_node=2 -m asr.cli train ...`` completes, the
ranks train on disjoint batches that together cover the training set, and the final model loads."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections import defaultdict

import pytest
from _train_helpers import subprocess_env, train_argv

from asr.pipeline import load_asr_model

pytestmark = pytest.mark.slow

_BATCH = re.compile(r"rank (\d+) epoch (\d+) batch (\d+) ids (\S+)")


def test_two_gloo_processes_train_disjoint_batches(tiny_corpus, tmp_path):
    run_dir = tmp_path / "ddp"
    # -v: every rank logs the ids of each batch it trains on (a DEBUG line of the trainer).
    argv = ["-v", *train_argv(tiny_corpus, run_dir, "epochs=2", "data.max_batch_size=6")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "asr.cli"]
    proc = subprocess.run([*cmd, *argv], env=subprocess_env(), capture_output=True, text=True, timeout=400)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "world size 2" in log

    seen: dict[tuple[int, int], list[str]] = defaultdict(list)  # (epoch, rank) -> utterance ids
    batches: dict[tuple[int, int], int] = defaultdict(int)
    for rank, epoch, _, ids in _BATCH.findall(log):
        seen[int(epoch), int(rank)].extend(ids.split(","))
        batches[int(epoch), int(rank)] += 1
    train_ids = {p.stem for p in tiny_corpus["train"].rglob("*.flac")}
    for epoch in (0, 1):
        rank0, rank1 = seen[epoch, 0], seen[epoch, 1]
        assert rank0 and rank1, f"epoch {epoch}: a rank trained on nothing"
        assert batches[epoch, 0] == batches[epoch, 1]  # same step count on both ranks (DDP needs it)
        assert not set(rank0) & set(rank1), f"epoch {epoch}: both ranks trained on {set(rank0) & set(rank1)}"
        assert sorted(rank0 + rank1) == sorted(train_ids)  # every utterance once per epoch

    bundle = load_asr_model(run_dir / "final.safetensors")
    assert bundle.extra["averaged"] == ["epoch-001.safetensors", "epoch-002.safetensors"]
    with (run_dir / "dev.csv").open(newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]  # rank 0 alone writes the logs
    with (run_dir / "metrics.csv").open(newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, batches[0, 0] + batches[1, 0] + 1))
