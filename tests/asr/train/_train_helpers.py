"""Helpers shared by the training tests (imported by name: this folder is on sys.path under pytest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TINY_RECIPE = REPO / "recipes" / "synth" / "tiny.yaml"


def train_argv(corpus: dict[str, Path], run_dir: Path, *overrides: str, resume: bool = False) -> list[str]:
    """``asr train`` arguments for the tiny recipe on ``corpus`` (after the program name)."""
    argv = [
        "train",
        str(TINY_RECIPE),
        f"data.train={corpus['train']}",
        f"data.dev={corpus['dev']}",
        *overrides,
        "--run-dir",
        str(run_dir),
    ]
    return [*argv, "--resume"] if resume else argv


def subprocess_env() -> dict[str, str]:
    """Environment for child ``asr`` processes: single-threaded, importing this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def asr_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "asr.cli", *args]


def kill_when(argv: list[str], ready: Callable[[], bool], *, what: str, timeout: float = 240.0) -> None:
    """Start ``asr ARGV`` and SIGKILL it as soon as ``ready()`` holds (polled every 10 ms); fails the test if the
    process exits first or ``what`` does not happen within ``timeout`` seconds."""
    proc = subprocess.Popen(
        asr_command(*argv), env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"training exited ({proc.returncode}) before {what}:\n{proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout} s")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"training was not killed (rc {proc.returncode}):\n{err}"
