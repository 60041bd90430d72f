"""The long-stream test's scoring: the stream transcript against the separate decodes of its utterances."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from asr.data.manifest import Utterance
from asr.evaluate import evaluate_batch, reference_text
from asr.pipeline import AsrModel
from asr.scoring import score_corpus, score_utterance
from asr.streaming import Segment
from asr.text.normalize import normalize_text
from bench.long_stream_run import StreamRun
from bench.long_stream_signal import LongSignal, Placement

WITHIN_RELATIVE = 0.05  # target: stream WER <= separate WER x 1.05 (a lower stream WER is within too)


def _hyp_text(bundle: AsrModel, text: str) -> str:
    """A hypothesis as asr.evaluate scores it (phone strings are already in their form)."""
    return text if bundle.tokenizer.kind == "phone" else normalize_text(text)


def split_by_time(
    bundle: AsrModel, segments: tuple[Segment, ...], placements: tuple[Placement, ...], sample_rate: int
) -> list[str]:
    """The stream's tokens grouped by the utterance region holding their emission time, decoded per region."""
    ids = {tok: i for i, tok in enumerate(bundle.tokenizer.tokens)}
    starts = np.array([p.region_start for p in placements]) / sample_rate
    groups: list[list[int]] = [[] for _ in placements]
    for seg in segments:
        for tok, t in zip(seg.tokens, seg.token_times):
            k = max(0, int(np.searchsorted(starts, t, side="right")) - 1)
            groups[k].append(ids[tok])
    return [bundle.tokenizer.decode(g) for g in groups]


def _relative(stream: float, separate: float) -> float | None:
    """stream / separate - 1 (None when the separate WER is 0: the ratio is undefined)."""
    return None if separate == 0 else stream / separate - 1.0


def score(
    bundle: AsrModel,
    signal: LongSignal,
    run: StreamRun,
    *,
    utterances: dict[str, Utterance],
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """(figures, one row per occurrence, the scored stream transcript).

    ``utterances``: id -> Utterance, the separate decodes load their audio from it."""
    unit = "phone" if bundle.tokenizer.kind == "phone" else "word"
    placements = signal.placements
    used = list(dict.fromkeys(p.utt_id for p in placements))  # distinct, first-seen order
    refs = [reference_text(bundle, p.text) for p in placements]

    # the separate decodes: asr eval's full-utterance path on each distinct utterance once
    separate = evaluate_batch(bundle, [utterances[u] for u in used], mode="full", beam=1, progress=progress)
    by_id = {s.id: s for s in separate.per_utterance}
    sep_hyps = [by_id[p.utt_id].hyp for p in placements]
    occ_ids = [f"{k:05d}:{p.utt_id}" for k, p in enumerate(placements)]
    sep_counts, _ = score_corpus(occ_ids, refs, sep_hyps, unit=unit)

    ref_all = " ".join(r for r in refs if r)
    stream_hyp = _hyp_text(bundle, run.text)
    stream_counts = score_utterance("stream", ref_all, stream_hyp, unit=unit).counts
    joined = score_utterance("separate-joined", ref_all, " ".join(h for h in sep_hyps if h), unit=unit).counts
    by_time = split_by_time(bundle, run.segments, placements, signal.sample_rate)
    aligned_hyps = [_hyp_text(bundle, h) for h in by_time]
    aligned_counts, aligned = score_corpus(occ_ids, refs, aligned_hyps, unit=unit)
    rel = _relative(stream_counts.rate, sep_counts.rate)
    # characters too: for a weak model (WER near or above 100%) the CER is the figure that still moves
    sep_char, _ = score_corpus(occ_ids, refs, sep_hyps, unit="char")
    stream_char = score_utterance("stream", ref_all, stream_hyp, unit="char").counts
    rows = [
        {"occurrence": k, "id": p.utt_id, "start_s": round(p.start / signal.sample_rate, 3),
         "end_s": round(p.end / signal.sample_rate, 3), "ref": refs[k], "separate_hyp": sep_hyps[k],
         "stream_hyp_by_time": aligned_hyps[k], "stream_errors_by_time": aligned[k].counts.errors,
         "separate_errors": by_id[p.utt_id].counts.errors}
        for k, p in enumerate(placements)
    ]  # fmt: skip
    figures = {
        "unit": unit,
        "separate": sep_counts.rate,
        "separate_counts": dataclasses.asdict(sep_counts),
        "stream": stream_counts.rate,
        "stream_counts": dataclasses.asdict(stream_counts),
        "relative_difference": rel,
        "within_5pct_relative": (stream_counts.rate == 0) if rel is None else bool(rel <= WITHIN_RELATIVE),
        "separate_joined": joined.rate,
        "relative_difference_joined": _relative(stream_counts.rate, joined.rate),
        "separate_cer": sep_char.rate,
        "stream_cer": stream_char.rate,
        "relative_difference_cer": _relative(stream_char.rate, sep_char.rate),
        "stream_by_time": aligned_counts.rate,
        "identical_by_time": sum(a == s for a, s in zip(aligned_hyps, sep_hyps)),
        "occurrences": len(placements),
        "separate_failed": separate.failed,
        "separate_compute_s": round(separate.compute_seconds, 3),
    }
    return figures, rows, stream_hyp
