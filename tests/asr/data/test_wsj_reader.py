from pathlib import Path

import pytest

from asr.data.manifest import check_utterances
from asr.data.wsj import SETS, kaldi_normalize, read_wsj, spoken_text

from ._corpus_fakes import wsj_tree


@pytest.mark.parametrize(
    ("raw", "kaldi", "spoken"),
    [
        (
            "[loud_breath] Of course isn\\'t [misc_noise]",
            "<NOISE> OF COURSE ISN'T <NOISE>",
            "OF COURSE ISN'T",
        ),
        ("a [<door_slam] b [door_slam>] c", "A B C", "A B C"),
        ("[phone_ring/] a b [/phone_ring]", "A B", "A B"),
        ("truncated ~ and . paused", "TRUNCATED AND PAUSED", "TRUNCATED AND PAUSED"),
        ("<and> said", "AND SAID", "AND SAID"),
        ("up %PERCENT four .POINT two", "UP PERCENT FOUR POINT TWO", "UP PERCENT FOUR POINT TWO"),
        ("a --DASH b", "A -DASH B", "A DASH B"),
        (',COMMA .PERIOD "DOUBLE-QUOTE', ',COMMA .PERIOD "DOUBLE-QUOTE', "COMMA PERIOD DOUBLE QUOTE"),
        (
            "(LEFT-PAREN ...ELLIPSIS 'SINGLE-QUOTE",
            "(LEFT-PAREN ...ELLIPSIS 'SINGLE-QUOTE",
            "LEFT PAREN ELLIPSIS SINGLE QUOTE",
        ),
        ("the *rebound* so: !very", "THE *REBOUND* SO: !VERY", "THE REBOUND SO VERY"),
        ("tele(vision)- set", "TELE(VISION)- SET", "TELE SET"),
        ("U\\.S\\. Corp\\.", "U.S. CORP.", "U S CORP"),
        ("[loud_breath]", "<NOISE>", ""),
    ],
)
def test_normalisation(raw, kaldi, spoken):
    assert kaldi_normalize(raw) == kaldi
    assert spoken_text(kaldi) == spoken


def test_sets_from_index_and_folders_every_field(tmp_path):
    expected = wsj_tree(tmp_path)
    roots = [tmp_path / "WSJ0", tmp_path / "WSJ1"]
    results = read_wsj(roots, jobs=2)
    assert list(results) == ["si284", "dev93", "eval92"]
    for name, (utts, report) in results.items():
        utts = check_utterances(utts, report)
        assert {u.id: u.text for u in utts} == expected[name], name
        for u in utts:
            assert u.audio.lower().endswith(f"/{u.id}.wv1") and tmp_path in Path(u.audio).parents
            assert u.speaker == u.id[:3] and u.offset is None
            assert u.duration == pytest.approx(u.load_audio().shape[0] / 16000, abs=1e-6)
            assert u.extra["transcript"] == ("lsn" if u.id == "4a0a0102" else "dot")
        assert not report.flagged

    si284, report = results["si284"]
    u = {x.id: x for x in si284}
    assert u["01ic0201"].duration == pytest.approx(0.5) and u["4a0a0101"].duration == pytest.approx(0.7)
    assert u["01ic0202"].extra["kaldi_text"] == 'I. B. M. SAID ,COMMA "DOUBLE-QUOTE THE *REBOUND* IS REAL'
    assert sorted((i.reason, i.item) for i in report.skipped) == [
        ("excluded", "401c0201"),
        ("missing_transcript", "01ic0203"),
    ]
    assert any("not found" in n and "wsj0/si_tr_s/" in n for n in report.notes)  # folder fallback is said
    assert any("37416" in n for n in report.notes)
    assert not any("sph2pipe" in n for n in report.notes)  # the fakes are plain PCM sphere files

    eval92, report = results["eval92"]
    assert [(i.reason, i.item) for i in report.skipped] == [("missing_audio", "440c0299")]
    assert any("si_et_20.ndx" in n and "Kaldi" in n for n in report.notes)
    assert [x.id for x in eval92] == ["440c0201"]  # 440c0202 is on disk but not in the index

    dev93, _ = results["dev93"]
    assert dev93[0].audio.endswith("SI_DT_20/4K0/4K0C0301.WV1")  # upper-cased disk copy found


def test_other_sets_and_errors(tmp_path):
    wsj_tree(tmp_path)
    ((si84, report),) = read_wsj([tmp_path], sets=("si84",)).values()
    assert [u.id for u in si84] == ["01ic0201", "01ic0202"]
    assert SETS["si84"].expected == 7138
    with pytest.raises(ValueError, match="unknown WSJ set"):
        read_wsj([tmp_path], sets=("si999",))
    with pytest.raises(ValueError, match="missing or not directories"):
        read_wsj([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .wv1 files"):
        read_wsj([tmp_path / "empty"])
