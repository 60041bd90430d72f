"""Resume after a kill: SIGKILL a training process once it has a step checkpoint, ``--resume``, and get exactly
the weights of the uninterrupted run (same seed): the point of the per-step seeding in the trainer."""

from __future__ import annotations

import csv
import logging

import pytest
import torch
from _train_helpers import kill_when, train_argv
from safetensors.torch import load_file

from asr.cli import main as cli_main

pytestmark = pytest.mark.slow


def _losses(run_dir) -> dict[int, str]:
    """step -> logged loss; a step logged twice (before the kill and after the resume) keeps its last row."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return {int(r["step"]): r["loss"] for r in csv.DictReader(f)}


def _kill_after_first_checkpoint(argv: list[str], latest) -> str:
    kill_when(argv, latest.is_file, what="any checkpoint")
    return latest.read_text().strip()


def test_killed_run_resumes_to_the_uninterrupted_weights(tiny_run, tiny_corpus, tmp_path, capsys, caplog):
    run_dir = tmp_path / "run"
    # Checkpoint after every step so that the kill lands mid-epoch, a few steps before the end.
    argv = train_argv(tiny_corpus, run_dir, "checkpoint_every_steps=1")
    killed_at = _kill_after_first_checkpoint(argv, run_dir / "checkpoints" / "latest")
    assert not (run_dir / "final.safetensors").exists(), f"the run finished before the kill (at {killed_at})"

    # Without --resume the run folder is refused; with another config the resume is refused.
    assert cli_main(argv) == 1
    assert "pass --resume" in capsys.readouterr().err
    assert cli_main(train_argv(tiny_corpus, run_dir, "checkpoint_every_steps=1", "optim.lr=0.1", resume=True)) == 1
    assert "optim.lr" in capsys.readouterr().err

    with caplog.at_level(logging.INFO, logger="asr.train"):
        assert cli_main(train_argv(tiny_corpus, run_dir, "checkpoint_every_steps=1", resume=True)) == 0
    assert f"resumed from {killed_at}" in caplog.text  # continued, not restarted

    reference = load_file(tiny_run / "final.safetensors")
    resumed = load_file(run_dir / "final.safetensors")
    assert sorted(resumed) == sorted(reference)
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=0, msg=f"{key} differs")
    for name in ("epoch-001", "epoch-003"):
        a = load_file(tiny_run / "checkpoints" / f"{name}.safetensors")
        b = load_file(run_dir / "checkpoints" / f"{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after the resume"
    assert _losses(run_dir) == _losses(tiny_run)  # the same loss at every step, replayed steps included


def _final_weights_equal(a, b) -> None:
    ref, got = load_file(a / "final.safetensors"), load_file(b / "final.safetensors")
    assert sorted(ref) == sorted(got)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=0, atol=0, msg=f"{key} differs")


def test_batches_built_in_process_train_the_same_weights_as_a_loader_worker(tiny_run, tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    assert cli_main(train_argv(tiny_corpus, run_dir, "data.num_workers=0")) == 0  # tiny_run: 1 worker (default)
    _final_weights_equal(tiny_run, run_dir)
    assert _losses(run_dir) == _losses(tiny_run)


def test_killed_mixed_and_augmented_run_resumes_to_the_uninterrupted_weights(tiny_corpus, tmp_path, caplog):
    # Real speech mixed in (here: the dev set stands in for it) and waveform augmentation drawing babble.
    options = (
        f"data.extra_train=[{{manifest: {tiny_corpus['dev']}, share: 0.3}}]",
        "augment.noise.prob=0.5",
        "augment.babble.prob=0.5",
        "augment.eq.prob=0.5",
        "checkpoint_every_steps=1",
    )
    reference = tmp_path / "reference"
    with caplog.at_level(logging.INFO, logger="asr.train"):
        assert cli_main(train_argv(tiny_corpus, reference, *options)) == 0
    assert "30% of every epoch's audio" in caplog.text and "'noise': 0.5" in caplog.text
    run_dir = tmp_path / "run"
    argv = train_argv(tiny_corpus, run_dir, *options)
    killed_at = _kill_after_first_checkpoint(argv, run_dir / "checkpoints" / "latest")
    assert not (run_dir / "final.safetensors").exists(), f"the run finished before the kill (at {killed_at})"
    assert cli_main(train_argv(tiny_corpus, run_dir, *options, resume=True)) == 0
    _final_weights_equal(reference, run_dir)
    assert _losses(run_dir) == _losses(reference)
