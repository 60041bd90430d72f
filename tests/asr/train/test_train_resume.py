"""Resume after a kill: SIGKILL a training process once it has a step checkpoint, ``--resume``, and get exactly
the weights of the uninterrupted run (same seed): the point of the per-step seeding in the trainer."""

from __future__ import annotations

import csv
import logging
import signal
import subprocess
import time

import pytest
import torch
from _train_helpers import asr_command, subprocess_env, train_argv
from safetensors.torch import load_file

from asr.cli import main as cli_main

pytestmark = pytest.mark.slow


def _losses(run_dir) -> dict[int, str]:
    """step -> logged loss; a step logged twice (before the kill and after the resume) keeps its last row."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return {int(r["step"]): r["loss"] for r in csv.DictReader(f)}


def _kill_after_first_checkpoint(argv: list[str], latest, *, timeout: float = 240.0) -> str:
    proc = subprocess.Popen(
        asr_command(*argv), env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    try:
        while not latest.is_file():
            if proc.poll() is not None:
                pytest.fail(f"training exited ({proc.returncode}) before any checkpoint:\n{proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint after {timeout} s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"training was not killed (rc {proc.returncode}):\n{err}"
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

    with caplog.at_level(logging.INFO, logger="asr.train.trainer"):
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
