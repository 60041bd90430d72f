"""Helpers shared by the training tests (imported by name: this folder is on sys.path under pytest)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
