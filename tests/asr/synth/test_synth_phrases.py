"""Generated sentences (asr.synth.phrases): numbers said as words, every word in CMUdict, deterministic draws."""

from __future__ import annotations

import random
import re

import pytest

from asr.synth import phrases
from asr.synth.text import _cmudict_words

SPOKEN = re.compile(r"[a-z']+( [a-z']+)*")


@pytest.fixture(scope="module")
def lexicon():
    return _cmudict_words()


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: phrases.number_words(7), "seven"),
        (lambda: phrases.number_words(115), "one hundred and fifteen"),
        (lambda: phrases.number_words(115, american=True), "one hundred fifteen"),
        (lambda: phrases.number_words(1234), "one thousand two hundred and thirty four"),
        (lambda: phrases.number_words(20_000), "twenty thousand"),
        (lambda: phrases.ordinal_words(21), "twenty first"),
        (lambda: phrases.year_words(1999), "nineteen ninety nine"),
        (lambda: phrases.year_words(2005), "two thousand and five"),
        (lambda: phrases.digit_words("29340"), "two nine three four zero"),
        (lambda: phrases.digit_words("5550"), "five five five zero"),
        (lambda: phrases.digit_words("5550", zero="oh"), "five five five oh"),
    ],
)
def test_numbers_are_said_as_words(call, expected):
    assert call() == expected


def test_digit_words_refuses_other_characters():
    with pytest.raises(ValueError, match="digits only"):
        phrases.digit_words("12a4")


def test_every_template_word_and_number_word_is_in_cmudict(lexicon):
    words = phrases.template_words()
    assert {"turn", "timer", "thermostat", "zulu", "what's"} <= words  # the tables are read, not an empty set
    missing = sorted(w for w in words if w.upper() not in lexicon)
    assert not missing, missing
    rng = random.Random(0)
    numbers = [*range(0, 1200), *(rng.randint(1200, 2_000_000) for _ in range(3000))]
    said = [phrases.number_words(n, american=n % 2 == 0) for n in numbers]
    said += [phrases.ordinal_words(n) for n in range(1, 101)]
    said += [phrases.year_words(y) for y in range(1066, 2040)]
    number_vocabulary = {w for s in said for w in s.split()}
    assert {"hundred", "thousand", "million", "and", "twelfth", "ninety"} <= number_vocabulary
    missing = sorted(w for w in number_vocabulary if w.upper() not in lexicon)
    assert not missing, missing


@pytest.mark.parametrize("source", phrases.GENERATED_SOURCES)
def test_sources_are_deterministic_distinct_spoken_words(source, lexicon):
    many = phrases.generate(source, limit=400)
    assert len(many) == len(set(many)) == 400
    assert many == phrases.generate(source, limit=400)
    assert phrases.generate(source, limit=50) == many[:50]  # a larger limit extends a smaller one
    for sentence in many:
        assert SPOKEN.fullmatch(sentence), sentence  # no digits, no punctuation, single spaces
        assert all(w.upper() in lexicon for w in sentence.split()), sentence


def test_sources_say_what_their_names_promise():
    by_source = {s: phrases.generate(s, limit=3000) for s in phrases.GENERATED_SOURCES}
    digit_words = set(phrases.digit_words("0123456789").split()) | {"oh"}
    # digit strings: runs of at least three digit words
    assert sum(1 for s in by_source["digits"] if len([w for w in s.split() if w in digit_words]) >= 3) > 2500
    assert any(" oh " in f" {s} " for s in by_source["digits"]) and any("double" in s for s in by_source["digits"])
    times = " | ".join(by_source["times"])
    for said in ("o'clock", "half past", "quarter to", "quarter past", " oh five", "noon", "midnight"):
        assert said in times, said
    dates = " | ".join(by_source["dates"])
    assert "of march" in dates and "nineteen" in dates and "twenty first" in dates
    numbers = " | ".join(by_source["numbers"])
    assert "hundred" in numbers and "dollars" in numbers and "percent" in numbers and "point" in numbers
    letters = set(by_source["letters"])
    assert {chr(c) for c in range(ord("a"), ord("z") + 1)} <= letters  # every letter alone
    assert {"c a t", "alpha", "x ray"} <= letters  # a spelled word, the spelling alphabet
    assert any(len(s.split()) >= 4 and all(len(w) == 1 for w in s.split()) for s in letters)
    short = set(by_source["phrases"])
    assert {"yes", "no", "stop", "thank you", "excuse me"} <= short
    assert max(len(s.split()) for s in short) <= 4
    commands = set(by_source["commands"])
    assert any(s.startswith("turn left at the") for s in commands)
    assert any(s.startswith("set a timer for") for s in commands)
    assert any(s.startswith("call ") and " at " in s for s in commands)
    assert any(s.startswith("go forward ") and s.endswith(" meters") for s in commands)
    questions = by_source["questions"]
    starts = {"what", "what's", "where", "when", "why", "how", "who", "whose", "which"}
    starts |= {"is", "are", "can", "could", "will", "would", "do", "did", "have", "shall", "should"}
    assert all(q.split()[0] in starts for q in questions), [q for q in questions if q.split()[0] not in starts]


def test_templates_can_say_a_reference_sentence():
    """'go forward ten meters' (the real clip goforward.raw) is one of the navigation template's sentences: the
    text module's exclusion list keeps it out of training (tests/asr/synth/test_synth_text.py)."""
    rng = random.Random(1)
    draws = (phrases._fill("go {dir} {dist} {unit_len}", rng) for _ in range(60_000))  # ~1 in 8000 says it
    assert "go forward ten meters" in draws


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="unknown generated source"):
        phrases.generate("poems", limit=3)
    with pytest.raises(ValueError, match="limit"):
        phrases.generate("digits", limit=0)
    with pytest.raises(ValueError, match="unknown slot"):
        phrases._fill("turn {sideways}", random.Random(0))
