"""tools/learning_curve.py: CPU time summed over resumes and runs, one row per scored epoch checkpoint."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "learning_curve", Path(__file__).resolve().parents[2] / "tools" / "learning_curve.py"
)
lc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(lc)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_cpu_seconds_sum_the_segments_of_a_resumed_run():
    rows = [{"step": s, "cpu_s": c} for s, c in [(10, 5), (20, 10), (30, 3), (40, 8)]]  # resumed after step 20
    series = lc.cpu_seconds_by_step(rows)
    assert series == [(10, 5.0), (20, 10.0), (30, 13.0), (40, 18.0)]
    assert lc.cpu_at(35, series) == 13.0 and lc.cpu_at(5, series) == 0.0 and lc.cpu_at(99, series) == 18.0


def _fake_run(root: Path, name: str, epochs: dict[int, int], metrics: list[tuple[int, float]]) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    for epoch in epochs:
        (run / "checkpoints" / f"epoch-{epoch:03d}.safetensors").write_bytes(b"")
    _write_csv(run / "dev.csv", [{"epoch": e, "step": s} for e, s in epochs.items()])
    _write_csv(run / "metrics.csv", [{"step": s, "cpu_s": c} for s, c in metrics])
    return run


def test_a_warm_started_run_continues_the_curve(tmp_path, monkeypatch):
    first = _fake_run(tmp_path, "a", {1: 10, 2: 20}, [(10, 1800.0), (20, 3600.0)])
    second = _fake_run(tmp_path, "b", {1: 5}, [(5, 720.0)])
    (second / "checkpoints" / "epoch-002.safetensors").write_bytes(b"")  # no dev.csv row yet: not scored
    scored = []

    def fake_evaluate(model, data, out, decoder=("--no-lm",)):
        scored.append((model.parent.parent.name, model.stem, data))
        return {"wer": 0.5, "cer": 0.25}

    monkeypatch.setattr(lc, "_evaluate", fake_evaluate)
    rows = lc.curve([first, second], {"dev": "d.jsonl"}, tmp_path / "out")
    assert [(r["run"], r["epoch"], r["cpu_hours"]) for r in rows] == [("a", 1, 0.5), ("a", 2, 1.0), ("b", 1, 1.2)]
    assert scored == [("a", "epoch-001", "d.jsonl"), ("a", "epoch-002", "d.jsonl"), ("b", "epoch-001", "d.jsonl")]
    assert rows[0]["dev_wer"] == 0.5 and rows[0]["dev_cer"] == 0.25


def test_the_command_writes_json_and_csv_and_refuses_a_non_run(tmp_path, monkeypatch, capsys):
    run = _fake_run(tmp_path, "a", {1: 10}, [(10, 360.0)])
    monkeypatch.setattr(lc, "_evaluate", lambda model, data, out, decoder=("--no-lm",): {"wer": 0.1, "cer": 0.05})
    assert lc.main(["--run", str(run), "--data", "x=y.jsonl", "--out", str(tmp_path / "o")]) == 0
    saved = json.loads((tmp_path / "o" / "curve.json").read_text())
    assert saved["rows"][0]["x_wer"] == 0.1 and saved["rows"][0]["cpu_hours"] == 0.1
    assert (tmp_path / "o" / "curve.csv").read_text().splitlines()[0] == "run,epoch,step,cpu_hours,x_wer,x_cer"
    with pytest.raises(SystemExit):
        lc.main(["--run", str(tmp_path), "--data", "x=y", "--out", str(tmp_path / "o2")])
    assert "not a training run" in capsys.readouterr().err


HISTORY = "run,epoch,step,cpu_hours,dev_wer,dev_cer\na,1,10,0.5,0.9,0.5\na,2,20,1.0,0.8,0.4\n"


def test_a_run_whose_predecessor_is_gone_continues_the_history(tmp_path, monkeypatch):
    """Run folders do not outlive the machine: the committed history carries the rows of runs no longer on disk,
    and the next run's CPU time starts where they ended."""
    (tmp_path / "h.csv").write_text(HISTORY)
    second = _fake_run(tmp_path, "b", {1: 5}, [(5, 720.0)])
    monkeypatch.setattr(lc, "_evaluate", lambda model, data, out, decoder=("--no-lm",): {"wer": 0.5, "cer": 0.25})
    out = tmp_path / "o"
    assert lc.main(["--run", str(second), "--data", "dev=d", "--out", str(out),
                    "--history", str(tmp_path / "h.csv"), "--write-history"]) == 0  # fmt: skip
    rows = json.loads((out / "curve.json").read_text())["rows"]
    assert [(r["run"], r["epoch"], r["cpu_hours"], r["dev_wer"]) for r in rows] == [
        ("a", 1, 0.5, 0.9), ("a", 2, 1.0, 0.8), ("b", 1, 1.2, 0.5)]  # fmt: skip
    written = (tmp_path / "h.csv").read_text().splitlines()
    assert written[0] == "run,epoch,step,cpu_hours,dev_wer,dev_cer" and written[-1] == "b,1,5,1.2,0.5,0.25"
    assert (out / "curve.csv").read_text() == (tmp_path / "h.csv").read_text()


def test_a_row_scored_again_replaces_the_history_row_and_others_stay():
    history = [{"run": "a", "epoch": 1, "x": 1}, {"run": "b", "epoch": 1, "x": 2}, {"run": "b", "epoch": 2, "x": 3}]
    scored = [{"run": "b", "epoch": 2, "x": 30}, {"run": "b", "epoch": 3, "x": 40}, {"run": "c", "epoch": 1, "x": 5}]
    merged = lc.merge(history, scored)
    assert [(r["run"], r["epoch"], r["x"]) for r in merged] == [
        ("a", 1, 1), ("b", 1, 2), ("b", 2, 30), ("b", 3, 40), ("c", 1, 5)]  # fmt: skip


def test_a_run_on_disk_that_the_history_also_has_starts_from_the_runs_before_it(tmp_path, monkeypatch):
    history = [{"run": "a", "epoch": 1, "step": 10, "cpu_hours": 2.0},
               {"run": "b", "epoch": 1, "step": 5, "cpu_hours": 2.5}]  # fmt: skip
    run = _fake_run(tmp_path, "b", {1: 5, 2: 10}, [(5, 1800.0), (10, 3600.0)])
    monkeypatch.setattr(lc, "_evaluate", lambda model, data, out, decoder=("--no-lm",): {"wer": 0.5, "cer": 0.25})
    rows = lc.curve([run], {"dev": "d"}, tmp_path / "o", history)
    assert [(r["epoch"], r["cpu_hours"]) for r in rows] == [(1, 2.5), (2, 3.0)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("run,epoch,dev_wer,dev_cer\na,1,0.5,0.2\n", "header lacks step, cpu_hours"),
        ("run,epoch,step,cpu_hours,dev_wer\na,1,1,0.1,0.5\n", "<set>_wer and <set>_cer pairs"),
        ("run,epoch,step,cpu_hours,dev_wer,dev_cer\na,1,1,0.1,0.5,0.2\na,two,2,0.2,0.4,0.1\n", "line 3"),
        ("run,epoch,step,cpu_hours,dev_wer,dev_cer\n,1,1,0.1,0.5,0.2\n", "line 2: empty run name"),
    ],
)
def test_a_malformed_history_is_refused_naming_the_file_and_line(tmp_path, text, message, capsys):
    path = tmp_path / "h.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        lc.read_history(path)
    run = _fake_run(tmp_path, "b", {1: 5}, [(5, 720.0)])
    with pytest.raises(SystemExit):
        lc.main(["--run", str(run), "--data", "dev=d", "--out", str(tmp_path / "o"), "--history", str(path)])
    assert str(path) in capsys.readouterr().err


def test_history_sets_must_match_the_data_and_write_history_needs_a_file(tmp_path, capsys):
    (tmp_path / "h.csv").write_text(HISTORY)
    run = _fake_run(tmp_path, "b", {1: 5}, [(5, 720.0)])
    base = ["--run", str(run), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit):
        lc.main([*base, "--data", "other=d", "--history", str(tmp_path / "h.csv")])
    assert "has the sets dev; --data gives other" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        lc.main([*base, "--data", "dev=d", "--write-history"])
    assert "--write-history needs --history" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        lc.main([*base, "--data", "dev=d", "--history", str(tmp_path / "missing.csv")])
    assert "no such file" in capsys.readouterr().err


def test_a_phone_run_gives_greedy_per_and_words_through_a_fixed_lm(tmp_path, monkeypatch, capsys):
    run = _fake_run(tmp_path, "phones", {1: 10, 2: 20}, [(10, 360.0), (20, 720.0)])
    calls = []

    def fake_evaluate(model, data, out, decoder=("--no-lm",)):
        calls.append((model.stem, data, tuple(decoder)))
        if decoder == ("--no-lm",):  # a phone model's greedy output: PER, no CER
            return {"unit": "phone", "per": 0.4, "cer": None}  # as asr eval writes it
        return {"wer": 0.9, "cer": 0.5}

    monkeypatch.setattr(lc, "_evaluate", fake_evaluate)
    base = ["--run", str(run), "--data", "dev=d.jsonl", "--out", str(tmp_path / "o")]
    assert lc.main(base + ["--lm-data", "dev+lm=d.jsonl", "--lm", "LMF", "--lm-weight", "1", "--word-score", "-2"]) == 0
    lm = ("--lm", "LMF", "--lm-weight", "1.0", "--word-score", "-2.0", "--blank-penalty", "0.0")
    assert calls == [("epoch-001", "d.jsonl", ("--no-lm",)), ("epoch-001", "d.jsonl", lm),
                     ("epoch-002", "d.jsonl", ("--no-lm",)), ("epoch-002", "d.jsonl", lm)]  # fmt: skip
    lines = (tmp_path / "o" / "curve.csv").read_text().splitlines()
    assert lines[0] == "run,epoch,step,cpu_hours,dev_wer,dev_cer,dev+lm_wer,dev+lm_cer"
    assert lines[1] == "phones,1,10,0.1,0.4,,0.9,0.5"  # no CER for phones: an empty cell, read back as None
    sets, rows = lc.read_history(tmp_path / "o" / "curve.csv")
    assert sets == ["dev", "dev+lm"] and rows[0]["dev_cer"] is None and rows[0]["dev+lm_cer"] == 0.5
    with pytest.raises(SystemExit):
        lc.main(base + ["--lm-data", "dev+lm=d.jsonl", "--lm", "LMF"])
    assert "fixed weights" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        lc.main(base + ["--lm-data", "dev=d.jsonl", "--lm", "LMF", "--lm-weight", "1", "--word-score", "-2"])
    assert "given twice" in capsys.readouterr().err


def test_the_lm_sets_can_fix_the_beam_too(tmp_path, monkeypatch):
    run = _fake_run(tmp_path, "phones", {1: 10}, [(10, 360.0)])
    decoders = []
    monkeypatch.setattr(lc, "_evaluate", lambda model, data, out, decoder=("--no-lm",): decoders.append(decoder)
                        or {"wer": 0.9, "cer": 0.5})  # fmt: skip
    args = ["--run", str(run), "--data", "dev=d.jsonl", "--lm-data", "dev+lm=d.jsonl", "--lm", "LMF", "--lm-weight",
            "1", "--word-score", "-2", "--lm-beam", "32", "--lm-beam-tokens", "all", "--lm-beam-threshold", "25",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert lc.main(args) == 0
    assert decoders[1] == ("--lm", "LMF", "--lm-weight", "1.0", "--word-score", "-2.0", "--blank-penalty", "0.0",
                           "--beam", "32", "--beam-tokens", "all", "--beam-threshold", "25.0")  # fmt: skip


def test_a_run_started_from_an_earlier_epoch_continues_from_that_epoch(tmp_path, monkeypatch, capsys):
    """A phase warm-started from epoch 1 of a run that trained 2 epochs: its CPU time continues from epoch 1's, not
    from the whole earlier run's; the start may be a row of the history too."""
    first = _fake_run(tmp_path, "a", {1: 10, 2: 20}, [(10, 1800.0), (20, 3600.0)])
    second = _fake_run(tmp_path, "b", {1: 5}, [(5, 720.0)])
    monkeypatch.setattr(lc, "_evaluate", lambda model, data, out, decoder=("--no-lm",): {"wer": 0.5, "cer": 0.25})
    rows = lc.curve([first, second], {"dev": "d.jsonl"}, tmp_path / "out", starts={"b": ("a", 1)})
    assert [(r["run"], r["epoch"], r["cpu_hours"]) for r in rows] == [("a", 1, 0.5), ("a", 2, 1.0), ("b", 1, 0.7)]
    history = [{"run": "a", "epoch": 1, "step": 10, "cpu_hours": 0.25}, {"run": "a", "epoch": 2, "step": 20,
                                                                          "cpu_hours": 2.0}]  # fmt: skip
    rows = lc.curve([second], {"dev": "d.jsonl"}, tmp_path / "out", history, starts={"b": ("a", 1)})
    assert [(r["run"], r["cpu_hours"]) for r in rows] == [("b", 0.45)]
    with pytest.raises(SystemExit, match="no row of a epoch 3"):
        lc.curve([second], {"dev": "d.jsonl"}, tmp_path / "out", history, starts={"b": ("a", 3)})
    with pytest.raises(SystemExit):
        lc.main(["--run", str(second), "--data", "dev=d.jsonl", "--start", "b=a", "--out", str(tmp_path / "o")])
    assert "expected RUN=EARLIER:EPOCH" in capsys.readouterr().err


def test_a_cached_score_made_with_other_lm_settings_is_made_again(tmp_path, monkeypatch):
    """The bundled LM folder's own settings change when it is re-tuned (a blank penalty appeared): the curve pins
    its settings, and a cached summary decoded otherwise is not reused."""
    out = tmp_path / "dev"
    out.mkdir()
    runs = []
    monkeypatch.setattr(lc.subprocess, "run", lambda cmd, **kw: runs.append(cmd) or
                        (out / "summary.json").write_text(json.dumps({"wer": 0.4, "lm": {"blank_penalty": 0.0}})))
    decoder = ("--lm", "LMF", "--lm-weight", "1", "--word-score", "-2", "--blank-penalty", "0")
    lm = {"lm_weight": 1.0, "word_score": -2.0}
    (out / "summary.json").write_text(json.dumps({"wer": 0.5, "lm": lm}))  # made before the penalty existed: 0
    assert lc._evaluate(Path("m"), "d", out, decoder)["wer"] == 0.5 and not runs
    (out / "summary.json").write_text(json.dumps({"wer": 0.3, "lm": {**lm, "blank_penalty": 1.0}}))
    assert lc._evaluate(Path("m"), "d", out, decoder)["wer"] == 0.4 and len(runs) == 1
    assert lc._evaluate(Path("m"), "d", out)["wer"] == 0.4 and len(runs) == 1  # greedy: nothing to compare
    # the search's settings too (session 28 re-tuned them): "all" tokens is a summary's None
    searched = (*decoder, "--beam-tokens", "all", "--beam-threshold", "25")
    (out / "summary.json").write_text(json.dumps({"wer": 0.2, "lm": {**lm, "beam_size_token": None,
                                                                     "beam_threshold": 25.0}}))  # fmt: skip
    assert lc._evaluate(Path("m"), "d", out, searched)["wer"] == 0.2 and len(runs) == 1
    (out / "summary.json").write_text(json.dumps({"wer": 0.2, "lm": {**lm, "beam_size_token": 10,
                                                                     "beam_threshold": 25.0}}))  # fmt: skip
    assert lc._evaluate(Path("m"), "d", out, searched)["wer"] == 0.4 and len(runs) == 2


def _safetensors_with_extra(path: Path, extra: dict) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(path), metadata={"extra": json.dumps(extra)})


def test_a_run_stopped_inside_an_epoch_is_scored_from_its_final_model(tmp_path, monkeypatch):
    run = _fake_run(tmp_path, "grown", {1: 10}, [(10, 360.0), (20, 720.0), (30, 1080.0)])
    position = {"step": 27, "epoch": 1, "batches_done": 17}
    _safetensors_with_extra(run / "checkpoints" / "step-0000027.safetensors", {"position": position})
    _safetensors_with_extra(run / "final.safetensors", {"from": "step-0000027"})
    scored = []

    def fake_evaluate(model, data, out, decoder=("--no-lm",)):
        scored.append((model.name, out.parent.name))
        return {"per": 0.4}

    monkeypatch.setattr(lc, "_evaluate", fake_evaluate)
    rows = lc.curve([run], {"dev": "d.jsonl"}, tmp_path / "out")
    # epoch 1's checkpoint, then the final model as epoch 2's row at step 27 (CPU at the last row before it: 720 s)
    assert [(r["run"], r["epoch"], r["step"], r["cpu_hours"]) for r in rows] == [
        ("grown", 1, 10, 0.1),
        ("grown", 2, 27, 0.2),
    ]
    assert scored == [("epoch-001.safetensors", "epoch-001"), ("final.safetensors", "final")]


def test_an_averaged_final_model_adds_no_row_and_a_lost_source_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lc, "_evaluate", lambda *a, **k: {"wer": 0.5, "cer": 0.2})
    run = _fake_run(tmp_path, "averaged", {1: 10}, [(10, 360.0)])
    _safetensors_with_extra(run / "final.safetensors", {"averaged": ["epoch-001.safetensors"]})
    assert [r["epoch"] for r in lc.curve([run], {"dev": "d.jsonl"}, tmp_path / "out")] == [1]
    lost = _fake_run(tmp_path, "lost", {1: 5}, [(10, 360.0)])
    _safetensors_with_extra(lost / "final.safetensors", {"from": "step-0000010"})
    with pytest.raises(SystemExit, match="step-0000010.safetensors, which is gone"):
        lc.curve([lost], {"dev": "d.jsonl"}, tmp_path / "out")
