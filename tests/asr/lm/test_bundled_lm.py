"""The LM folder shipped beside the bundled model: it loads, fits the model, stays in budget, was tuned on dev
data only, was built without held-out text, and is what the commands use by default."""

import json

import pytest

from asr.cli import main
from asr.lm.folder import folder_decoder, read_lm_folder
from asr.pipeline import BUNDLED_MODEL_DIR
from asr.synth.text import reference_exclusions

BUDGET_MIB = 25.0


@pytest.fixture(scope="module")
def folder():
    return read_lm_folder(BUNDLED_MODEL_DIR)  # checks the LM's order and n-gram counts against lm.json


def test_bundle_fits_the_size_budget():
    files = ["model.safetensors", "lm.arpa.gz", "lexicon.txt.gz", "lm.json"]
    total = sum((BUNDLED_MODEL_DIR / name).stat().st_size for name in files) / 2**20
    assert total <= BUDGET_MIB, f"bundled model + LM = {total:.2f} MiB"


def test_bundled_lm_was_built_without_held_out_text_and_tuned_on_dev(folder):
    meta = folder.meta
    assert meta["units"] == "words" and meta["lexicon_words"] >= 20000
    build = meta["build"]
    assert build["command"].startswith("asr lm build") and "synth-train" in build["sources"]
    reserved = build["excluded"]["reserved_sentences"]
    assert any("synthetic dev pool" in k for k in reserved) and any("synthetic test pool" in k for k in reserved)
    assert "asr/assets/audio/real.jsonl" in reserved and "asr/assets/audio/synth_test.jsonl" in reserved
    assert build["excluded"]["text"]["synthetic dev/test split hash"] > 0
    # every real-speech dev/test reference (the committed list, which only grows) was held out of this build
    assert reserved["asr/synth/reference_sentences.txt"] == len(reference_exclusions())
    tuning = meta["tuning"]
    assert tuning["data"] and all("dev" in d and "test" not in d for d in tuning["data"])
    assert {"lm_weight", "word_score"} <= set(meta["decoder"])


def test_bundled_lm_decodes_for_the_bundled_model(folder):
    from asr.pipeline import load_asr_model, resolve_model_path

    bundle = load_asr_model(resolve_model_path(None))
    assert folder.fits(bundle.tokenizer)
    decoder = folder_decoder(folder, bundle.tokenizer)
    assert decoder.mode == "lexicon+lm" and len(decoder.lexicon) == folder.meta["lexicon_words"]
    for word in ("GO", "FORWARD", "TEN", "METERS", "TWO", "NINE", "ZERO", "CLUBS", "LEFT", "RIGHT"):
        assert word in decoder.lexicon.entries, word


def test_commands_use_it_by_default(tmp_path, capsys):
    audio = BUNDLED_MODEL_DIR.parent / "audio" / "real" / "goforward.flac"
    assert main(["transcribe", "--json", str(audio)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert "words" in row and row["text"] == " ".join(w["word"] for w in row["words"])
    assert main(["transcribe", "--json", "--no-lm", str(audio)]) == 0
    assert "words" not in json.loads(capsys.readouterr().out)
