"""Sentence sources, normalisation and the train/dev/test sentence split."""

from __future__ import annotations

import re

import pytest

from asr.synth.text import (
    SPLITS,
    TextConfig,
    _clean,
    _cmudict_words,
    _fortune_sentences,
    load_sentences,
    normalise,
    split_of,
)

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
