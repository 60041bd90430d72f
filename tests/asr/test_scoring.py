import json

import jiwer
import pytest

from asr.scoring import ErrorCounts, format_table, score_corpus, score_utterance, write_per_utterance

REFS = ["THE CAT SAT ON THE MAT", "HELLO WORLD", "A B C D", "GO FORWARD TEN METERS"]
HYPS = ["THE CAT SAT ON MAT", "HELLO WORD", "A X B C D E", ""]


def test_corpus_wer_equals_jiwer():
    total, per = score_corpus([str(i) for i in range(len(REFS))], REFS, HYPS)
    expected = jiwer.wer([r for r in REFS], [h if h else "" for h in HYPS])
    assert total.rate == pytest.approx(expected)
    assert total.ref_len == sum(len(r.split()) for r in REFS)
    assert per[0].counts == ErrorCounts(hits=5, substitutions=0, deletions=1, insertions=0)
    assert per[3].counts.deletions == 4


def test_cer_equals_jiwer():
    total, _ = score_corpus(["a", "b"], REFS[:2], HYPS[:2], unit="char")
    assert total.rate == pytest.approx(jiwer.cer(REFS[:2], HYPS[:2]))


def test_empty_reference_counts_insertions():
    s = score_utterance("x", "", "SOME WORDS")
    assert s.counts == ErrorCounts(0, 0, 0, 2)
    assert score_utterance("y", "", "").counts.errors == 0


def test_table_and_report(tmp_path):
    total, per = score_corpus(["a", "b"], REFS[:2], HYPS[:2])
    table = format_table({"Sum": total}, n_utts=2)
    assert "Corr" in table and f"{100 * total.rate:.2f}" in table
    write_per_utterance(tmp_path / "u.jsonl", per)
    rows = [json.loads(line) for line in (tmp_path / "u.jsonl").read_text().splitlines()]
    assert rows[1]["hyp"] == "HELLO WORD" and rows[1]["substitutions"] == 1
    assert "REF" in rows[1]["alignment"]


def test_unknown_unit():
    with pytest.raises(ValueError, match="unit must be"):
        score_utterance("x", "a", "b", unit="syllable")
