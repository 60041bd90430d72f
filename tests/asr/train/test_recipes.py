"""Every recipe resolves to a valid config; the LibriSpeech (BPE, manifests) and WSJ (phones, PER) recipes train
and evaluate end to end when shrunk and pointed at a tiny corpus in the real on-disk layout."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from _train_helpers import REPO

from asr.cli import main as cli_main
from asr.configs import config_to_dict
from asr.train.trainer import load_train_config

RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))

# Shrinks any recipe to a seconds-long run (the recipe's tokenizer, optimiser and front end are kept).
SHRINK = (
    "model.d_model=32",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.ff_dim=64",
    "model.subsampling_channels=8",
    "data.max_batch_frames=1500",
    "data.dev_max_utterances=6",
    "epochs=1",
    "max_steps=2",
    "checkpoint_every_steps=1",
    "average_last=1",
    "num_threads=1",
)


def _diff(a: dict, b: dict, prefix: str = "") -> set[str]:
    out = set()
    for key in set(a) | set(b):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out |= _diff(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.add(prefix + key)
    return out


def test_every_recipe_is_found():
    names = {str(p.relative_to(REPO / "recipes")) for p in RECIPES}
    expected = {"synth/base.yaml", "synth/tiny.yaml", "synth/softmax.yaml", "librispeech/100h.yaml",
                "librispeech/960h.yaml", "wsj/si284_phones.yaml", "wsj/si284_chars.yaml"}  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_recipe_resolves_to_a_consistent_config(recipe):
    config = load_train_config(str(recipe), {})
    assert config.model.input_dim == config.features.n_mels
    assert config.data.train and config.epochs >= 1


def test_recipe_variants_change_only_what_they_say():
    def load(name):
        return config_to_dict(load_train_config(str(REPO / "recipes" / name), {}))

    assert _diff(load("synth/base.yaml"), load("synth/softmax.yaml")) == {"model.attention"}
    assert _diff(load("wsj/si284_phones.yaml"), load("wsj/si284_chars.yaml")) == {"data.tokenizer"}
    assert _diff(load("synth/targets_char.yaml"), load("synth/targets_bpe.yaml")) == {"data.tokenizer"}
    assert _diff(load("synth/targets_char.yaml"), load("synth/targets_phone.yaml")) == {"data.tokenizer"}
    assert _diff(load("synth/world.yaml"), load("synth/targets_char.yaml")) == {"data.extra_dev"}
    assert _diff(load("synth/phones_world.yaml"), load("synth/phones_real.yaml")) == {"data.extra_train", "epochs"}
    assert _diff(load("synth/phones_real.yaml"), load("synth/phones_distill.yaml")) == {
        "distill.teacher", "distill.weight"}  # fmt: skip
    # session 29's ablation and the Kokoro phase: one epoch of phones_real, then only the extra sets differ
    assert _diff(load("synth/phones_real.yaml"), load("synth/phones_real_short.yaml")) == {"epochs", "average_last"}
    short = load("synth/phones_real_short.yaml")
    for name, shares in (("phones_real_more", [0.4]), ("phones_kokoro", [0.2, 0.3])):
        assert _diff(short, load(f"synth/{name}.yaml")) == {"data.extra_train"}
        assert [e["share"] for e in load(f"synth/{name}.yaml")["data"]["extra_train"]] == shares
    # the blends' isolation: the bundle's recipe with one more extra set, 15% of the audio from the main corpus's share
    varied, blend = load("synth/phones_kokoro_varied.yaml"), load("synth/phones_kokoro_varied_blend.yaml")
    assert _diff(varied, blend) == {"data.extra_train"}
    assert blend["data"]["extra_train"][:3] == varied["data"]["extra_train"]
    assert [e["share"] for e in blend["data"]["extra_train"]] == [0.2, 0.25, 0.25, 0.15]
    real10 = load("synth/phones_kokoro_varied_real10.yaml")  # the real recordings' share halved, nothing else
    assert _diff(varied, real10) == {"data.extra_train"}
    assert real10["data"]["extra_train"][1:] == varied["data"]["extra_train"][1:]
    assert [e["share"] for e in real10["data"]["extra_train"]] == [0.1, 0.25, 0.25]
    base = load_train_config(str(REPO / "recipes/synth/base.yaml"), {})
    assert base.data.train == "data/synth/train" and base.data.tokenizer == "char"
    assert dataclasses.asdict(base.model) == dataclasses.asdict(type(base.model)())  # the default model
    tiny = load_train_config(str(REPO / "recipes/synth/tiny.yaml"), {})
    assert tiny.model.num_layers <= 2 and tiny.model.d_model <= 64


@pytest.mark.slow
def test_librispeech_recipe_trains_bpe_from_prepared_manifests(tiny_corpus, tmp_path):
    # The README's path: asr prepare -> manifests -> asr train -> asr eval.
    root = tmp_path / "LibriSpeech"
    root.mkdir()
    for name in ("train", "dev"):
        (root / f"{name}-clean").symlink_to(tiny_corpus[name], target_is_directory=True)
    manifests = tmp_path / "manifests"
    assert cli_main(["prepare", "librispeech", str(root), "--out", str(manifests)]) == 0
    run = tmp_path / "run"
    data = [f"data.train={manifests / 'train-clean.jsonl'}", f"data.dev={manifests / 'dev-clean.jsonl'}"]
    recipe = str(REPO / "recipes/librispeech/100h.yaml")
    argv = ["train", recipe, *data, "data.bpe_vocab_size=24", *SHRINK, "--run-dir", str(run)]
    assert cli_main(argv) == 0
    assert json.loads((run / "tokenizer.json").read_text())["kind"] == "bpe"
    out = tmp_path / "eval"
    assert cli_main(["eval", "--model", str(run), "--data", str(manifests / "dev-clean.jsonl"), "--beam", "3",
                     "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unit"] == "word" and summary["beam"] == 3 and summary["utterances"] == 6


@pytest.mark.slow
def test_wsj_phone_recipe_scores_phone_error_rate(tiny_corpus, tmp_path, caplog):
    run = tmp_path / "run"
    argv = ["train", str(REPO / "recipes/wsj/si284_phones.yaml"), f"data.train={tiny_corpus['train']}",
            f"data.dev={tiny_corpus['dev']}", *SHRINK, "max_steps=1000", "--run-dir", str(run)]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="asr.train.trainer"):  # the whole (tiny) epoch: its dev scores
        assert cli_main(argv) == 0
    dev_lines = [r.getMessage() for r in caplog.records if ": dev " in r.getMessage()]
    assert dev_lines and all(" PER " in m and "WER" not in m and "CER" not in m for m in dev_lines)  # no "CER nan%"
    out = tmp_path / "eval"
    assert cli_main(["eval", "--model", str(run), "--data", str(tiny_corpus["dev"]), "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unit"] == "phone" and "per" in summary and summary["cer"] is None
    first = json.loads((out / "utterances.jsonl").read_text().splitlines()[0])
    assert first["ref"].split()[0].isupper() and " " in first["ref"]  # CMUdict phones, e.g. "W AH N"
