"""tools/attention_study.py: variants as overrides of one recipe, their evaluations, and the committed study file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr.configs import config_to_dict, parse_cli_overrides
from asr.train.trainer import load_train_config
from tests.asr.train._tiny_corpus import write_corpus
from tests.tools import load_tool

REPO = Path(__file__).resolve().parents[2]
study = load_tool("attention_study")


def _config(recipe: str, overrides: list[str]) -> dict:
    return config_to_dict(load_train_config(str(REPO / recipe), parse_cli_overrides(overrides)))


def test_the_softmax_variant_is_the_softmax_recipe():
    # the first study trained softmax.yaml; its overrides on base.yaml must give that very config
    assert _config("recipes/synth/base.yaml", study.VARIANTS["softmax"][0]) == _config("recipes/synth/softmax.yaml", [])


def test_every_variant_changes_only_the_model_and_bidirectional_rows_are_not_streamed():
    base = _config("recipes/synth/study.yaml", [])
    for name, (overrides, _) in study.VARIANTS.items():
        config = _config("recipes/synth/study.yaml", overrides)
        assert {k for k in base if base[k] != config[k]} <= {"model"}, name
    assert [(t, m) for t, _, m, _ in study.evaluations("linear", "T", "R", None)] == [
        ("test", "full"), ("test", "stream"), ("real", "full")]  # fmt: skip
    with_lm = study.evaluations("bidir_softmax", "T", None, "LMDIR")
    assert [(t, m, d) for t, _, m, d in with_lm] == [("test", "full", ["--lm", "LMDIR"]),
                                                     ("test-greedy", "full", ["--no-lm"])]  # fmt: skip


@pytest.mark.slow
def test_two_variants_trained_evaluated_and_recorded_beside_an_earlier_row(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", train=12, dev=3, seed=5)
    record = tmp_path / "study.json"
    record.write_text(json.dumps({"softmax": {"description": "from an earlier session"}}))
    argv = ["--recipe", "recipes/synth/tiny.yaml", "--out", str(tmp_path / "runs"), "--variants", "linear",
            "bidir_linear", "--set", f"data.train={corpus['train']}", f"data.dev={corpus['dev']}", "epochs=2",
            "--test", str(corpus["dev"]), "--real", str(tmp_path / "none.jsonl"), "--record", str(record)]  # fmt: skip
    assert study.main(argv) == 0
    rows = json.loads(record.read_text())
    assert list(rows) == ["bidir_linear", "linear", "softmax"]  # the earlier row stays
    linear, bidir = rows["linear"], rows["bidir_linear"]
    assert linear["overrides"][-1] == "epochs=2" and bidir["overrides"][-1] == "model.causal=false"
    assert linear["epochs"] == 2 and linear["steps"] > 0 and linear["cpu_seconds"] > 0 and linear["params"] > 0
    assert [r["epoch"] for r in linear["dev_curve"]] == [1, 2]
    assert set(linear["evals"]) == {"test-full", "test-stream"} and set(bidir["evals"]) == {"test-full"}
    full = json.loads((tmp_path / "runs/linear/eval-test-full/summary.json").read_text())
    assert linear["evals"]["test-full"]["wer"] == full["wer"]
    # a causal model streams what it decodes in one pass, utterance for utterance
    assert linear["stream_equals_full"] == [3, 3] and "stream_equals_full" not in bidir
    # run again: nothing is retrained or re-evaluated, and the record is the same
    before = json.loads(record.read_text())
    capsys.readouterr()
    assert study.main(argv) == 0
    again = capsys.readouterr().out
    assert again.count("trained already") == 2 and "eval test" not in again
    after = json.loads(record.read_text())
    for row in (*before.values(), *after.values()):
        row.pop("recorded", None)  # the date of the recording
    assert after == before


def test_linear_rows_are_bootstrapped_against_their_softmax_row(tmp_path):
    """against(): each linear row's test evaluations paired utterance by utterance with the softmax row's of its kind
    (those whose folders exist), and record() files them under the row, once it is in the study file."""
    from asr.scoring import paired_bootstrap, score_corpus, write_per_utterance

    refs = ["GO FORWARD TEN METERS", "TURN LEFT", "STOP", "BACK TWO METERS"]
    hyps = {"softmax": ["GO FORWARD TEN LETTERS", "TURN LEFT", "STOP IT", "BACK TO METERS"],
            "linear": ["GO FORWARD TEN METERS", "TURN LEFT", "STOP", "BACK TO METERS"],
            "bidir_linear": refs}  # fmt: skip
    ids = [f"u{i}" for i in range(len(refs))]
    counts = {}
    for name, h in hyps.items():
        (tmp_path / name / "eval-test-full").mkdir(parents=True)
        total, per_utt = score_corpus(ids, refs, h)
        write_per_utterance(tmp_path / name / "eval-test-full" / "utterances.jsonl", per_utt)
        counts[name] = [u.counts for u in per_utt]
    found = study.against(tmp_path)
    assert list(found) == ["linear"]  # bidir_softmax was not evaluated; no greedy folders here
    assert found["linear"]["row"] == "softmax" and set(found["linear"]) == {"row", "test-full"}
    expected = paired_bootstrap(counts["softmax"], counts["linear"], resamples=2000, seed=0)
    assert found["linear"]["test-full"]["difference"] == pytest.approx(expected.difference, abs=1e-5)
    assert found["linear"]["test-full"]["b_better"] == 2 and found["linear"]["test-full"]["b_worse"] == 0
    path = tmp_path / "study.json"
    study.record(path, {"softmax": {"description": "s"}}, found)
    assert "linear" not in json.loads(path.read_text())  # a comparison does not make a row
    study.record(path, {"linear": {"description": "l"}}, found)
    assert json.loads(path.read_text())["linear"]["against"] == found["linear"]
