"""tools/paired_bootstrap.py over two `asr eval`-style runs: the figures of asr.scoring.paired_bootstrap, and runs that
cannot be paired refused with the reason."""

from __future__ import annotations

import json

from asr.scoring import paired_bootstrap, score_corpus, write_per_utterance
from tests.tools import load_tool

REFS = ["GO FORWARD TEN METERS", "TURN LEFT", "STOP", "BACK TWO METERS", "THE RED ONE"]
HYPS_A = ["GO FORWARD TEN LETTERS", "TURN LEFT", "STOP IT", "BACK TO METERS", "THE RED ONE"]
HYPS_B = ["GO FORWARD TEN METERS", "TURN LEFT", "STOP", "BACK TO METERS", "A RED ONE"]


def _run(folder, refs, hyps, ids=None):
    folder.mkdir()
    ids = ids or [f"u{i}" for i in range(len(refs))]
    write_per_utterance(folder / "utterances.jsonl", score_corpus(ids, refs, hyps)[1])
    return folder


def test_the_tool_reports_the_bootstrap_of_the_two_runs(tmp_path, capsys):
    a, b = _run(tmp_path / "a", REFS, HYPS_A), _run(tmp_path / "b", REFS, HYPS_B)
    tool = load_tool("paired_bootstrap")
    out = tmp_path / "ab.json"
    assert tool.main([str(a), str(b / "utterances.jsonl"), "--resamples", "300", "--seed", "4", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    ids = [f"u{i}" for i in range(len(REFS))]
    counts_a, counts_b = ([u.counts for u in score_corpus(ids, REFS, h)[1]] for h in (HYPS_A, HYPS_B))
    expected = paired_bootstrap(counts_a, counts_b, resamples=300, seed=4)
    assert {k: got[k] for k in expected.__dataclass_fields__} == expected.__dict__
    assert (got["b_better"], got["b_worse"]) == (2, 1)
    assert "B makes fewer errors on 2, more on 1" in capsys.readouterr().out


def test_runs_that_cannot_be_paired_are_refused(tmp_path, capsys):
    tool = load_tool("paired_bootstrap")
    a = _run(tmp_path / "a", REFS, HYPS_A)
    fewer = _run(tmp_path / "fewer", REFS[:4], HYPS_B[:4])
    assert tool.main([str(a), str(fewer)]) == 2
    assert "1 only in A (e.g. ['u4'])" in capsys.readouterr().err
    other = _run(tmp_path / "other", [*REFS[:4], "THE BLUE ONE"], HYPS_B)
    assert tool.main([str(a), str(other)]) == 2
    assert "different references in the two runs, e.g. 'u4'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text((a / "utterances.jsonl").read_text() + '{"id": "u9", "ref": "X"}\n')
    assert tool.main([str(bad), str(a)]) == 2
    assert f"{bad}:6: not an `asr eval` utterance row" in capsys.readouterr().err
    assert tool.main([str(tmp_path / "missing"), str(a)]) == 2
    assert "no utterances.jsonl" in capsys.readouterr().err
