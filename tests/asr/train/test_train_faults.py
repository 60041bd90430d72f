"""Fault injection for training (issue 15): SIGKILL at random steps, a corrupt latest checkpoint (either file, or a
pickle in place of the optimiser state), a disk that fills up while a checkpoint is written. Each run either
resumes to exactly the uninterrupted run's weights and logs (metrics.csv: every step once; dev.csv: the whole
epoch's train_loss) or refuses with a clear error; nothing is ever unpickled."""

from __future__ import annotations

import csv
import logging
import pickle
import random
import resource
import shutil
from pathlib import Path

import pytest
import torch
from _train_helpers import kill_when, train_argv
from safetensors.torch import load_file

import asr.train.checkpoints as ckpts
from asr.cli import main as cli_main
from tests.asr._bad_inputs import FAULT_CASES

pytestmark = pytest.mark.slow

EVERY_STEP = "checkpoint_every_steps=1"
_METRIC_COLUMNS = ("step", "epoch", "loss", "loss_per_token", "lr", "grad_norm")


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_run(run: Path, reference: Path) -> None:
    """Bit-identical final weights, every step logged once with the reference's numbers, the same dev.csv."""
    ref, got = load_file(reference / "final.safetensors"), load_file(run / "final.safetensors")
    assert sorted(ref) == sorted(got)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=0, atol=0, msg=f"{key} differs")
    metrics = [tuple(r[c] for c in _METRIC_COLUMNS) for r in _rows(run / "metrics.csv")]
    assert metrics == [tuple(r[c] for c in _METRIC_COLUMNS) for r in _rows(reference / "metrics.csv")]
    dev = [(r["epoch"], r["step"], r["dev_wer"], r["train_loss"]) for r in _rows(run / "dev.csv")]
    assert dev == [(r["epoch"], r["step"], r["dev_wer"], r["train_loss"]) for r in _rows(reference / "dev.csv")]


def _step_of(latest: Path) -> int:
    try:
        name = latest.read_text().strip()
    except FileNotFoundError:
        return 0
    return int(name[5:]) if name.startswith("step-") else 0


def _kill_at_step(argv: list[str], run: Path, step: int) -> int:
    """Start ``asr train`` and SIGKILL it once its latest checkpoint is a step checkpoint at ``step`` or later."""
    latest = run / "checkpoints" / "latest"
    kill_when(argv, lambda: _step_of(latest) >= step, what=f"a checkpoint at step {step}")
    return _step_of(latest)


def test_sigkill_at_random_steps_resumes_exactly(tiny_run, tiny_corpus, tmp_path):
    """Two kills at steps drawn at random (seeded), each followed by --resume: the run ends as if never stopped,
    and metrics.csv holds each step once (before: the steps after the last checkpoint twice) and dev.csv the
    whole epoch's train_loss (before: only the batches after the resume)."""
    total = int(_rows(tiny_run / "dev.csv")[-1]["step"])
    first, second = sorted(random.Random(15).sample(range(1, total), 2))
    run = tmp_path / "run"
    killed = [_kill_at_step(train_argv(tiny_corpus, run, EVERY_STEP), run, first)]
    killed.append(_kill_at_step(train_argv(tiny_corpus, run, EVERY_STEP, resume=True), run, second))
    assert not (run / "final.safetensors").exists(), f"the run finished before the kills {killed}"
    assert cli_main(train_argv(tiny_corpus, run, EVERY_STEP, resume=True)) == 0
    _assert_same_run(run, tiny_run)


class _Crash(Exception):
    """Stands in for a kill right after a checkpoint is complete (in-process, so cheaper than SIGKILL)."""


def _crash_after(monkeypatch, name: str) -> None:
    original = ckpts.save_training_checkpoint

    def save_then_crash(ckpt_dir, saved, *args, **kwargs):
        path = original(ckpt_dir, saved, *args, **kwargs)
        if saved == name:
            raise _Crash(name)
        return path

    monkeypatch.setattr(ckpts, "save_training_checkpoint", save_then_crash)


@pytest.fixture(scope="module")
def crashed_run(tiny_corpus, tmp_path_factory) -> Path:
    """A run stopped right after its step-3 checkpoint (step-2, epoch-001 and step-3 on disk)."""
    run = tmp_path_factory.mktemp("crashed") / "run"
    with pytest.MonkeyPatch.context() as mp:
        _crash_after(mp, "step-0000003")
        with pytest.raises(_Crash):
            cli_main(train_argv(tiny_corpus, run, EVERY_STEP))
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000003"
    return run


class _Unpickled:
    """Would print if it were ever unpickled."""

    def __reduce__(self):
        return (print, ("UNPICKLED",))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {
    "optim-truncated": lambda c: _truncate(c / "step-0000003.optim.pt"),
    "optim-pickle": lambda c: (c / "step-0000003.optim.pt").write_bytes(pickle.dumps({"optimizer": _Unpickled()})),
    "optim-not-a-state": lambda c: torch.save({"something": torch.zeros(2)}, c / "step-0000003.optim.pt"),
    "model-truncated": lambda c: _truncate(c / "step-0000003.safetensors"),
    "latest-files-gone": lambda c: (c / "step-0000003.safetensors").unlink(),
    "latest-garbage": lambda c: (c / "latest").write_text("\x00\x01 nonsense\n"),
}


def test_the_documented_corruptions_are_the_injected_ones():
    """docs/reliability.md's rows for this test name exactly the corruptions injected here."""
    documented = {c.name for c in FAULT_CASES if c.proof.endswith("test_a_corrupt_latest_checkpoint_falls_back_to_the_"
                                                                   "previous_one")}  # fmt: skip
    assert documented == set(CORRUPTIONS)


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
    corruption, crashed_run, tiny_run, tiny_corpus, tmp_path, caplog, capsys
):
    run = tmp_path / "run"
    shutil.copytree(crashed_run, run)
    CORRUPTIONS[corruption](run / "checkpoints")
    with caplog.at_level(logging.INFO, logger="asr.train"):
        assert cli_main(train_argv(tiny_corpus, run, EVERY_STEP, resume=True)) == 0
    assert "UNPICKLED" not in capsys.readouterr().out
    if corruption == "latest-garbage":  # the pointer alone is bad: the newest complete pair is used
        assert "resumed from step-0000003" in caplog.text
    else:
        problem = "names 'step-0000003' but its files are missing" if corruption == "latest-files-gone" else (
            "checkpoint step-0000003 cannot be resumed from")
        assert problem in caplog.text
        assert "resumed from epoch-001" in caplog.text  # the newest good one (step 2, epoch 1 done)
        set_aside = sorted(p.name for p in (run / "checkpoints").glob("*.bad"))  # kept, never tried again
        assert set_aside == [] if corruption == "latest-files-gone" else [
            "step-0000003.optim.pt.bad", "step-0000003.safetensors.bad"]
    _assert_same_run(run, tiny_run)


def test_no_usable_checkpoint_is_a_clear_error(crashed_run, tiny_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(crashed_run, run)
    for path in (run / "checkpoints").glob("*.optim.pt"):
        _truncate(path)
    assert cli_main(train_argv(tiny_corpus, run, EVERY_STEP, resume=True)) == 1
    err = capsys.readouterr().err
    assert "no usable checkpoint" in err and "step-0000003" in err and "epoch-001" in err
    assert "Traceback" not in err


def test_a_disk_full_while_writing_a_checkpoint_refuses_clearly_then_resumes_exactly(
    tiny_run, tiny_corpus, tmp_path, monkeypatch, capsys
):
    """After step 2 every file is limited to 16 KiB (RLIMIT_FSIZE: writes past it fail with EFBIG, as on a full
    disk): the next checkpoint cannot be written. The run stops with an error naming it, leaves no partial file
    and keeps 'latest' on the last complete checkpoint; once there is room, --resume ends as if never stopped."""
    run = tmp_path / "run"
    original = ckpts.save_training_checkpoint
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def save_then_fill_the_disk(ckpt_dir, name, *args, **kwargs):
        path = original(ckpt_dir, name, *args, **kwargs)
        if name == "step-0000002":
            resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, hard))
        return path

    monkeypatch.setattr(ckpts, "save_training_checkpoint", save_then_fill_the_disk)
    try:
        code = cli_main(train_argv(tiny_corpus, run, EVERY_STEP))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 1, err
    assert "cannot write checkpoint epoch-001" in err and "File too large" in err and "--resume" in err, err
    ckpt = run / "checkpoints"
    assert (ckpt / "latest").read_text().strip() == "step-0000002"
    assert not [p.name for p in ckpt.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert cli_main(train_argv(tiny_corpus, run, EVERY_STEP, resume=True)) == 0
    _assert_same_run(run, tiny_run)
