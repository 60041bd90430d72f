"""Warm start (``init_from``: weights, tokenizer and CMVN of a model file, fresh optimiser and schedule) and the
extra dev sets decoded at every epoch end (``data.extra_dev`` -> dev_sets.csv)."""

from __future__ import annotations

import csv

import jiwer
import pytest
import torch
from _train_helpers import train_argv
from safetensors.torch import load_file

from asr.cli import main as cli_main
from asr.data.sources import load_utterances
from asr.evaluate import evaluate_batch
from asr.pipeline import load_asr_model

pytestmark = pytest.mark.slow


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_warm_start_begins_from_the_file_and_keeps_its_tokenizer_and_cmvn(tiny_run, tiny_corpus, tmp_path):
    init = tiny_run / "final.safetensors"
    run = tmp_path / "warm"
    argv = train_argv(tiny_corpus, run, f"init_from={init}", "epochs=1", "max_steps=1", "optim.lr=1e-30")
    assert cli_main(argv) == 0
    before, after = load_asr_model(init), load_asr_model(run / "final.safetensors")
    assert after.tokenizer.to_dict() == before.tokenizer.to_dict()
    assert torch.equal(after.cmvn.mean, before.cmvn.mean) and torch.equal(after.cmvn.std, before.cmvn.std)
    # One step at a vanishing learning rate: the weights are the file's (a fresh init would be far away).
    a, b = load_file(init), load_file(run / "final.safetensors")
    weights = [k for k in a if k.startswith("model/") and a[k].is_floating_point()]
    assert weights and all(torch.allclose(a[k], b[k], atol=1e-6) for k in weights)
    # The schedule is fresh: the first step ran at the warm-up's first learning rate, not at the old run's last.
    first = _rows(run / "metrics.csv")[0]
    assert int(first["step"]) == 1 and float(first["lr"]) < 1e-29


def test_warm_start_refuses_another_architecture_and_a_missing_file(tiny_run, tiny_corpus, tmp_path, capsys):
    init = tiny_run / "final.safetensors"
    argv = train_argv(tiny_corpus, tmp_path / "a", f"init_from={init}", "model.num_layers=3", "max_steps=1")
    assert cli_main(argv) != 0
    assert "another architecture than the recipe's model: num_layers: file 2, recipe 3" in capsys.readouterr().err
    assert cli_main(train_argv(tiny_corpus, tmp_path / "b", f"init_from={tmp_path / 'missing.safetensors'}")) != 0
    assert "missing.safetensors is not a file" in capsys.readouterr().err
    assert not (tmp_path / "a" / "checkpoints").exists()  # refused before any training


def test_extra_dev_sets_are_scored_every_epoch_as_evaluate_scores_them(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    extra = f"data.extra_dev=[{{name: again, manifest: {tiny_corpus['dev']}, max_utterances: 4}}]"
    assert cli_main(train_argv(tiny_corpus, run, extra, "epochs=2", "average_last=1")) == 0
    rows = _rows(run / "dev_sets.csv")
    assert [(int(r["epoch"]), r["set"], int(r["utterances"])) for r in rows] == [(1, "again", 4), (2, "again", 4)]
    # The last row is the last epoch's model (average_last=1: final == epoch 2) scored by asr.evaluate + jiwer.
    bundle = load_asr_model(run / "final.safetensors")
    utts = list(load_utterances(tiny_corpus["dev"]))[:4]
    result = evaluate_batch(bundle, utts, progress=False)
    assert float(rows[-1]["wer"]) == pytest.approx(result.wer, abs=1e-4)
    scored = result.per_utterance
    words = jiwer.process_words([s.ref for s in scored], [s.hyp for s in scored])
    errors = words.substitutions + words.deletions + words.insertions
    assert float(rows[-1]["wer"]) == pytest.approx(errors / sum(len(s.ref.split()) for s in scored), abs=1e-4)


def test_extra_dev_names_must_be_distinct(tiny_corpus, tmp_path, capsys):
    two = f"[{{name: x, manifest: {tiny_corpus['dev']}}}, {{name: x, manifest: {tiny_corpus['dev']}}}]"
    assert cli_main(train_argv(tiny_corpus, tmp_path / "r", f"data.extra_dev={two}")) != 0
    assert "extra_dev names must be distinct" in capsys.readouterr().err
