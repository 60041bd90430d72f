import pytest

from asr.audio import ALLOW_PIPES_ENV
from asr.data.kaldi import is_kaldi_dir, read_kaldi_dir
from asr.data.manifest import PrepareReport, check_utterances
from asr.data.sources import describe_source, load_utterances

from ._corpus_fakes import kaldi_dir_plain, kaldi_dir_segments


@pytest.fixture(autouse=True)
def _pipes_allowed(monkeypatch):
    """The fakes' wav.scp files hold pipe commands: allowed here, as 'asr prepare kaldi --allow-pipes' does."""
    monkeypatch.setenv(ALLOW_PIPES_ENV, "1")


def _report():
    return PrepareReport(name="train", corpus="kaldi", source="-")


def test_segments_pipes_and_every_problem(tmp_path):
    data, keep = kaldi_dir_segments(tmp_path)
    assert is_kaldi_dir(data)
    report = _report()
    utts = check_utterances(read_kaldi_dir(data, report, audio_root=tmp_path, jobs=2), report)
    by_id = {u.id: u for u in utts}
    assert sorted(by_id) == sorted(keep)
    for utt, (audio, offset, duration) in keep.items():
        u = by_id[utt]
        assert u.audio == audio
        assert u.offset == pytest.approx(offset)
        assert u.duration == pytest.approx(duration, abs=1e-6)
    a = by_id["spkA-rec1-a"]
    assert (a.text, a.speaker, a.extra) == ("HELLO WORLD", "spkA", {"recording": "rec1"})
    assert (
        by_id["spkA-rec1-b"].text == "good morning"
    )  # plain text format: kept as written (spaces collapsed)
    assert by_id["spkB-rec2-a"].text == "<NOISE> ,COMMA IS SPOKEN"
    assert by_id["spkB-rec2-a"].speaker == "spkB-rec2-a"  # not in utt2spk: its own speaker, flagged

    skipped = sorted((i.reason, i.item.split(":")[0].rsplit("/", 1)[-1]) for i in report.skipped)
    assert skipped == [
        ("bad_line", "wav.scp"),  # "rec7" without a value
        ("bad_segment", "spkC-bad"),
        ("duplicate_id", "spkA-rec1-a"),
        ("missing_audio", "spkC-missing"),
        ("missing_audio", "spkC-nope"),
        ("missing_audio", "spkC-nosegment"),
        ("missing_transcript", "spkC-notext"),
        ("unreadable_audio", "spkB-rec3-a"),  # "false |" had to be run for its length (end -1)
        ("unreadable_audio", "spkE-noprog"),  # the pipe's program is not installed
        ("unsupported_audio", "spkB-rec4-a"),
        ("unused_recording", "rec9"),
    ]
    details = {i.item: i.detail for i in report.skipped}
    assert "exit code 1" in details["spkB-rec3-a"] and "feats.ark:1234" in details["spkB-rec4-a"]
    assert "missing.wav" in details["spkC-missing"]
    assert "'no-such-program-xyz' not found on PATH" in details["spkE-noprog"]
    assert sorted((i.reason, i.item) for i in report.flagged) == [
        ("missing_speaker", "spkB-rec2-a"),
        ("missing_speaker", "spkD-rel"),
    ]
    # The pipe's audio really decodes to the segment.
    x = by_id["spkB-rec2-a"].load_audio()
    assert x.shape[0] == round(by_id["spkB-rec2-a"].duration * 16000)


def test_wsj_text_format(tmp_path):
    data, _ = kaldi_dir_segments(tmp_path)
    report = _report()
    utts = {u.id: u for u in read_kaldi_dir(data, report, audio_root=tmp_path, text_format="wsj")}
    u = utts["spkB-rec2-a"]
    assert u.text == "COMMA IS SPOKEN"
    assert u.extra == {"kaldi_text": "<NOISE> ,COMMA IS SPOKEN", "recording": "rec2"}
    with pytest.raises(ValueError, match="text_format"):
        read_kaldi_dir(data, _report(), text_format="espnet")


def test_no_segments_utt2dur_and_durations_from_audio(tmp_path):
    data, keep = kaldi_dir_plain(tmp_path)
    report = _report()
    utts = {u.id: u for u in read_kaldi_dir(data, report)}
    assert sorted(utts) == sorted(keep)
    for utt, (audio, duration) in keep.items():
        assert utts[utt].audio == audio
        assert utts[utt].offset is None and utts[utt].extra == {}
        assert utts[utt].duration == pytest.approx(duration, abs=1e-6)
        assert utts[utt].speaker == utt
    assert [(i.reason, i.item) for i in report.skipped] == [("unreadable_audio", "u3")]
    assert any("no utt2spk" in n for n in report.notes)
    # sources: a Kaldi dir is recognised and read the same way.
    assert describe_source(data) == "kaldi"
    assert sorted(u.id for u in load_utterances(data)) == sorted(keep)


def test_missing_required_files(tmp_path):
    (tmp_path / "wav.scp").write_text("a /x.wav\n")
    with pytest.raises(ValueError, match="has no 'text' file"):
        read_kaldi_dir(tmp_path, _report())


def test_a_text_line_that_is_not_utf8_is_skipped_and_named(tmp_path):
    data, _ = kaldi_dir_segments(tmp_path)
    text = (data / "text").read_bytes()
    (data / "text").write_bytes(text + b"spkZ-latin1 CAF\xc9\n")
    report = _report()
    read_kaldi_dir(data, report, audio_root=tmp_path, jobs=2)
    bad = [i for i in report.skipped if i.reason == "not_utf8"]
    assert len(bad) == 1 and bad[0].item.endswith("text:" + str(text.count(b"\n") + 1)) and "0xc9" in bad[0].detail


def test_pipes_are_not_run_without_the_opt_in(tmp_path, monkeypatch):
    """(issue 15) Without --allow-pipes the pipe recordings are skipped, the reason saying how to allow them."""
    monkeypatch.delenv(ALLOW_PIPES_ENV)
    data, keep = kaldi_dir_plain(tmp_path)
    report = _report()
    utts = read_kaldi_dir(data, report, audio_root=tmp_path, jobs=2)
    assert sorted(u.id for u in utts) == sorted(k for k, (audio, _) in keep.items() if not audio.endswith("|"))
    refused = [i for i in report.skipped if "--allow-pipes" in i.detail]
    assert sorted(i.item for i in refused) == ["u2", "u3"]
