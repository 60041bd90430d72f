"""Bad data mid-run is logged and skipped with a count, never a crash that loses the epoch."""

from __future__ import annotations

import logging

import pytest
from _train_helpers import train_argv

from asr.cli import main as cli_main
from asr.data.manifest import Utterance, write_manifest
from asr.data.sources import load_utterances

pytestmark = pytest.mark.slow


def test_unreadable_audio_and_overlong_utterances_are_skipped_and_counted(tiny_corpus, tmp_path, caplog):
    utts = load_utterances(tiny_corpus["train"])
    garbage = tmp_path / "broken.flac"
    garbage.write_bytes(b"fLaC but not really a FLAC file" * 20)
    broken = Utterance(id="999-1-0000", audio=str(garbage), duration=0.9, text="ONE TWO", speaker="999")
    too_long = max(utts, key=lambda u: u.duration)
    manifest = write_manifest(tmp_path / "train.jsonl", [*utts, broken])

    limit = round(too_long.duration - 0.01, 3)  # just below the longest real utterance
    corpus = {"train": manifest, "dev": tiny_corpus["dev"]}
    argv = train_argv(corpus, tmp_path / "run", f"data.max_utterance_seconds={limit}", "epochs=1")
    with caplog.at_level(logging.INFO):
        assert cli_main(argv) == 0
    assert (tmp_path / "run" / "final.safetensors").is_file()
    text = caplog.text
    assert "999-1-0000" in text and "failed" in text  # the unreadable file, named
    assert f"longer than max_utterance_seconds={limit}" in text  # the skip reason, with its count below
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage() and "train" in r.getMessage()]
    assert any("longer than max_utterance_seconds" in m for m in skipped), skipped
    assert "failed audio: 1" in text  # the run's closing line counts it
