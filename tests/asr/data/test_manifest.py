import json
import math

import pytest

from asr.data.manifest import (
    PrepareReport,
    Utterance,
    check_utterances,
    read_manifest,
    update_summary,
    write_manifest,
)
from asr.data.sources import describe_source, load_utterances

from ._corpus_fakes import write_audio


def _utt(i: int, **kw) -> Utterance:
    base = dict(id=f"u{i}", audio=f"/a/u{i}.flac", duration=1.0 + i, text=f"WORD {i}", speaker="s")
    base.update(kw)
    return Utterance(**base)


def test_round_trip_keeps_every_field(tmp_path):
    utts = [
        _utt(0),
        _utt(1, offset=0.25, extra={"recording": "rec1", "n": 3}),
        _utt(2, audio="sph2pipe -f wav /x/y.wv1 |", text="ünïcode ok"),
    ]
    path = write_manifest(tmp_path / "m.jsonl", utts)
    assert read_manifest(path) == utts
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert set(first) == {"id", "audio", "duration", "text", "speaker"}  # unset offset/extra are omitted
    assert json.loads(lines[1])["offset"] == 0.25
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


def test_load_utterances_reads_a_manifest_as_is(tmp_path):
    utts = [_utt(0), _utt(1, offset=0.5)]
    path = write_manifest(tmp_path / "dev.jsonl", utts)
    assert describe_source(path) == "manifest"
    assert load_utterances(path) == utts


def test_write_is_atomic_on_failure(tmp_path):
    path = write_manifest(tmp_path / "m.jsonl", [_utt(0)])
    before = path.read_text()
    with pytest.raises(ValueError, match="duplicate ids.*'u0'"):
        write_manifest(path, [_utt(0), _utt(0)])
    assert path.read_text() == before


def test_read_names_duplicate_ids(tmp_path):
    path = tmp_path / "m.jsonl"
    rows = [_utt(0).to_json(), _utt(1).to_json(), _utt(0).to_json(), _utt(1).to_json(), _utt(2).to_json()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        ValueError, match=r"2 duplicate ids: 'u0' \(lines \[1, 3\]\), 'u1' \(lines \[2, 4\]\)"
    ):
        read_manifest(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "m.jsonl:2"),
        ('{"id": "x", "audio": "a.wav", "duration": 1, "text": "T"}', r"missing \['speaker'\]"),
        ('{"id": "x", "audio": "a.wav", "duration": 1, "text": "T", "speaker": "s", "durr": 2}', "unknown"),
        ('{"id": "x", "audio": "a.wav", "duration": 0, "text": "T", "speaker": "s"}', "duration"),
        ('{"id": "x y", "audio": "a.wav", "duration": 1, "text": "T", "speaker": "s"}', "whitespace"),
        ('{"id": "x", "audio": "a.wav", "duration": 1, "offset": -1, "text": "T", "speaker": "s"}', "offset"),
        ('{"id": "x", "audio": "a.wav", "duration": NaN, "text": "T", "speaker": "s"}', "duration"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(_utt(0).to_json()) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message) as e:
        read_manifest(path)
    assert "m.jsonl:2" in str(e.value)


def test_relative_audio_resolves_against_the_manifest_folder(tmp_path):
    sub = tmp_path / "corpus"
    sub.mkdir()
    (sub / "m.jsonl").write_text(
        json.dumps({"id": "a", "audio": "wav/a.wav", "duration": 1.0, "text": "A", "speaker": "s"})
        + "\n"
        + json.dumps({"id": "b", "audio": "cat wav/b.wav |", "duration": 1.0, "text": "B", "speaker": "s"})
        + "\n"
    )
    a, b = read_manifest(sub / "m.jsonl")
    assert a.audio == str(sub.resolve() / "wav/a.wav")
    assert b.audio == "cat wav/b.wav |"  # commands are left alone


def test_load_audio_cuts_the_segment(tmp_path):
    d = write_audio(tmp_path / "a.wav", 1.0)
    whole = Utterance(id="a", audio=str(tmp_path / "a.wav"), duration=d, text="A", speaker="s")
    seg = Utterance(id="b", audio=str(tmp_path / "a.wav"), duration=0.25, offset=0.5, text="A", speaker="s")
    x, y = whole.load_audio(), seg.load_audio()
    assert x.shape == (16000,) and y.shape == (4000,)
    assert float((x[8000:12000] - y).abs().max()) == 0.0


def test_check_utterances_reports_every_drop():
    report = PrepareReport(name="t", corpus="test", source="-")
    utts = [
        _utt(0, text="hello world"),
        _utt(0, text="again"),
        _utt(1, text="?!"),
        _utt(2, text="café 42"),
        _utt(3, text="DON'T"),
    ]
    kept = check_utterances(utts, report)
    assert [u.id for u in kept] == ["u0", "u2", "u3"]
    assert [(i.reason, i.item) for i in report.skipped] == [("duplicate_id", "u0"), ("empty_text", "u1")]
    assert [(i.reason, i.item) for i in report.flagged] == [("out_of_alphabet", "u2")]
    assert "['2', '4', 'É']" in report.flagged[0].detail
    strict = PrepareReport(name="t", corpus="test", source="-")
    kept = check_utterances(utts, strict, drop_out_of_alphabet=True)
    assert [u.id for u in kept] == ["u0", "u3"]
    assert ("out_of_alphabet", "u2") in [(i.reason, i.item) for i in strict.skipped]
    assert len(check_utterances(utts, PrepareReport("t", "test", "-"), alphabet=None)) == 3


def test_summary_merges_and_is_readable(tmp_path):
    r1 = PrepareReport(name="a", corpus="test", source="src-a")
    r1.read["audio files"] = 3
    r1.skip("missing_audio", "x1", "no file")
    u = [_utt(0, duration=1800.0), _utt(1, duration=1800.0)]
    update_summary(tmp_path, {"a": r1.to_json(u)})
    r2 = PrepareReport(name="b", corpus="test", source="src-b")
    r2.flag("out_of_alphabet", "y", "characters ['1']")
    update_summary(tmp_path, {"b": r2.to_json(u[:1])})
    summary = json.loads((tmp_path / "summary.json").read_text())["manifests"]
    assert list(summary) == ["a", "b"]
    assert summary["a"]["utterances"] == 2 and math.isclose(summary["a"]["hours"], 1.0)
    assert summary["a"]["skipped"] == {
        "count": 1,
        "by_reason": {"missing_audio": 1},
        "items": [{"reason": "missing_audio", "item": "x1", "detail": "no file"}],
    }
    assert summary["b"]["flagged"]["count"] == 1
    text = (tmp_path / "summary.txt").read_text()
    assert (
        "skipped missing_audio: 1" in text and "x1: no file" in text and "flagged out_of_alphabet: 1" in text
    )


def test_a_manifest_line_that_is_not_utf8_names_file_and_line(tmp_path):
    """(issue 15, defect 5)"""
    path = tmp_path / "m.jsonl"
    path.write_bytes((json.dumps(_utt(0).to_json()) + "\n").encode() + b'{"id": "x", "text": "CAF\xc9"}\n')
    with pytest.raises(ValueError, match=r"m.jsonl:2: .*not UTF-8.*0xc9"):
        read_manifest(path)


@pytest.mark.parametrize("content", ["", "\n  \n\t\n"], ids=["empty", "blank-lines"])
def test_an_empty_manifest_is_a_clear_error_where_utterances_are_needed(tmp_path, content):
    """(issue 15, defect 9) read_manifest reads it as it is (no utterances); load_utterances, which every command
    uses for its data, refuses it naming the file."""
    path = tmp_path / "m.jsonl"
    path.write_text(content)
    assert read_manifest(path) == []
    with pytest.raises(ValueError, match=r"m.jsonl.* holds no utterances"):
        load_utterances(path)
