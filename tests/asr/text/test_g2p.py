"""asr.text.g2p: espeak-ng's pronunciations mapped onto CMUdict's phones, for the words CMUdict lacks."""

from __future__ import annotations

import random
import re

import jiwer
import pytest

from asr.decoding.lexicon import _cmudict_all, spell_words
from asr.text.g2p import ESPEAK_TO_ARPABET, G2PError, _to_arpabet, espeak_pronunciations
from asr.text.phones import PHONES, PhoneTokenizer


def test_the_table_maps_onto_the_39_phones():
    assert {p for v in ESPEAK_TO_ARPABET.values() for p in v} <= set(PHONES)


def test_a_sample_of_cmudict_is_mostly_pronounced_as_cmudict_does():
    # espeak-ng against CMUdict on words CMUdict has: the best variant, scored as phone error rate
    words = [w for w in _cmudict_all() if re.fullmatch(r"[A-Z]+", w)]
    sample = random.Random(0).sample(sorted(words), 400)
    spelled = espeak_pronunciations(sample)
    assert list(spelled) == sample  # one pronunciation per word, in order
    errors = total = exact = 0
    for w in sample:
        hyp = " ".join(spelled[w])
        scores = [jiwer.process_words(" ".join(p), hyp) for p in _cmudict_all()[w]]
        best = min(scores, key=lambda o: o.substitutions + o.deletions + o.insertions)
        e = best.substitutions + best.deletions + best.insertions
        errors, total, exact = errors + e, total + len(best.references[0]), exact + (e == 0)
    assert errors / total < 0.15 and exact / len(sample) > 0.45, (errors / total, exact / len(sample))


def test_words_cmudict_lacks_are_spelled_only_with_g2p():
    tok = PhoneTokenizer()
    words = ["ZEBU", "MOONWALKER", "CAT", "NAÏVE"]  # not in CMUdict: ZEBU, MOONWALKER, NAÏVE
    plain, missing = spell_words(words, tok)
    assert set(missing) == {"ZEBU", "MOONWALKER", "NAÏVE"} and "CAT" in plain.entries
    lexicon, missing = spell_words(words, tok, g2p=True)
    assert missing == ["NAÏVE"] and lexicon.entries["ZEBU"] == (("Z", "EH", "B", "UW"),)
    assert lexicon.entries["MOONWALKER"] == (("M", "UW", "N", "W", "AO", "K", "ER"),)
    assert lexicon.entries["CAT"] == plain.entries["CAT"]  # CMUdict first: G2P only spells what it lacks


def test_bad_input_and_unknown_phonemes_are_errors_naming_the_word(monkeypatch):
    with pytest.raises(G2PError, match="normalised words"):
        espeak_pronunciations(["hello world"])
    with pytest.raises(G2PError, match="phoneme 'Q9' has no ARPAbet mapping"):
        _to_arpabet("ODD", "'0_Q9_d")
    assert espeak_pronunciations([]) == {}
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(G2PError, match="espeak-ng is not installed"):
        espeak_pronunciations(["ZEBU"])
