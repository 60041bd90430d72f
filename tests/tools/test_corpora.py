"""tools/_corpora.py: the Kokoro corpora step synthesises until complete, scores, and copies the filtered manifest
only when it changed; a run that ends with utterances missing stops the campaign instead of training on half."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tools import load_tool


class FakeShell:
    """Stands in for the commands: asr synth writes the summary (``missing`` utterances short), score_voices
    writes its filtered manifest."""

    def __init__(self, root: Path, missing: int = 0) -> None:
        self.root, self.missing, self.calls = root, missing, []

    def __call__(self, cmd: list[str]) -> None:
        self.calls.append(cmd)
        if "synth" in cmd:
            out = self.root / cmd[cmd.index("--out") + 1]
            out.mkdir(parents=True, exist_ok=True)
            (out / "synth_summary.json").write_text(json.dumps({"utterances_missing": self.missing}))
        else:
            out = self.root / cmd[cmd.index("--out") + 1]
            out.mkdir(parents=True, exist_ok=True)
            corpus = cmd[2]
            (out / "train_filtered.jsonl").write_text(json.dumps({"id": corpus}) + "\n")


def test_kokoro_corpora_are_made_scored_and_copied_once(tmp_path):
    corpora = load_tool("_corpora")
    sh = FakeShell(tmp_path)
    corpora.build_kokoro(tmp_path, sh)
    synths = [c for c in sh.calls if "synth" in c]
    assert [(c[c.index("--out") + 1], c[c.index("--preset") + 1], c[c.index("--seed") + 1]) for c in synths] == [
        ("data/synth_kokoro", "clean", "3"),
        ("data/synth_kokoro_varied", "varied", "4"),
    ]
    assert all(c[c.index("--engines") + 1] == "kokoro" and c[c.index("--hours") + 1] == "4" for c in synths)
    for name in ("synth_kokoro", "synth_kokoro_varied"):
        manifest = tmp_path / "data" / "manifests" / f"{name}_train_filtered.jsonl"
        assert json.loads(manifest.read_text())["id"] == f"data/{name}"
    mtime = manifest.stat().st_mtime_ns
    again = FakeShell(tmp_path)
    corpora.build_kokoro(tmp_path, again)
    assert again.calls == []  # complete, scored: nothing to do, and the manifest is left alone
    assert manifest.stat().st_mtime_ns == mtime


def test_a_corpus_left_incomplete_stops_and_its_old_scores_are_dropped(tmp_path):
    corpora = load_tool("_corpora")
    only = (corpora.KOKORO_CORPORA[1],)
    scores = tmp_path / "runs" / "score_voices" / "synth_kokoro_varied"
    scores.mkdir(parents=True)
    (scores / "train_filtered.jsonl").write_text("{}\n")  # scored while the corpus was partial
    with pytest.raises(SystemExit, match="utterances missing; rerun to resume"):
        corpora.build_kokoro(tmp_path, FakeShell(tmp_path, missing=3), only)
    assert not (tmp_path / "data" / "manifests" / "synth_kokoro_varied_train_filtered.jsonl").exists()
    sh = FakeShell(tmp_path)
    corpora.build_kokoro(tmp_path, sh, only)  # resumed to the end: the partial scores are made again
    assert [c[1] for c in sh.calls] == ["-m", "tools/score_voices.py"]
    assert "synth_kokoro_varied" in (scores / "train_filtered.jsonl").read_text()
