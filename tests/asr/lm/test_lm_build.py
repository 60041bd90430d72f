"""asr lm build: the LM folder (ARPA + lexicon + lm.json), its checks, and the text that must stay out of it."""

import json
import logging

import pytest

import asr.lm.text as lm_text
from asr.cli import main
from asr.decoding.lm import LMError, read_lm_info
from asr.lm.build import BuildConfig, build_lm_folder
from asr.lm.folder import folder_decoder, read_lm_folder
from asr.lm.text import Reserved, lm_sentences, normalise_lm_sentence, reserved_sentences
from asr.synth.text import TextConfig, load_sentences, normalise, split_of
from asr.text.chars import CharTokenizer
from tests.asr.lm._lm_fixtures import SENTENCES, spelled_log_probs

TOK = CharTokenizer()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("lmdir")
    build_lm_folder(SENTENCES * 2, out, TOK, BuildConfig(order=3, vocab_size=12), meta={"test": True}, progress=False)
    return out


def test_folder_has_lm_lexicon_and_description(folder):
    meta = json.loads((folder / "lm.json").read_text())
    info = read_lm_info(folder / "lm.arpa.gz")
    assert meta["order"] == info.order == 3 and meta["ngram_counts"] == list(info.counts)
    assert meta["lexicon_words"] == 12 and meta["tokenizer"]["tokens"] == TOK.tokens
    assert "<unk>" in info.vocab  # words outside the 12 most frequent
    assert {"THE", "CAT", "SAT"} <= info.vocab and "AWAY" not in info.vocab  # AWAY is said once
    assert meta["build"]["test"] is True and meta["build"]["estimator"].startswith("kaldingram")
    decoder = folder_decoder(read_lm_folder(folder), TOK)
    assert decoder.decode(spelled_log_probs("THE CAT SAT")).text(TOK) == "THE CAT SAT"


def test_rebuild_reuses_the_trained_lm(folder, caplog):
    before = (folder / "work" / "lm.arpa").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="asr.lm.build"):
        build_lm_folder(SENTENCES * 2, folder, TOK, BuildConfig(order=3, vocab_size=12), progress=False)
    assert "is up to date" in caplog.text
    assert (folder / "work" / "lm.arpa").stat().st_mtime_ns == before


def test_pruning_shrinks_the_lm(tmp_path):
    sizes = {}
    for name, config in [("full", BuildConfig(order=3)), ("pruned", BuildConfig(order=3, prune=1e-2))]:
        sizes[name] = build_lm_folder(SENTENCES + SENTENCES[:3], tmp_path / name, TOK, config, progress=False)
    assert sum(sizes["pruned"]["ngram_counts"][1:]) < sum(sizes["full"]["ngram_counts"][1:])
    assert sizes["pruned"]["ngram_counts"][0] == sizes["full"]["ngram_counts"][0]  # unigrams stay


def test_a_phone_lexicon_pronounces_words_cmudict_lacks_with_g2p(tmp_path):
    from asr.decoding.lexicon import read_lexicon
    from asr.text.phones import PhoneTokenizer

    tok = PhoneTokenizer()
    text = SENTENCES + ["THE ZEBU RAN", "A ZEBU SAT ON THE MAT"]  # ZEBU: not in CMUdict
    meta = build_lm_folder(text, tmp_path / "g2p", tok, BuildConfig(order=2), progress=False)
    assert meta["build"]["g2p"] is True
    lexicon = read_lexicon(tmp_path / "g2p" / "lexicon.txt.gz", tok)
    assert lexicon.entries["ZEBU"] == (("Z", "EH", "B", "UW"),)
    assert "ZEBU" in read_lm_info(tmp_path / "g2p" / "lm.arpa.gz").vocab
    build_lm_folder(text, tmp_path / "plain", tok, BuildConfig(order=2, g2p=False), progress=False)
    assert "ZEBU" not in read_lexicon(tmp_path / "plain" / "lexicon.txt.gz", tok).entries
    assert "ZEBU" not in read_lm_info(tmp_path / "plain" / "lm.arpa.gz").vocab  # <unk> in the LM


def test_token_lm_for_lexicon_free_decoding(tmp_path):
    meta = build_lm_folder(SENTENCES * 3, tmp_path, TOK, BuildConfig(order=5, units="tokens"), progress=False)
    assert meta["lexicon"] is None
    decoder = folder_decoder(read_lm_folder(tmp_path), TOK)
    assert decoder.mode == "lexicon-free"
    assert decoder.decode(spelled_log_probs("THE DOG RAN")).text(TOK) == "THE DOG RAN"


def test_folder_checks_name_the_file(folder, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    meta = json.loads((bad / "lm.json").read_text())
    (bad / "lm.json").write_text(json.dumps({**meta, "order": 4}))
    with pytest.raises(LMError, match=r"lm.arpa.gz: an LM of order 3, but .*lm.json says 4"):
        read_lm_folder(bad)
    (bad / "lm.json").write_text(json.dumps({**meta, "ngram_counts": [1, 2, 3]}))
    with pytest.raises(LMError, match=r"n-gram counts .* differ from the \[1, 2, 3\] recorded"):
        read_lm_folder(bad)
    (bad / "lm.json").write_text(json.dumps({**meta, "lexicon_words": 99}))
    with pytest.raises(LMError, match=r"lexicon.txt.gz: 12 words, but .*lm.json says 99"):
        folder_decoder(read_lm_folder(bad), TOK)
    (bad / "lm.json").write_text(json.dumps({**meta, "decoder": {"lm_wieght": 1}}))
    with pytest.raises(LMError, match=r"unknown decoder settings \['lm_wieght'\]"):
        read_lm_folder(bad)
    (bad / "lm.json").write_text(json.dumps(meta))
    from asr.text.phones import PhoneTokenizer

    with pytest.raises(LMError, match="made for a char tokenizer"):
        folder_decoder(read_lm_folder(bad), PhoneTokenizer())
    (bad / "lexicon.txt.gz").unlink()
    with pytest.raises(LMError, match="lexicon .* does not exist"):
        read_lm_folder(bad)
    with pytest.raises(LMError, match="has no lm.json"):
        read_lm_folder(tmp_path)


def test_build_config_checks():
    with pytest.raises(ValueError, match="order must be 1..6"):
        BuildConfig(order=7)
    with pytest.raises(ValueError, match="prune threshold"):
        BuildConfig(prune=0.0)


# -- what must never be LM text ----------------------------------------------------------------------------------------


def test_reserved_sentences_are_dropped_and_counted():
    config = TextConfig()
    reserved = Reserved(synth_configs=(config,))
    reserved.add(["GO FORWARD TEN METERS", "FRONT LEFT", "THE QUICK BROWN FOX JUMPS"], source="refs")
    candidates = [f"SENTENCE {w} IS HERE" for w in "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN".split() * 3]
    candidates = [f"{c} {w}" for c in candidates for w in "A B C D E F G H I J K L M N O P".split()]
    dev_like = next(s for s in candidates if split_of(s, config=config) != "train")
    kept = next(s for s in candidates if split_of(s, config=config) == "train")
    raw = [
        "Go forward ten meters, then stop.",  # contains a reference of 3+ words
        "Front left!",  # equals a short reference
        "The front left wheel",  # contains a short reference: kept
        dev_like.lower(),
        kept.lower(),
    ]
    stats: dict[str, int] = {}
    out = list(reserved.filter(((r, normalise_lm_sentence(r)) for r in raw), stats))
    assert out == ["THE FRONT LEFT WHEEL", kept]
    assert stats == {
        "contains a reserved sentence": 1,
        "equals a reserved sentence": 1,
        "synthetic dev/test split hash": 1,
    }


def test_numbers_become_words():
    assert normalise_lm_sentence("Go forward 10 meters, 2 times.") == "GO FORWARD TEN METERS TWO TIMES"


@pytest.mark.slow
def test_lm_text_from_the_debian_sources_has_no_dev_or_test_sentence(monkeypatch):
    """By the split hashes, and by an independent search of every word span for the dev/test pools' sentences
    and the bundled real-speech references."""
    config = TextConfig()
    monkeypatch.setattr(lm_text, "SYNTH_TEXT_CONFIGS", (config,))
    reserved = reserved_sentences(synth_configs=(config,))
    stats: dict[str, int] = {}
    sentences = list(lm_sentences(sources=["synth-train", "fortunes"], reserved=reserved, stats=stats))
    pools = load_sentences(config=config)
    assert len(sentences) > 0.98 * len(pools["train"]) + 20000
    assert {split_of(normalise(s), config=config) for s in sentences} == {"train"}
    held_out = {tuple(s.split()) for s in pools["dev"] + pools["test"]}
    real = json.loads("[" + ",".join(lm_text.BUNDLED_AUDIO.joinpath("real.jsonl").read_text().splitlines()) + "]")
    refs = {tuple(normalise_lm_sentence(r["text"]).split()) for r in real}
    held_out |= {r for r in refs if len(r) >= 3}
    lengths = {len(s) for s in held_out}
    for sentence in sentences:
        words = tuple(sentence.split())
        assert words not in refs
        for n in lengths:
            for i in range(len(words) - n + 1):
                assert words[i : i + n] not in held_out, sentence
    assert stats["synthetic dev/test split hash"] > 1000 and stats["contains a reserved sentence"] > 0


# -- the command -------------------------------------------------------------------------------------------------------


def test_asr_lm_build_and_lexicon_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(lm_text, "SYNTH_TEXT_CONFIGS", (TextConfig(),))
    text = tmp_path / "text.txt"
    text.write_text("\n".join(SENTENCES + ["Go forward ten meters."]) + "\n")
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text(json.dumps({"id": "x", "audio": "x.wav", "duration": 1.0, "text": "the dog ran away"}) + "\n")
    out = tmp_path / "lm"
    from asr.pipeline import save_asr_model
    from tests.asr.streaming.conftest import make_bundle

    model = ["--model", str(save_asr_model(tmp_path / "char.safetensors", make_bundle()))]  # whatever is bundled
    args = ["lm", "build", "--text", str(text), "--order", "2", "--out", str(out), "--exclude", str(manifest), *model]
    assert main(args + ["--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "equals a reserved sentence: 3" in printed  # GO FORWARD TEN METERS (twice) and THE DOG RAN AWAY
    meta = json.loads((out / "lm.json").read_text())
    assert meta["order"] == 2 and str(manifest) in meta["build"]["excluded"]["reserved_sentences"]
    assert "AWAY" not in read_lm_info(out / "lm.arpa.gz").vocab
    assert main(["lm", "lexicon", "--lm", str(out / "lm.arpa.gz"), "--out", str(tmp_path / "lex.txt"), *model]) == 0
    assert "CAT\tC A T" in (tmp_path / "lex.txt").read_text()
    assert main(["lm", "build", "--order", "2", "--out", str(out)]) == 2
    assert "give some text" in capsys.readouterr().err
