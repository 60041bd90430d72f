"""tools/fit_diagnosis.py: its clean loss and CER are what the model gives utterance by utterance (CTC loss,
jiwer), and the augmented condition is seeded."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jiwer
import torch

from asr.data.sources import load_utterances
from asr.decoding import greedy_search
from asr.pipeline import load_asr_model
from asr.text.normalize import normalize_text

_SPEC = importlib.util.spec_from_file_location(
    "fit_diagnosis", Path(__file__).resolve().parents[3] / "tools" / "fit_diagnosis.py"
)
fd = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fd)


def _one_by_one(model_path: Path, folder: Path) -> tuple[float, float]:
    """Loss per token and CER over a whole set, one utterance at a time through the model's own front end."""
    bundle = load_asr_model(model_path)
    loss, tokens, refs, hyps = 0.0, 0, [], []
    for u in load_utterances(folder):
        feats = bundle.featurize(u.load_audio(target_sr=bundle.features.sample_rate))
        lp, n = bundle.log_probs(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
        target = torch.tensor(bundle.tokenizer.encode(u.text))
        loss += float(
            torch.nn.functional.ctc_loss(
                lp[0, : int(n[0])], target, n, torch.tensor([len(target)]), blank=bundle.tokenizer.blank_id,
                reduction="sum", zero_infinity=True,
            )
        )
        tokens += len(target)
        refs.append(normalize_text(u.text))
        hyps.append(normalize_text(bundle.tokenizer.decode(greedy_search(lp[0, : int(n[0])]).tokens)))
    return loss / tokens, jiwer.cer(refs, hyps)


def test_fit_diagnosis_matches_the_model_utterance_by_utterance(tiny_run, tiny_corpus, tmp_path, capsys):
    model = tiny_run / "final.safetensors"
    argv = ["--model", str(model), "--run", str(tiny_run), "--utterances", "100", "--batch", "4"]
    assert fd.main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "synth-dev" in capsys.readouterr().out
    report = json.loads((tmp_path / "a" / "fit.json").read_text())
    assert set(report["sets"]) == {"synth-train", "synth-dev"}  # the tiny recipe mixes in no real speech
    dev = report["sets"]["synth-dev"]
    assert dev["clean"]["utterances"] == 6
    loss, cer = _one_by_one(model, tiny_corpus["dev"])
    assert abs(dev["clean"]["loss_per_token"] - loss) < 1e-4 * max(1.0, loss)
    assert abs(dev["clean"]["cer"] - cer) < 1e-9
    # the world condition (speed perturbation in this recipe) changes the audio, the same way every time
    assert dev["world"]["loss_per_token"] != dev["clean"]["loss_per_token"]
    assert fd.main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "fit.json").read_text())["sets"] == report["sets"]


def test_a_phone_model_is_scored_in_phones(tiny_corpus, tmp_path, capsys):
    """A phone run's cells are phone error rates against the references' CMUdict phones, as ``asr eval`` scores a
    phone model's greedy output."""
    from _train_helpers import train_argv

    from asr.cli import main as cli_main
    from asr.evaluate import phone_reference

    run = tmp_path / "run"
    assert cli_main(train_argv(tiny_corpus, run, "data.tokenizer=phone", "max_steps=2")) == 0
    model = run / "final.safetensors"
    assert fd.main(["--model", str(model), "--run", str(run), "--utterances", "6", "--out", str(tmp_path / "o")]) == 0
    assert "clean PER" in capsys.readouterr().out
    dev = json.loads((tmp_path / "o" / "fit.json").read_text())["sets"]["synth-dev"]["clean"]
    assert dev["unit"] == "phone"
    bundle = load_asr_model(model)
    refs, hyps = [], []
    for u in load_utterances(tiny_corpus["dev"]):
        feats = bundle.featurize(u.load_audio(target_sr=bundle.features.sample_rate))
        lp, n = bundle.log_probs(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
        refs.append(phone_reference(bundle.tokenizer, u.text))
        hyps.append(bundle.tokenizer.decode(greedy_search(lp[0, : int(n[0])]).tokens))
    assert abs(dev["cer"] - jiwer.wer(refs, hyps)) < 1e-9
