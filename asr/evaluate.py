"""Batch evaluation: WER and CER (or PER for phone models) over a test set, full-utterance or streaming.

References and hypotheses go through the same normalisation (:func:`asr.text.normalize.normalize_text`; for phone
models the reference is the CMUdict phone string of the normalised words). Counting is jiwer's. ``mode="full"``
runs the causal (or bidirectional) forward over whole utterances in length-sorted batches (an utterance longer than
:data:`asr.pipeline.LONG_SECONDS` alone, in bounded memory: :meth:`AsrModel.utterance_log_probs`);
``mode="stream"`` feeds each file's samples at their own rate through the streaming recognizer in ``chunk_ms``
chunks, one encoder step each (:func:`asr.streaming.feed.stream_samples`: the stream resamples), the same path as
``asr transcribe --stream`` and live transcription, so a file gives the same text there and here. Audio seconds
and the real-time factor count the audio actually decoded (failed utterances and wrong manifest durations do not
count). With ``lm`` (an :class:`asr.decoding.lm_decoder.LMDecoder`) both modes decode with the lexicon / n-gram LM
beam search; a phone model decoded with a word lexicon then outputs words and is scored by WER.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from asr.data.manifest import Utterance
from asr.decoding.lm_decoder import LMDecoder
from asr.pipeline import LONG_SECONDS, AsrModel
from asr.scoring import ErrorCounts, UtteranceScore, format_table, score_corpus, write_per_utterance
from asr.text.base import Tokenizer
from asr.text.normalize import normalize_text

logger = logging.getLogger(__name__)

MODES = ("full", "stream")


@dataclass
class EvalResult:
    unit: str  # "word" (WER) or "phone" (PER)
    counts: ErrorCounts  # word (or phone) level
    char_counts: ErrorCounts | None  # character level (None for phone models)
    per_utterance: list[UtteranceScore]
    audio_seconds: float
    compute_seconds: float
    failed: dict[str, str] = field(default_factory=dict)  # utterance id -> why it could not be decoded
    timestamps: dict[str, dict] = field(default_factory=dict)  # id -> token times and confidences

    @property
    def wer(self) -> float:
        return self.counts.rate

    @property
    def cer(self) -> float:
        return self.char_counts.rate if self.char_counts is not None else float("nan")

    @property
    def rtf(self) -> float:
        return self.compute_seconds / max(self.audio_seconds, 1e-9)


def _phone_output(bundle: AsrModel, lm: LMDecoder | None) -> bool:
    """Whether hypotheses are phone strings (a phone model without a word lexicon) rather than words."""
    return bundle.tokenizer.kind == "phone" and (lm is None or lm.mode == "lexicon-free")


def reference_text(bundle: AsrModel, text: str, lm: LMDecoder | None = None) -> str:
    """The scoring reference: normalised words, or their phones for a phone model (decoded without a lexicon)."""
    return phone_reference(bundle.tokenizer, text) if _phone_output(bundle, lm) else normalize_text(text)


def phone_reference(tokenizer: Tokenizer, text: str) -> str:
    """The phone error rate's reference: the phones of the normalised words (words the tokenizer cannot spell
    are left out), as a phone model's greedy output is scored (``asr eval``, and tools/peer_hama.py for hama)."""
    return tokenizer.decode(tokenizer.encode(normalize_text(text), on_oov="skip"))


def _hyp_text(bundle: AsrModel, text: str, lm: LMDecoder | None = None) -> str:
    """A hypothesis as scored: normalised like the reference (phone strings are already in their form)."""
    return text if _phone_output(bundle, lm) else normalize_text(text)


def _timestamps(bundle: AsrModel, hyp, end: float) -> dict:
    """Token (and word) times in seconds, none past ``end`` (the audio's length: a last phone may come out in the
    tail padding's frames, after the audio that held it)."""
    spf = bundle.seconds_per_frame
    sec = lambda f: round(min(f * spf, end), 3)  # noqa: E731
    stamps = {
        "tokens": bundle.tokenizer.decode_tokens(hyp.tokens),
        "times": [sec(f) for f in hyp.frames],
        "confidences": [round(c, 4) for c in hyp.confidences],
    }
    if hyp.words is not None:
        stamps["words"] = [
            {"word": w.text, "start": sec(w.start), "end": sec(w.end), "confidence": round(w.confidence, 4)}
            for w in hyp.words
        ]
    return stamps


def _full_log_probs(bundle: AsrModel, utterances: Sequence[Utterance], max_batch_frames: int, failed: dict, bar):
    """Full-utterance forward in length-sorted batches: yields (id, log_probs [T', V] float32 CPU, seconds spent
    on its share of featurising and the forward, seconds of audio). Unreadable files go to ``failed``; ``bar``
    counts utterances. An utterance longer than LONG_SECONDS is decoded alone, in bounded memory."""
    sr = bundle.features.sample_rate
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].duration, reverse=True)
    i = 0
    while i < len(order):
        batch_feats, batch_ids, batch_audio = [], [], []
        longest = 0
        spent = 0.0
        while i < len(order):
            utt = utterances[order[i]]
            try:
                samples = utt.load_audio(target_sr=sr)
                seconds = samples.shape[0] / sr
                if seconds > LONG_SECONDS:
                    t0 = time.perf_counter()
                    lp = bundle.utterance_log_probs(samples)  # ValueError: too long for a bidirectional model
                    i += 1
                    bar.update(1)
                    yield utt.id, lp, time.perf_counter() - t0, seconds
                    continue
            except ValueError as exc:
                failed[utt.id] = str(exc)
                i += 1
                bar.update(1)
                continue
            t0 = time.perf_counter()
            feats = bundle.featurize_utterance(samples)
            spent += time.perf_counter() - t0
            n = max(longest, feats.shape[0]) * (len(batch_feats) + 1)
            if batch_feats and n > max_batch_frames:
                break
            batch_feats.append(feats)
            batch_ids.append(utt.id)
            batch_audio.append(seconds)
            longest = max(longest, feats.shape[0])
            i += 1
        if not batch_feats:
            continue
        t0 = time.perf_counter()
        lengths = torch.tensor([f.shape[0] for f in batch_feats])
        padded = torch.nn.utils.rnn.pad_sequence(batch_feats, batch_first=True)
        log_probs, out_lengths = bundle.log_probs(padded, lengths)
        log_probs = log_probs.float().cpu()
        spent += time.perf_counter() - t0
        for b, utt_id in enumerate(batch_ids):
            yield utt_id, log_probs[b, : int(out_lengths[b])].contiguous(), spent / len(batch_ids), batch_audio[b]
        bar.update(len(batch_ids))


def evaluate_batch(
    bundle: AsrModel,
    utterances: Sequence[Utterance],
    *,
    mode: str = "full",
    beam: int = 1,
    chunk_ms: float = 160.0,
    max_batch_frames: int = 30000,
    progress: bool = True,
    lm: LMDecoder | None = None,
) -> EvalResult:
    """Score ``utterances``; ``lm``: decode with that lexicon / LM beam search (``beam`` is then unused)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not utterances:
        raise ValueError("no utterances to evaluate")
    hyps: dict[str, str] = {}
    stamps: dict[str, dict] = {}
    failed: dict[str, str] = {}
    compute = audio = 0.0
    bar = tqdm(total=len(utterances), desc=f"eval ({mode})", unit="utt", disable=not progress)
    if mode == "full":
        for utt_id, lp, seconds, utt_audio in _full_log_probs(bundle, utterances, max_batch_frames, failed, bar):
            audio += utt_audio
            t0 = time.perf_counter()
            hyp = bundle.decode(lp, beam=beam) if lm is None else lm.decode(lp)
            compute += seconds + time.perf_counter() - t0
            hyps[utt_id] = _hyp_text(bundle, hyp.text(bundle.tokenizer), lm)
            stamps[utt_id] = _timestamps(bundle, hyp, utt_audio)
    else:
        from asr.streaming import EndpointConfig, Recognizer, RecognizerConfig
        from asr.streaming.feed import chunk_frames_covering, stream_samples

        # The encoder steps chunk_ms at a time, as in asr transcribe --stream and asr live (asr.streaming.feed).
        frames = chunk_frames_covering(
            chunk_ms, frame_shift_ms=bundle.features.frame_shift_ms, subsampling=bundle.model.subsampling_factor
        )
        logger.info("stream mode: %g ms chunks fed, encoder steps of %d feature frames", chunk_ms, frames)
        # One segment per utterance (no endpointing): the test sets are already segmented.
        recognizer = Recognizer(
            bundle,
            config=RecognizerConfig(chunk_frames=frames),
            beam=beam if lm is None else 1,
            endpoint=EndpointConfig(enabled=False),
            lm=lm,
        )
        for utt in utterances:
            try:
                samples, rate = utt.read_audio()
            except ValueError as exc:
                failed[utt.id] = str(exc)
                bar.update(1)
                continue
            t0 = time.perf_counter()
            # at the file's own rate: the stream resamples, as for asr transcribe --stream and a microphone
            result = stream_samples(recognizer, samples.numpy(), rate, chunk_ms=chunk_ms)
            compute += time.perf_counter() - t0
            audio += samples.shape[0] / rate
            hyps[utt.id] = _hyp_text(bundle, result.text, lm)
            stamps[utt.id] = {
                "tokens": [t for seg in result.finals for t in seg.tokens],
                "times": [t for seg in result.finals for t in seg.token_times],
                "confidences": [round(c, 4) for seg in result.finals for c in seg.confidences],
            }
            if lm is not None and lm.mode != "lexicon-free":
                stamps[utt.id]["words"] = [
                    {"word": w.text, "start": w.start, "end": w.end, "confidence": w.confidence}
                    for seg in result.finals
                    for w in seg.words
                ]
            bar.update(1)
    bar.close()
    if failed:
        logger.warning(
            "%d utterances could not be decoded (counted as all-deleted): %s",
            len(failed),
            dict(list(failed.items())[:5]),
        )
    ids = [u.id for u in utterances]
    refs = [reference_text(bundle, u.text, lm) for u in utterances]
    out = [hyps.get(u.id, "") for u in utterances]
    unit = "phone" if _phone_output(bundle, lm) else "word"
    counts, per_utt = score_corpus(ids, refs, out, unit=unit)
    char_counts = None if unit == "phone" else score_corpus(ids, refs, out, unit="char")[0]
    return EvalResult(
        unit=unit,
        counts=counts,
        char_counts=char_counts,
        per_utterance=per_utt,
        audio_seconds=audio,
        compute_seconds=compute,
        failed=failed,
        timestamps=stamps,
    )


def report(result: EvalResult, *, n_utts: int) -> str:
    label = "PER" if result.unit == "phone" else "WER"
    rows = {label: result.counts}
    if result.char_counts is not None:
        rows["CER"] = result.char_counts
    table = format_table(rows, n_utts=n_utts, label=label)
    timing = f"real-time factor {result.rtf:.4f} ({result.compute_seconds:.1f} s for {result.audio_seconds:.1f} s)"
    return f"{table}\n{timing}"


def write_report(out_dir: Path, result: EvalResult, *, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_per_utterance(out_dir / "utterances.jsonl", result.per_utterance, extra=result.timestamps)
    summary = {
        **meta,
        "unit": result.unit,
        "wer" if result.unit == "word" else "per": result.wer,
        "cer": None if result.char_counts is None else result.cer,
        "counts": asdict(result.counts) | {"ref_len": result.counts.ref_len, "errors": result.counts.errors},
        "char_counts": None if result.char_counts is None else asdict(result.char_counts),
        "utterances": len(result.per_utterance),
        "failed": result.failed,
        "audio_seconds": round(result.audio_seconds, 3),
        "compute_seconds": round(result.compute_seconds, 3),
        "real_time_factor": result.rtf,
    }
    tmp = out_dir / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out_dir / "summary.json")
    (out_dir / "report.txt").write_text(report(result, n_utts=len(result.per_utterance)) + "\n")


def grid_search(
    bundle: AsrModel,
    utterances: Sequence[Utterance],
    lm: LMDecoder,
    *,
    lm_weights: Sequence[float],
    word_scores: Sequence[float],
    blank_penalties: Sequence[float] | None = None,
    searches: Sequence[dict] | None = None,
    max_batch_frames: int = 30000,
    progress: bool = True,
    groups: Sequence[str] | None = None,
) -> list[dict]:
    """WER/CER of every (lm weight, word score[, blank penalty][, search]) on ``utterances`` from one full-utterance
    forward (the log-probs are kept in memory), best first (WER, then CER, then the search's time: of two settings
    alike in accuracy the cheaper wins). Tune on a dev set: the test sets stay for reporting. ``blank_penalties``
    None: the decoder's own (``lm.config.blank_penalty``) in every row. ``searches``: beam options of
    :class:`~asr.decoding.lm_decoder.LMDecoderConfig` (``beam_size``, ``beam_size_token``, ``beam_threshold``) per
    setting, to weigh the search's cost (each row's ``rtf``: the search alone) against its accuracy; None: the
    decoder's own. Every row names its beam settings.

    ``groups``: a set name per utterance (several dev sets tuned together). Each row then also has every set's
    WER/CER (``sets``) and their means (``mean_wer``, ``mean_cer``), and rows are ranked by the means: each set
    counts alike however many words it has (pooled, a set of long sentences would outvote one of short clips)."""
    if not utterances:
        raise ValueError("no utterances to evaluate")
    if groups is not None and len(groups) != len(utterances):
        raise ValueError(f"groups has {len(groups)} names for {len(utterances)} utterances")
    failed: dict[str, str] = {}
    bar = tqdm(total=len(utterances), desc="forward", unit="utt", disable=not progress)
    log_probs, audio = {}, 0.0
    for utt_id, lp, _, seconds in _full_log_probs(bundle, utterances, max_batch_frames, failed, bar):
        log_probs[utt_id] = lp
        audio += seconds
    bar.close()
    if failed:
        logger.warning("%d utterances could not be read (scored as all-deleted): %s", len(failed), list(failed)[:5])
    ids = [u.id for u in utterances]
    refs = [reference_text(bundle, u.text, lm) for u in utterances]
    unit = "phone" if _phone_output(bundle, lm) else "word"
    rows = []
    penalties = [lm.config.blank_penalty] if blank_penalties is None else list(blank_penalties)
    settings = [
        (w, s, b, dict(x)) for w in lm_weights for s in word_scores for b in penalties for x in (searches or [{}])
    ]
    for w, s, b, search in tqdm(settings, desc="grid", unit="setting", disable=not progress):
        decoder = lm.with_options(lm_weight=w, word_score=s, blank_penalty=b, **search)
        t0 = time.perf_counter()
        out = [
            _hyp_text(bundle, decoder.decode(log_probs[i]).text(bundle.tokenizer), lm) if i in log_probs else ""
            for i in ids
        ]
        seconds = time.perf_counter() - t0
        counts, per_utt = score_corpus(ids, refs, out, unit=unit)
        chars, per_utt_chars = (None, None) if unit == "phone" else score_corpus(ids, refs, out, unit="char")
        row = {
            "lm_weight": w,
            "word_score": s,
            "blank_penalty": b,
            "beam_size": decoder.config.beam_size,
            "beam_size_token": decoder.config.beam_size_token,
            "beam_threshold": decoder.config.beam_threshold,
            "wer": counts.rate,
            "cer": float("nan") if chars is None else chars.rate,
            "rtf": seconds / max(audio, 1e-9),  # the search alone
            "counts": asdict(counts),
        }
        if groups is not None:  # each set's counts: the sum of its utterances' (scored once, above)
            row["sets"] = {}
            for name in dict.fromkeys(groups):
                pick = [k for k, g in enumerate(groups) if g == name]
                row["sets"][name] = {"wer": _group_rate(per_utt, pick), "cer": _group_rate(per_utt_chars, pick)}
            row["mean_wer"] = sum(v["wer"] for v in row["sets"].values()) / len(row["sets"])
            row["mean_cer"] = sum(v["cer"] for v in row["sets"].values()) / len(row["sets"])
        rows.append(row)
    if groups is not None:
        rows.sort(key=lambda r: (r["mean_wer"], r["mean_cer"], r["rtf"]))
    else:
        rows.sort(key=lambda r: (r["wer"], r["cer"], r["rtf"]))
    return rows


def _group_rate(scores: Sequence[UtteranceScore] | None, pick: Sequence[int]) -> float:
    """The error rate of the utterances ``pick`` from their scores (NaN without scores: a phone model's CER)."""
    if scores is None:
        return float("nan")
    return sum((scores[k].counts for k in pick), ErrorCounts(0, 0, 0, 0)).rate


def format_grid(rows: list[dict]) -> str:
    """``grid_search`` rows as a table: LM weight, word score, (blank penalty, when one is not 0; beam, tokens per
    frame and threshold, when they vary,) WER, CER, RTF (and each set's WER / CER with their means, when several sets
    were tuned together)."""
    sets = list(rows[0].get("sets", {})) if rows else []
    labels = [Path(n).stem if Path(n).suffix else f"{Path(n).parent.name}/{Path(n).name}" for n in sets]
    extra = "".join(f" {label[-18:]:>18}" for label in labels) + (f" {'mean WER/CER':>14}" if sets else "")
    blank = any(r.get("blank_penalty", 0.0) for r in rows)
    pen_head = " blank_pen" if blank else ""
    searches = len({(r.get("beam_size"), r.get("beam_size_token"), r.get("beam_threshold")) for r in rows}) > 1
    search_head = f" {'beam':>5} {'tokens':>6} {'thresh':>6}" if searches else ""
    lines = [f"{'lm_weight':>9} {'word_score':>10}{pen_head}{search_head} {'WER':>7} {'CER':>7} {'RTF':>7}{extra}"]
    for r in rows:
        cells = "".join(f" {r['sets'][n]['wer']:>8.4f}/{r['sets'][n]['cer']:<9.4f}" for n in sets)
        mean = f" {r['mean_wer']:>6.4f}/{r['mean_cer']:<7.4f}" if sets else ""
        pen = f" {r.get('blank_penalty', 0.0):>9g}" if blank else ""
        if searches:
            tokens = "all" if r["beam_size_token"] is None else r["beam_size_token"]
            pen += f" {r['beam_size']:>5} {tokens:>6} {r['beam_threshold']:>6g}"
        head = f"{r['lm_weight']:>9g} {r['word_score']:>10g}{pen} {r['wer']:>7.4f} {r['cer']:>7.4f} {r['rtf']:>7.4f}"
        lines.append(head + cells + mean)
    return "\n".join(lines)


def write_grid(out_dir: Path, rows: list[dict], *, meta: dict) -> Path:
    """``grid.json``: the settings and the table, best first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "grid.json"
    tmp = out_dir / ".grid.json.tmp"
    tmp.write_text(json.dumps({**meta, "best": rows[0] if rows else None, "rows": rows}, indent=2))
    tmp.replace(path)
    return path
