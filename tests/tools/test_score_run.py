"""tools/score_run.py: a run scored against the bundle as the sessions score one. The tools it calls are faked only
where they would decode audio (learning_curve.py, asr eval: their outputs are written as they write them); the
paired bootstrap runs for real on those outputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from asr.scoring import paired_bootstrap, score_corpus, write_per_utterance
from tests.tools import TOOLS, load_tool

REFS = ["GO FORWARD TEN METERS", "TURN LEFT", "STOP", "BACK TWO METERS", "THE RED ONE"]
BUNDLE = ["GO FORWARD TEN LETTERS", "TURN LEFT", "STOP IT", "BACK TO METERS", "THE RED ONE"]
RUN = ["GO FORWARD TEN METERS", "TURN LEFT", "STOP", "BACK TO METERS", "A RED ONE"]
IDS = [f"u{i}" for i in range(len(REFS))]


@pytest.fixture
def tool(tmp_path, monkeypatch):
    score = load_tool("score_run")
    mb = score.mb
    monkeypatch.setattr(mb, "ROOT", tmp_path)
    assets = tmp_path / "asr" / "assets"
    (assets / "model").mkdir(parents=True)
    for name in ("model.safetensors", "lm.json", "lexicon.txt.gz", "lm.arpa.gz"):
        (assets / "model" / name).write_bytes(name.encode())
    monkeypatch.setattr(mb, "ASSETS", assets)
    monkeypatch.setattr(mb, "MODEL", assets / "model" / "model.safetensors")
    (tmp_path / mb.REAL_DEV).parent.mkdir(parents=True)
    (tmp_path / mb.REAL_DEV).write_text('{"id": "u0"}\n')
    score.calls = []

    def fake_sh(cmd):
        score.calls.append(cmd)
        if cmd[1] == "tools/learning_curve.py":  # the rows it would score: PER 0.40 / 0.15 for every run given
            runs = [Path(a).name for a, b in zip(cmd, cmd[1:]) if a == "--run" for a in [b]]
            row = {"epoch": 1, "step": 1500, "realspeech-dev_wer": 0.4, "synth-dev_wer": 0.15}
            rows = [{"run": r, **row} for r in runs]
            out = tmp_path / cmd[cmd.index("--out") + 1]
            out.mkdir(parents=True, exist_ok=True)
            (out / "curve.json").write_text(json.dumps({"rows": rows}))
        elif cmd[1] == "tools/paired_bootstrap.py":
            subprocess.run([cmd[0], str(TOOLS / "paired_bootstrap.py"), *cmd[2:]], cwd=tmp_path, check=True,
                           capture_output=True)  # fmt: skip
        else:
            raise AssertionError(f"unexpected command {cmd}")

    def fake_eval(model, data, out, mode="full", lm=False, extra=()):
        assert lm is True and data == mb.REAL_DEV  # realspeech-dev with the bundle's own decoder
        folder = tmp_path / out
        if not (folder / "summary.json").is_file():  # as _eval: decoded once into ``out``
            score.calls.append(["eval", str(model)])
            hyps = BUNDLE if model == mb.MODEL else RUN
            folder.mkdir(parents=True)
            totals, utts = score_corpus(IDS, REFS, hyps)
            write_per_utterance(folder / "utterances.jsonl", utts)
            (folder / "summary.json").write_text(json.dumps({"wer": totals.rate, "cer": 0.1, "decoder": "lexicon+lm"}))
        return json.loads((folder / "summary.json").read_text())

    monkeypatch.setattr(mb, "_sh", fake_sh)
    monkeypatch.setattr(mb, "_eval", fake_eval)
    return score


def _run(root: Path, name: str, init: str = "runs/p1/checkpoints/epoch-002.safetensors") -> Path:
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"init_from: {init}\n")
    (folder / "final.safetensors").write_bytes(b"w")
    return Path("runs") / name


def test_a_run_is_scored_against_the_bundle(tool, tmp_path, capsys):
    run = _run(tmp_path, "kv2")
    assert tool.main([str(run)]) == 0
    curve = tool.calls[0]
    assert curve[1] == "tools/learning_curve.py" and "--start=kv2=p1:2" in curve and "--write-history" in curve
    assert ["eval", "runs/kv2/final.safetensors"] in tool.calls
    got = json.loads((tmp_path / run / "score" / "score.json").read_text())
    counts = [[u.counts for u in score_corpus(IDS, REFS, h)[1]] for h in (BUNDLE, RUN)]
    expected = paired_bootstrap(*counts, resamples=2000, seed=0)
    boot = got["bootstrap_vs_bundle"]
    assert (boot["difference"], boot["low"], boot["high"]) == (expected.difference, expected.low, expected.high)
    assert (got["realspeech_dev_per"], got["synth_dev_per"], got["step"]) == (0.4, 0.15, 1500)
    out = capsys.readouterr().out
    assert f"| the bundle | | | {100 * score_corpus(IDS, REFS, BUNDLE)[0].rate:.1f} / 10.0 | |" in out
    assert f"| kv2 (1500 steps) | 40.0 | 15.0 | {100 * score_corpus(IDS, REFS, RUN)[0].rate:.1f} / 10.0 | " in out
    # the bundle is decoded once per model and decoder: scoring another run reuses it, a new bundle is decoded anew
    assert tool.calls.count(["eval", str(tool.mb.MODEL)]) == 1
    tool.main([str(_run(tmp_path, "kv3"))])
    assert tool.calls.count(["eval", str(tool.mb.MODEL)]) == 1 and ["eval", "runs/kv3/final.safetensors"] in tool.calls
    (tool.mb.ASSETS / "model" / "lm.json").write_text("{}")  # re-tuned decoder weights
    tool.main([str(run)])
    assert tool.calls.count(["eval", str(tool.mb.MODEL)]) == 2
    (dev_key,) = (tmp_path / "runs" / "score-bundle").iterdir()  # one dev set, two bundles
    assert len(list(dev_key.iterdir())) == 2


def test_a_run_whose_warm_start_cannot_be_told_needs_start(tool, tmp_path, capsys):
    run = _run(tmp_path, "fresh", init="runs/gone.init.safetensors")
    with pytest.raises(SystemExit, match="pass --start fresh=EARLIER:EPOCH"):
        tool.main([str(run)])
    assert tool.calls == []  # nothing scored, no history written
    assert tool.main([str(run), "--start", "fresh=kvaried1:1"]) == 0
    assert "--start=fresh=kvaried1:1" in tool.calls[0]


def test_bad_arguments_are_refused_with_the_reason(tool, tmp_path, capsys):
    with pytest.raises(SystemExit):
        tool.main(["runs/nothing"])
    assert "not a training run folder" in capsys.readouterr().err
    run = _run(tmp_path, "kv4")
    with pytest.raises(SystemExit):
        tool.main([str(run), "--start", "kv4"])
    assert "expected RUN=EARLIER:EPOCH" in capsys.readouterr().err
    (tmp_path / run / "final.safetensors").unlink()
    with pytest.raises(SystemExit, match="final.safetensors is missing"):
        tool.main([str(run)])
