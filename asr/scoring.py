"""Error rates the way the field reports them: WER, CER, PER, with sclite-style counts.

All counting is done by jiwer (Levenshtein alignment); this module only aggregates, formats and writes reports.
Units:
    word   tokens are whitespace-separated words (WER)
    char   tokens are characters, spaces included (CER) - jiwer's process_characters
    phone  tokens are whitespace-separated phones (PER)
References and hypotheses must already be normalised with the same function (asr.text normalisation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import jiwer

UNITS = ("word", "char", "phone")


@dataclass(frozen=True)
class ErrorCounts:
    hits: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def ref_len(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Error rate; an empty reference scores 0 without errors and 1 per inserted token otherwise."""
        return self.errors / self.ref_len if self.ref_len else float(self.errors)

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )


@dataclass(frozen=True)
class UtteranceScore:
    id: str
    ref: str
    hyp: str
    counts: ErrorCounts
    alignment: str  # REF/HYP lines with S/D/I markers, from jiwer


def _process(ref: str, hyp: str, unit: str):
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if unit == "char":
        return jiwer.process_characters(ref, hyp)
    return jiwer.process_words(ref, hyp)


def score_utterance(utt_id: str, ref: str, hyp: str, *, unit: str = "word") -> UtteranceScore:
    if not ref.strip() and not hyp.strip():
        return UtteranceScore(utt_id, ref, hyp, ErrorCounts(0, 0, 0, 0), "")
    if not ref.strip():
        n = len(hyp.split()) if unit != "char" else len(hyp)
        return UtteranceScore(utt_id, ref, hyp, ErrorCounts(0, 0, 0, n), f"REF: \nHYP: {hyp}\n")
    out = _process(ref, hyp if hyp.strip() else "", unit)
    counts = ErrorCounts(out.hits, out.substitutions, out.deletions, out.insertions)
    alignment = jiwer.visualize_alignment(out, show_measures=False).split("\n", 1)[-1].strip("\n")
    return UtteranceScore(utt_id, ref, hyp, counts, alignment)


def score_corpus(
    ids: Sequence[str], refs: Sequence[str], hyps: Sequence[str], *, unit: str = "word"
) -> tuple[ErrorCounts, list[UtteranceScore]]:
    if not (len(ids) == len(refs) == len(hyps)):
        raise ValueError(f"ids, refs and hyps differ in length: {len(ids)}, {len(refs)}, {len(hyps)}")
    per_utt = [score_utterance(i, r, h, unit=unit) for i, r, h in zip(ids, refs, hyps)]
    total = ErrorCounts(0, 0, 0, 0)
    for u in per_utt:
        total = total + u.counts
    return total, per_utt


def format_table(rows: dict[str, ErrorCounts], *, n_utts: int, label: str = "WER") -> str:
    """An sclite-like summary: Corr/Sub/Del/Ins/Err as percentages of the reference length, plus counts."""
    head = f"{'':<8}{'#Snt':>6}{'#Tok':>8}{'Corr':>8}{'Sub':>8}{'Del':>8}{'Ins':>8}{'Err':>8}  {'':<}"
    lines = [head, "-" * len(head)]
    for name, c in rows.items():
        n = max(c.ref_len, 1)
        lines.append(
            f"{name:<8}{n_utts:>6}{c.ref_len:>8}{100 * c.hits / n:>8.1f}{100 * c.substitutions / n:>8.1f}"
            f"{100 * c.deletions / n:>8.1f}{100 * c.insertions / n:>8.1f}{100 * c.rate:>8.2f}"
        )
    lines.append(f"(Err = {label}-style error rate in %: (Sub + Del + Ins) / #Tok)")
    return "\n".join(lines)


def write_per_utterance(
    path: Path, scores: Sequence[UtteranceScore], extra: dict[str, dict] | None = None
) -> None:
    """One JSON line per utterance: id, ref, hyp, counts, error rate and the alignment text."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for s in scores:
            row = {"id": s.id, "ref": s.ref, "hyp": s.hyp, **asdict(s.counts), "rate": s.counts.rate}
            row["alignment"] = s.alignment
            if extra and s.id in extra:
                row.update(extra[s.id])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


# -- is a difference real? ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedBootstrap:
    """Two systems' error rates on the same utterances and how sure the difference is (Bisani & Ney, 2004): the
    utterances are resampled with replacement, and each resample's corpus-level difference (errors / reference
    tokens, as the rate itself) is kept."""

    utterances: int
    rate_a: float
    rate_b: float
    difference: float  # rate_b - rate_a: negative when b makes fewer errors
    low: float  # the interval of the resampled differences holding ``confidence`` of them
    high: float
    confidence: float
    p_b_better: float  # share of resamples in which b's rate is below a's
    b_better: int  # utterances on which b makes fewer errors than a
    b_worse: int
    resamples: int
    seed: int


def paired_bootstrap(
    a: Sequence[ErrorCounts], b: Sequence[ErrorCounts], *, resamples: int = 2000, seed: int = 0,
    confidence: float = 0.95,
) -> PairedBootstrap:  # fmt: skip
    """The paired bootstrap of system b against system a; ``a[i]`` and ``b[i]`` score the same utterance against the
    same reference (ValueError otherwise: a different reference length means different sets or normalisations)."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"the two systems scored {len(a)} and {len(b)} utterances: pair the same utterances")
    if not a:
        raise ValueError("no utterances to compare")
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(f"resamples must be >= 1 and confidence in (0, 1), got {resamples}, {confidence}")
    mismatch = [i for i, (x, y) in enumerate(zip(a, b)) if x.ref_len != y.ref_len]
    if mismatch:
        i = mismatch[0]
        raise ValueError(f"{len(mismatch)} utterances have references of different lengths in the two systems "
                         f"(the first, #{i}: {a[i].ref_len} against {b[i].ref_len} tokens): not the same references")
    ref = np.array([x.ref_len for x in a], dtype=np.int64)
    err_a = np.array([x.errors for x in a], dtype=np.int64)
    err_b = np.array([x.errors for x in b], dtype=np.int64)
    if not ref.sum():
        raise ValueError("the references are empty: no error rate to compare")
    pick = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    tokens = np.maximum(ref[pick].sum(axis=1), 1)
    diffs = (err_b[pick].sum(axis=1) - err_a[pick].sum(axis=1)) / tokens
    tail = (1 - confidence) / 2
    rate_a, rate_b = err_a.sum() / ref.sum(), err_b.sum() / ref.sum()
    return PairedBootstrap(
        utterances=len(a), rate_a=float(rate_a), rate_b=float(rate_b), difference=float(rate_b - rate_a),
        low=float(np.quantile(diffs, tail)), high=float(np.quantile(diffs, 1 - tail)), confidence=confidence,
        p_b_better=float((diffs < 0).mean()), b_better=int((err_b < err_a).sum()), b_worse=int((err_b > err_a).sum()),
        resamples=resamples, seed=seed,
    )  # fmt: skip
