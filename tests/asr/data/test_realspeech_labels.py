"""asr.data.realspeech_labels: FLAC conversion, the resumable label caches, the agreement rule and the choice of
reference."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import soundfile as sf

from asr.data.realspeech_labels import (
    HAMA_MAX_PER,
    RECOGNIZERS,
    SEED_DIR,
    LabelCache,
    PseudoLabelGate,
    agree,
    choose_reference,
    convert_clip,
    load_converted,
    phone_agreement,
    read_labels,
    write_seed,
)
from asr.data.realspeech_sources import SourceClip

from ._realspeech_fakes import FakeRecognizer, ogg_bytes, sphinx_reading, whisper_reading


def _clip(**kw) -> SourceClip:
    return SourceClip(**({"id": "c1", "package": "hedgewars-data", "group": "hedgewars/Pirate", "origin": "/x"} | kw))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("PALM TREE", "PALMTREE", True),
        ("YOU'LL REGRET THAT", "YOULLREGRETTHAT", True),
        ("TAKE COVER", "TAKE COVER", True),
        ("TAKE COVER", "TAKE COVERS", False),
        ("I NEED HELP", "NEED HELP", False),
        ("", "", False),  # nothing heard twice is not agreement
        ("HELLO", "", False),
    ],
)
def test_agreement_is_same_letters_word_breaks_and_apostrophes_aside(a, b, same):
    assert agree(a, b) is same and agree(b, a) is same


def test_reference_rules_in_order():
    w = whisper_reading("You'll regret that!", "YOU'LL REGRET THAT")
    # 1. metadata wins, whatever the recognizers say
    d = choose_reference(_clip(reference="palm tree", reference_source="file name"), w, sphinx_reading("PALM"))
    assert (d.text, d.kind, d.reliable) == ("PALM TREE", "metadata", True)
    # 2. a recognizer agrees with the developer's label: that recognizer's text
    d = choose_reference(_clip(hint="Youllregretthat"), w, sphinx_reading("YOU'LL REGRET THAT"))
    assert (d.text, d.kind, d.reliable) == ("YOU'LL REGRET THAT", "whisper+hint", True)
    d = choose_reference(
        _clip(hint="Take cover"), whisper_reading("Take a cover", "TAKE A COVER"), sphinx_reading("TAKE COVER")
    )
    assert (d.text, d.kind) == ("TAKE COVER", "pocketsphinx+hint")
    # numbers in a hint are spelled like Whisper's: "5min" agrees with "five min"
    d = choose_reference(_clip(hint="5 min"), whisper_reading("5 min.", "FIVE MIN"), None)
    assert d.kind == "whisper+hint"
    # 3. the two recognizers agree: Whisper's text
    d = choose_reference(_clip(hint="Comeonthen"), w, sphinx_reading("YOU'LL REGRET THAT"))
    assert (d.text, d.kind, d.reliable) == ("YOU'LL REGRET THAT", "whisper+pocketsphinx", True)
    # two recognizers agreeing on one or two words: kept, but training-only
    d = choose_reference(_clip(), whisper_reading("Ten.", "TEN"), sphinx_reading("TEN"))
    assert (d.text, d.kind, d.reliable) == ("TEN", "whisper+pocketsphinx", False)
    d = choose_reference(_clip(), whisper_reading("Two can.", "TWO CAN"), sphinx_reading("TWO CAN"))
    assert (d.kind, d.reliable) == ("whisper+pocketsphinx", False)
    d = choose_reference(_clip(hint="Incoming"), whisper_reading("Incoming!", "INCOMING"), sphinx_reading("INCOMING"))
    assert d.reliable  # one word, but the two recognizers agree with the clip's own label
    # 4. Whisper alone: a training-only pseudo-label when confident
    d = choose_reference(_clip(), w, sphinx_reading("YOU WILL REGRET"))
    assert (d.text, d.kind, d.reliable) == ("YOU'LL REGRET THAT", "whisper", False)


@pytest.mark.parametrize(
    ("reading", "kind", "detail"),
    [
        (whisper_reading(" . . .", ""), "no_speech", "no words"),
        (whisper_reading("ha ha ha ha", "HA HA HA HA", ratio=9.5), "no_speech", "repetition loop"),
        (whisper_reading("You", "YOU", no_speech_prob=0.95), "no_speech", "no_speech_prob"),
        (whisper_reading("Code.", "CODE", avg_logprob=-0.9), "unconfident_pseudo_label", "avg_logprob -0.9"),
        (whisper_reading("Code.", "CODE", avg_logprob=-0.1), "unconfident_pseudo_label", "avg_logprob -0.1"),
    ],
)
def test_no_reference_when_whisper_hears_no_speech_or_is_unsure(reading, kind, detail):
    d = choose_reference(_clip(hint="Coat"), reading, sphinx_reading("GOAT"))
    assert d.text is None and d.kind == kind and detail in d.detail and not d.reliable


def test_phone_agreement_is_the_readings_phone_error_against_the_texts_phones():
    assert phone_agreement("SEE", "S IY") == 0.0  # CMUdict: SEE = S IY; so is the letter C
    assert phone_agreement("COAT", "K OW D") == pytest.approx(1 / 3)  # one substitution in three phones
    assert phone_agreement("COAT", "K OW T S") == pytest.approx(1 / 3)  # one insertion
    assert phone_agreement("COAT", "") == 1.0
    assert phone_agreement("", "K OW T") is None
    assert phone_agreement("ZQXWV COAT", "K OW T") is None  # a word CMUdict lacks: nothing to compare


def hama_reading(phones: str) -> dict:
    return {"ipa": "-", "phones": phones, "cpu_seconds": 0.1}


def test_rule_5_hama_confirms_a_text_at_the_phone_level():
    unsure = whisper_reading("Code.", "CODE", avg_logprob=-0.9)
    # the closest candidate within HAMA_MAX_PER wins: the clip's label over Whisper's near miss
    d = choose_reference(_clip(hint="Coat"), unsure, sphinx_reading("GOAT"), hama=hama_reading("K OW T"))
    assert (d.text, d.kind, d.reliable) == ("COAT", "hint+hama", False)
    assert "K OW T" in d.detail and "0.000" in d.detail
    d = choose_reference(_clip(), unsure, sphinx_reading("GOAT"), hama=hama_reading("K OW D"))
    assert (d.text, d.kind) == ("CODE", "whisper+hama")
    d = choose_reference(_clip(), unsure, sphinx_reading("GOAT"), hama=hama_reading("G OW T"))
    assert (d.text, d.kind) == ("GOAT", "pocketsphinx+hama")
    # one phone in three is over the threshold: no label
    assert HAMA_MAX_PER < 1 / 3
    d = choose_reference(_clip(), unsure, None, hama=hama_reading("K AE D"))
    assert (d.text, d.kind) == (None, "unconfident_pseudo_label")
    # rule 5 only decides what rules 1-4 leave unlabelled and Whisper heard speech in
    sure = whisper_reading("You'll regret that!", "YOU'LL REGRET THAT")
    d = choose_reference(_clip(), sure, None, hama=hama_reading("B AE N AE N AH"))
    assert d.kind == "whisper"
    d = choose_reference(_clip(reference="banana", reference_source="x"), unsure, None, hama=hama_reading("K OW D"))
    assert (d.text, d.kind) == ("BANANA", "metadata")
    d = choose_reference(_clip(), whisper_reading("", ""), None, hama=hama_reading("HH AH"))
    assert (d.text, d.kind) == (None, "no_speech")


def test_pseudo_label_gate_thresholds():
    gate = PseudoLabelGate(min_avg_logprob=-0.5, max_no_speech_prob=0.5, max_compression_ratio=2.4, min_words=3)
    three = "A B C"
    assert gate.passes(whisper_reading("a b c", three, avg_logprob=-0.5))
    assert not gate.passes(whisper_reading("a b c", three, avg_logprob=-0.51))
    assert not gate.passes(whisper_reading("a b c", three, no_speech_prob=0.51))
    assert not gate.passes(whisper_reading("a b c", three, ratio=2.5))
    assert not gate.passes(whisper_reading("", "", avg_logprob=-0.1))
    assert not gate.passes(whisper_reading("", three) | {"avg_logprob": None})
    short = whisper_reading("a b", "A B", avg_logprob=-0.1)
    assert gate.confident(short) and not gate.passes(short)  # confident, too short


def test_conversion_to_16k_mono_flac_once(tmp_path):
    src = tmp_path / "in.ogg"
    src.write_bytes(ogg_bytes(0.5, 44100, seed=3, channels=2))
    clip = SourceClip("kl-a", "klettres-data", "klettres/en", str(src))
    out = convert_clip(clip, tmp_path / "audio")
    assert out == tmp_path / "audio/klettres-data/kl-a.flac"
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert info.frames == pytest.approx(0.5 * 16000, abs=2)
    x, sha = load_converted(out)
    assert x.dtype == np.float32 and 0.2 < np.abs(x).max() <= 1.0 and len(sha) == 40
    mtime = out.stat().st_mtime_ns
    assert convert_clip(clip, tmp_path / "audio") == out and out.stat().st_mtime_ns == mtime  # reused


def _three_clips(tmp_path):
    files = []
    for i in range(3):
        src = tmp_path / f"{i}.ogg"
        src.write_bytes(ogg_bytes(0.3, 22050, seed=i))
        files.append((f"c{i}", convert_clip(SourceClip(f"c{i}", "klettres-data", "g", str(src)), tmp_path / "a")))
    return files


def test_labels_are_cached_and_resumed(tmp_path):
    files = _three_clips(tmp_path)
    fake = FakeRecognizer("whisper", {}, whisper_reading("hi", "HI"))
    got = read_labels(files[:2], tmp_path / "labels", recognizers={"whisper": fake.entry()}, progress=False)
    assert set(got["whisper"]) == {"c0", "c1"} and (fake.loads, fake.calls) == (1, 2)
    # a killed run leaves half a line: dropped with a warning, the rest reused; only the new clip is read
    with (tmp_path / "labels/whisper.jsonl").open("a") as f:
        f.write('{"id": "c2", "sha1"')
    got = read_labels(files, tmp_path / "labels", recognizers={"whisper": fake.entry()}, progress=False)
    assert set(got["whisper"]) == {"c0", "c1", "c2"} and (fake.loads, fake.calls) == (2, 3)
    got = read_labels(files, tmp_path / "labels", recognizers={"whisper": fake.entry()}, progress=False)
    assert (fake.loads, fake.calls) == (2, 3)  # all cached: no model loaded
    # other settings (another recognizer version): read again
    other = FakeRecognizer("whisper-v2", {}, whisper_reading("ho", "HO"))
    got = read_labels(files, tmp_path / "labels", recognizers={"whisper": other.entry()}, progress=False)
    assert other.calls == 3 and got["whisper"]["c0"]["normalized"] == "HO"
    # changed audio (same id): read again
    src = tmp_path / "0.ogg"
    src.write_bytes(ogg_bytes(0.3, 22050, seed=9))
    files[0][1].unlink()
    convert_clip(SourceClip("c0", "klettres-data", "g", str(src)), tmp_path / "a")
    read_labels(files, tmp_path / "labels", recognizers={"whisper": fake.entry()}, progress=False)
    assert fake.calls == 4


def test_committed_readings_spare_a_new_machine_the_recognizers(tmp_path):
    files = _three_clips(tmp_path)
    fake = FakeRecognizer("whisper", {}, whisper_reading("hi", "HI"))
    made = read_labels(files[:2], tmp_path / "old", recognizers={"whisper": fake.entry()}, progress=False,
                       seed_dir=None)  # fmt: skip
    assert write_seed(tmp_path / "old", tmp_path / "seed", {"whisper": fake.entry()}) == {"whisper": 2}
    first = (tmp_path / "seed/whisper.jsonl.gz").read_bytes()
    write_seed(tmp_path / "old", tmp_path / "seed", {"whisper": fake.entry()})
    assert (tmp_path / "seed/whisper.jsonl.gz").read_bytes() == first  # same readings, same bytes
    # a new machine (no cache): the seeded clips are not read, the third one is
    fake.loads = fake.calls = 0
    got = read_labels(files, tmp_path / "new", recognizers={"whisper": fake.entry()}, progress=False,
                      seed_dir=tmp_path / "seed")  # fmt: skip
    assert got["whisper"]["c0"] == made["whisper"]["c0"] and (fake.loads, fake.calls) == (1, 1)
    assert [json.loads(line)["id"] for line in (tmp_path / "new/whisper.jsonl").read_text().splitlines()] == ["c2"]
    # seeding again from that machine keeps the seed's readings and adds the new one
    assert write_seed(tmp_path / "new", tmp_path / "seed", {"whisper": fake.entry()}) == {"whisper": 3}
    # a seed made with other settings (another version) is not used
    other = FakeRecognizer("whisper-v2", {}, whisper_reading("ho", "HO"))
    got = read_labels(files, tmp_path / "newer", recognizers={"whisper": other.entry()}, progress=False,
                      seed_dir=tmp_path / "seed")  # fmt: skip
    assert other.calls == 3 and got["whisper"]["c0"]["normalized"] == "HO"


def test_a_broken_seed_is_an_error_naming_it(tmp_path):
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed/whisper.jsonl.gz").write_bytes(b"not gzip")
    fake = FakeRecognizer("whisper", {}, whisper_reading("hi", "HI"))
    with pytest.raises(ValueError, match=r"whisper.jsonl.gz: not a gzipped"):
        read_labels([], tmp_path / "labels", recognizers={"whisper": fake.entry()}, progress=False,
                    seed_dir=tmp_path / "seed")  # fmt: skip
    (tmp_path / "seed/whisper.jsonl.gz").write_bytes(gzip.compress(b'{"id": "c0"}\n{"id": broken\n'))
    with pytest.raises(ValueError, match=r"whisper.jsonl.gz:1: not a reading"):
        LabelCache(tmp_path / "labels/whisper.jsonl", {"fake": "whisper"}, seed=tmp_path / "seed/whisper.jsonl.gz")
    with pytest.raises(ValueError, match="no readings with whisper's current settings"):
        write_seed(tmp_path / "labels", tmp_path / "out", {"whisper": fake.entry()})


@pytest.mark.parametrize("name", sorted(RECOGNIZERS))
def test_the_committed_readings_match_the_recognizers_installed(name):
    """Every committed reading was made with the settings and versions installed now: after an upgrade the seed
    must be made again (tools/seed_realspeech_labels.py), or every new machine reads all clips again."""
    seed = SEED_DIR / f"{name}.jsonl.gz"
    assert seed.is_file(), f"{seed} is missing: run tools/seed_realspeech_labels.py after asr prepare realspeech"
    rows = [json.loads(line) for line in gzip.decompress(seed.read_bytes()).decode().splitlines()]
    setup = RECOGNIZERS[name][0]()
    assert len(rows) > 2000 and all(r["setup"] == setup for r in rows)
    assert len({(r["id"], r["sha1"]) for r in rows}) == len(rows)


def test_a_corrupt_cache_line_is_an_error_naming_it(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/whisper.jsonl").write_text('{"id": broken\n' + json.dumps({"id": "x"}) + "\n")
    fake = FakeRecognizer("whisper", {}, whisper_reading("hi", "HI"))
    with pytest.raises(ValueError, match=r"whisper.jsonl:1: not JSON"):
        read_labels([], tmp_path / "labels", recognizers={"whisper": fake.entry()}, progress=False)


def test_a_recognizer_text_outside_the_alphabet_is_not_a_reference():
    d = choose_reference(_clip(hint="Cafe"), whisper_reading("Café!", "CAFÉ"), sphinx_reading("CAFÉ"))
    assert (d.text, d.kind) == (None, "out_of_alphabet") and "CAFÉ" in d.detail
