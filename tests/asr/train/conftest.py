"""Session fixtures for the training tests: a tiny real-audio corpus and one tiny run.

The run is trained in-process through the CLI (``asr.cli.main``) so the test session pays the torch start-up
once; the resume and DDP tests start their own processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _tiny_corpus import write_corpus
from _train_helpers import train_argv

from asr.cli import main as cli_main


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> dict[str, Path]:
    """train/ (24 utterances, 2 speakers) and dev/ (6), LibriSpeech layout, FLAC files of per-letter tones."""
    return write_corpus(tmp_path_factory.mktemp("tiny_corpus"), train=24, dev=6, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory) -> Path:
    """A finished run of recipes/synth/tiny.yaml (3 epochs, 2 steps each), trained once per session."""
    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    assert cli_main(train_argv(tiny_corpus, run_dir)) == 0
    return run_dir
