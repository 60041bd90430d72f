import pytest

from asr.data.librispeech import find_librispeech_subsets, is_librispeech_subset, read_librispeech_subset
from asr.data.manifest import PrepareReport, check_utterances
from asr.data.sources import describe_source, load_utterances

from ._corpus_fakes import librispeech_subset, write_audio


def _reasons(issues):
    return sorted((i.reason, i.item.rsplit("/", 1)[-1]) for i in issues)


def test_subset_every_field_and_every_problem(tmp_path):
    good = librispeech_subset(tmp_path)
    sub = tmp_path / "dev-clean"
    report = PrepareReport(name="dev-clean", corpus="librispeech", source=str(sub))
    utts = check_utterances(read_librispeech_subset(sub, report, jobs=2), report)

    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == sorted(good)
    u = by_id["19-198-0001"]
    assert u.audio == str((sub / "19/198/19-198-0001.flac").resolve())
    assert u.offset is None
    assert u.duration == pytest.approx(good["19-198-0001"], abs=1e-6)
    assert u.text == "CATHERINE MORLAND'S FATHER"  # whitespace collapsed
    assert u.speaker == "19" and u.extra == {"chapter": "198"}
    assert by_id["19-198-0000"].text == "NORTHANGER ABBEY"  # the first of the two lines is kept
    assert by_id["26-495-0000"].audio.endswith(".wav") and by_id["26-495-0000"].speaker == "26"
    for utt_id, d in good.items():
        assert by_id[utt_id].duration == pytest.approx(d, abs=1e-6)

    assert _reasons(report.skipped) == [
        ("duplicate_id", "19-198-0000"),
        ("empty_text", "26-495-0002"),
        ("missing_audio", "19-198-0003"),
        ("missing_transcript", "19-198-0002"),
        ("missing_transcript", "stray.flac"),
        ("unreadable_audio", "26-496-0000"),
    ]
    assert _reasons(report.flagged) == [("out_of_alphabet", "26-495-0001")]
    assert report.read["audio files"] == 8 and report.read["transcript files"] == 3
    assert report.read["transcript lines"] == 8


def test_root_with_several_subsets(tmp_path):
    root = tmp_path / "LibriSpeech"
    librispeech_subset(root, "dev-clean")
    write_audio(root / "test-clean/61/70968/61-70968-0000.flac", 0.3)
    (root / "test-clean/61/70968/61-70968.trans.txt").write_text("61-70968-0000 HE BEGAN\n")
    (root / "SPEAKERS.TXT").write_text("; not a subset\n")
    assert [p.name for p in find_librispeech_subsets(root)] == ["dev-clean", "test-clean"]
    assert find_librispeech_subsets(root / "test-clean") == [root / "test-clean"]
    assert not is_librispeech_subset(root)
    with pytest.raises(ValueError, match="neither a LibriSpeech subset"):
        find_librispeech_subsets(tmp_path / "LibriSpeech" / "dev-clean" / "19")


def test_load_utterances_resolves_each_kind(tmp_path):
    root = tmp_path / "LibriSpeech"
    good = librispeech_subset(root, "dev-clean")
    write_audio(root / "test-clean/61/70968/61-70968-0000.flac", 0.3)
    (root / "test-clean/61/70968/61-70968.trans.txt").write_text("61-70968-0000 HE BEGAN\n")
    assert describe_source(root / "dev-clean") == "librispeech"
    utts = load_utterances(root / "dev-clean")
    assert sorted(u.id for u in utts) == sorted(good)  # the out-of-alphabet one is kept: tokenizers decide
    with pytest.raises(ValueError, match=r"several LibriSpeech subsets \['dev-clean', 'test-clean'\]"):
        load_utterances(root)
    single = tmp_path / "single"
    librispeech_subset(single, "dev-other")
    assert sorted(u.id for u in load_utterances(single)) == sorted(good)  # a root with one subset: that one
    with pytest.raises(ValueError, match="does not exist"):
        load_utterances(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a manifest"):
        load_utterances(tmp_path / "empty")


def test_a_transcript_line_that_is_not_utf8_is_skipped_and_named(tmp_path):
    """(issue 15, defect 5) The bytes are not replaced and the utterance kept with another transcript: its line is
    skipped with the file, line and byte named; the other lines of the file, non-ASCII UTF-8 included, are kept."""
    sub = tmp_path / "dev-clean"
    for i in range(3):
        write_audio(sub / f"7/8/7-8-000{i}.flac", 0.3)
    (sub / "7/8/7-8.trans.txt").write_bytes(b"7-8-0000 NAIVE CAF\xc3\x89\n7-8-0001 CAF\xc9 AU LAIT\n7-8-0002 FINE\n")
    report = PrepareReport(name="dev-clean", corpus="librispeech", source=str(sub))
    utts = read_librispeech_subset(sub, report, jobs=1)
    assert {u.id: u.text for u in utts} == {"7-8-0000": "NAIVE CAF\u00c9", "7-8-0002": "FINE"}
    assert [(i.reason, i.item) for i in report.skipped] == [("transcript_not_utf8", "7-8-0001")]
    assert "7-8.trans.txt:2" in report.skipped[0].detail and "0xc9" in report.skipped[0].detail
