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


def test_paired_bootstrap_difference_is_jiwers_and_its_interval_holds_it():
    import random

    from asr.scoring import paired_bootstrap, score_corpus

    rng = random.Random(3)
    words = "go forward ten meters turn left stop back two red".split()
    refs = [" ".join(rng.choices(words, k=rng.randint(2, 8))) for _ in range(60)]

    def noisy(ref: str, p: float) -> str:
        return " ".join(w if rng.random() > p else rng.choice(words) for w in ref.split())

    hyp_a = [noisy(r, 0.4) for r in refs]
    hyp_b = [noisy(r, 0.1) for r in refs]
    ids = [str(i) for i in range(len(refs))]
    a = [u.counts for u in score_corpus(ids, refs, hyp_a)[1]]
    b = [u.counts for u in score_corpus(ids, refs, hyp_b)[1]]
    r = paired_bootstrap(a, b, resamples=500, seed=1)
    assert r.rate_a == pytest.approx(jiwer.wer(refs, hyp_a)) and r.rate_b == pytest.approx(jiwer.wer(refs, hyp_b))
    assert r.difference == pytest.approx(r.rate_b - r.rate_a) and r.low <= r.difference <= r.high < 0
    assert r.p_b_better > 0.99 and r.b_better > r.b_worse
    assert paired_bootstrap(a, b, resamples=500, seed=1) == r  # seeded
    assert paired_bootstrap(a, b, resamples=500, seed=2) != r
    same = paired_bootstrap(a, a, resamples=200)
    assert (same.difference, same.low, same.high, same.p_b_better, same.b_better) == (0.0, 0.0, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="scored 60 and 59 utterances"):
        paired_bootstrap(a, b[1:])
    with pytest.raises(ValueError, match="not the same references"):
        paired_bootstrap(a, b[1:] + b[:1])
