#!/usr/bin/env python
"""Long-stream test: one continuous stream of test utterances with pauses, transcribed live.

The utterances of a test set (in a seeded order, cycling through the set again in a fresh seeded order when
it is shorter than ``--minutes``) are joined into one signal with a pause before each and after the last
(``--pause-s`` seconds drawn uniformly, digital silence or seeded low-level noise with ``--pause-noise``).
The signal is fed ``--chunk-ms`` at a time into one stream of the streaming Recognizer with endpointing on,
exactly as ``asr live`` feeds a microphone, decoding after every chunk. Recorded:

- per chunk: the wall and thread CPU time of ``accept_waveform`` + ``decode`` (front end, encoder step, CTC
  decoding, endpointing);
- every ``--sample-every-s`` seconds of audio: the process RSS and the bytes of the stream's state tensors
  (the encoder state: attention (S, z), convolution and subsampling caches; and the front-end buffers).

Then every utterance is decoded on its own (full-utterance forward, the same model, greedy) and scored with
asr.scoring. Headline: the corpus WER of the whole stream transcript against the concatenated references,
relative to the WER of the separate decodes (each occurrence scored on its own and summed). Also reported:
the separate hypotheses joined and scored as one string (like for like with the stream), and the stream's
tokens split back to the utterances by their emission times (a token belongs to the utterance whose span,
extended to the middle of the pauses around it, holds its time).

"Within 5%" means stream WER <= 1.05 x separate WER (a lower stream WER counts as within).

Memory flat: RSS and state bytes after the first minute and at the end; per-chunk latency in the first
minute vs the last (a shorter stream compares its halves). The live times follow the machine's load, so the
encoder states after the first minute and at the end are also kept and stepped again, interleaved, on the
same input (``--replay-rounds``): the step cost at both ends under the same conditions. Writes
DIR/long_stream.json (figures, settings, command line, the transcript), DIR/long_stream.png,
DIR/segments.jsonl (final segments) and DIR/utterances.jsonl (per occurrence: ref, hyps, errors).

    python tools/long_stream.py --model runs/X/final.safetensors --minutes 30
    python tools/long_stream.py --model runs/X --minutes 5 --pause-s 0.5-2.0 --pause-noise 0.001 --out /tmp/ls
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _bench_common as bc
import numpy as np
import torch
from tqdm import tqdm

from asr.data.manifest import Utterance
from asr.data.sources import load_utterances
from asr.evaluate import evaluate_batch, reference_text
from asr.model import PackedStep
from asr.pipeline import AsrModel, load_asr_model, resolve_model_path
from asr.scoring import score_corpus, score_utterance
from asr.streaming import EndpointConfig, Recognizer, Segment
from asr.streaming.feed import chunk_samples, feed_chunks, recognizer_config
from asr.text.normalize import normalize_text

logger = logging.getLogger("long_stream")

WINDOW_S = 60.0  # "first minute" / "last minute"
WITHIN_RELATIVE = 0.05  # target: stream WER <= separate WER x 1.05 (a lower stream WER is within too)


# ------------------------------------------------------------------------------------------- the signal


@dataclass(frozen=True)
class Placement:
    """One utterance occurrence in the long signal (sample indices at the model's rate)."""

    utt_id: str
    start: int  # first sample of the utterance
    end: int  # one past its last sample
    region_start: int  # middle of the pause before it (0 for the first): tokens from here on are its own
    region_end: int  # middle of the pause after it (the signal's end for the last)
    text: str  # the corpus transcript


@dataclass(frozen=True)
class LongSignal:
    samples: torch.Tensor  # [N] float32
    sample_rate: int
    placements: tuple[Placement, ...]
    pauses_s: tuple[float, ...]  # every pause, in order (one more than placements)
    cycles: int  # passes begun through the utterance set
    skipped: dict[str, str]  # utterance id -> why its audio could not be read (left out of the stream)


def parse_pause_range(text: str) -> tuple[float, float]:
    """``"0.5-2.0"`` -> (0.5, 2.0); ``"1.0"`` -> (1.0, 1.0)."""
    parts = text.split("-")
    try:
        lo, hi = (float(parts[0]), float(parts[-1])) if len(parts) in (1, 2) else (math.nan, math.nan)
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi < lo:
        raise ValueError(f"--pause-s must be 'LO-HI' seconds with 0 <= LO <= HI (or one value), got {text!r}")
    return lo, hi


def build_signal(
    utterances: list[Utterance],
    *,
    seconds: float,
    pause_s: tuple[float, float],
    pause_noise: float,
    sample_rate: int,
    seed: int,
) -> LongSignal:
    """Utterances in seeded order (cycling) with seeded pauses until the signal holds ``seconds`` of audio.

    The last utterance is never cut: the signal ends with the first utterance (+ its pause) that reaches
    ``seconds``. Pauses are zeros, or Gaussian noise of RMS ``pause_noise`` when it is > 0.
    """
    if not utterances:
        raise ValueError("no utterances to build the stream from")
    rng = np.random.default_rng(seed)  # order and pause lengths
    noise_rng = np.random.default_rng([seed, 1])  # pause noise: the same order and pauses with or without it
    target = int(round(seconds * sample_rate))
    cache: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    pieces: list[torch.Tensor] = []
    spans: list[tuple[str, int, int, str]] = []
    pauses: list[float] = []
    total = 0
    cycles = 0

    def add_pause() -> None:
        nonlocal total
        p = float(rng.uniform(*pause_s))
        n = int(round(p * sample_rate))
        noise = noise_rng.standard_normal(n).astype(np.float32) * pause_noise if pause_noise > 0 else None
        pieces.append(torch.from_numpy(noise) if noise is not None else torch.zeros(n))
        pauses.append(n / sample_rate)
        total += n

    add_pause()
    while total < target:
        cycles += 1
        added = 0
        for i in rng.permutation(len(utterances)):
            if total >= target:
                break
            utt = utterances[int(i)]
            if utt.id in skipped:
                continue
            if utt.id not in cache:
                try:
                    audio = utt.load_audio(target_sr=sample_rate).float()
                except ValueError as exc:
                    skipped[utt.id] = str(exc)
                    logger.warning("skipping utterance %s: %s", utt.id, exc)
                    continue
                if audio.numel() == 0:
                    skipped[utt.id] = "no samples"
                    continue
                cache[utt.id] = audio
            audio = cache[utt.id]
            pieces.append(audio)
            spans.append((utt.id, total, total + audio.numel(), utt.text))
            total += audio.numel()
            add_pause()
            added += 1
        if not added:
            first = dict(list(skipped.items())[:3])
            raise ValueError(f"none of the {len(utterances)} utterances could be read: {first}")
    samples = torch.cat(pieces)
    bounds = [0] + [(spans[k][2] + spans[k + 1][1]) // 2 for k in range(len(spans) - 1)] + [samples.numel()]
    placements = tuple(
        Placement(uid, s, e, bounds[k], bounds[k + 1], text) for k, (uid, s, e, text) in enumerate(spans)
    )
    return LongSignal(samples, sample_rate, placements, tuple(pauses), cycles, skipped)


# --------------------------------------------------------------------------------------- the live stream


@dataclass
class StreamRun:
    text: str  # the whole transcript: finals (and a partial, if any) space-joined
    segments: tuple[Segment, ...]
    sample_rate: int
    chunk_samples: int
    chunk_end_s: np.ndarray  # [n_chunks] audio time at the end of each chunk
    wall_s: np.ndarray  # [n_chunks] wall time of accept_waveform + decode
    cpu_s: np.ndarray  # [n_chunks] thread CPU time of the same
    timeline: list[dict[str, float]]  # samples every N s of audio: t_s, rss, state bytes, latency since last
    flush_s: float  # input_finished + the final decode
    snapshots: dict[str, Any]  # "first" (at the first sample >= snapshot_at_s) and "end": encoder states


def run_stream(
    bundle: AsrModel,
    signal: LongSignal,
    *,
    chunk_ms: int,
    endpoint: EndpointConfig,
    sample_every_s: float,
    snapshot_at_s: float,
    device: str = "cpu",
    progress: bool = True,
) -> StreamRun:
    """Feed ``signal`` chunk by chunk into one stream, as ``asr live`` does; time every chunk.

    The encoder state is kept at the first sample at or after ``snapshot_at_s`` and at the end (states are
    never modified in place by ``step``), for :func:`replay_steps`."""
    config = recognizer_config(chunk_ms, frame_shift_ms=bundle.features.frame_shift_ms)
    recognizer = Recognizer(bundle, device=device, config=dataclasses.replace(config, endpoint=endpoint))
    sr = signal.sample_rate
    if sr != recognizer.sample_rate:
        raise ValueError(f"signal at {sr} Hz but the model expects {recognizer.sample_rate} Hz")
    step = chunk_samples(sr, chunk_ms)  # as feed_chunks cuts them
    n = signal.samples.numel()
    n_chunks = math.ceil(n / step)
    wall, cpu = np.zeros(n_chunks), np.zeros(n_chunks)
    ends = np.minimum(np.arange(1, n_chunks + 1) * step, n) / sr
    stream = recognizer.create_stream()
    clock = bc.Clock(recognizer.device)
    timeline: list[dict[str, float]] = []
    snapshots: dict[str, Any] = {}
    last_k = 0

    def sample(t: float, k: int) -> None:
        nonlocal last_k
        lat, lat_cpu = wall[last_k:k], cpu[last_k:k]
        timeline.append({
            "t_s": round(t, 3),
            "rss_bytes": bc.rss_bytes(),
            "encoder_state_bytes": bc.tensor_bytes(stream.state.encoder),
            "frontend_state_bytes": bc.tensor_bytes(stream.state.fbank) + bc.tensor_bytes(stream.state.feats),
            "latency_median_s": float(np.median(lat)) if lat.size else None,
            "latency_max_s": float(lat.max()) if lat.size else None,
            "latency_cpu_median_s": float(np.median(lat_cpu)) if lat.size else None,
        })  # fmt: skip
        last_k = k

    sample(0.0, 0)
    next_t = sample_every_s
    chunks = feed_chunks(recognizer, stream, signal.samples, sr, chunk_ms=chunk_ms)
    for k in tqdm(range(n_chunks), desc="stream", unit="chunk", mininterval=1.0, disable=not progress):
        with clock:
            next(chunks)  # the chunk fed and decoded
        wall[k], cpu[k] = clock.wall, clock.cpu
        if ends[k] >= next_t or k == n_chunks - 1:
            sample(float(ends[k]), k + 1)
            if "first" not in snapshots and ends[k] >= snapshot_at_s - 1e-9:
                snapshots["first"] = stream.state.encoder
            while next_t <= ends[k]:
                next_t += sample_every_s
    snapshots["end"] = stream.state.encoder
    with clock:
        stream.input_finished()
        recognizer.decode([stream])
    flush = clock.wall
    result = stream.result
    recognizer.close_stream(stream)
    return StreamRun(result.text, result.finals, sr, step, ends, wall, cpu, timeline, flush, snapshots)


@torch.inference_mode()
def replay_steps(
    bundle: AsrModel, snapshots: dict[str, Any], *, chunk_ms: int, rounds: int, seed: int
) -> dict[str, Any]:
    """Encoder steps from the kept states, interleaved (machine noise hits both alike): median times.

    The live per-chunk times on a shared machine follow its load; this compares the step cost at the start
    and at the end of the stream under the same conditions, through the step the Recognizer uses
    (``PackedStep``; states are never modified by it)."""
    step = PackedStep(bundle.model)
    frames = recognizer_config(chunk_ms, frame_shift_ms=bundle.features.frame_shift_ms).chunk_frames
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, frames, bundle.features.n_mels, generator=g).to(bundle.device)  # [1, T, n_mels]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in snapshots}
    clock = bc.Clock(bundle.device)
    for r in range(rounds + 1):
        for name, state in snapshots.items():
            with clock:
                lp, _ = step(x, state)
                lp.cpu()
            if r:  # round 0 warms up
                times[name].append((clock.wall, clock.cpu))
    out: dict[str, Any] = {"rounds": rounds}
    for name, t in times.items():
        out[f"{name}_median_s"] = float(np.median([w for w, _ in t]))
        out[f"{name}_cpu_median_s"] = float(np.median([c for _, c in t]))
    out["ratio_end_first"] = out["end_median_s"] / out["first_median_s"]
    out["cpu_ratio_end_first"] = out["end_cpu_median_s"] / out["first_cpu_median_s"]
    return out


# ----------------------------------------------------------------------------------------------- scoring


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


# ------------------------------------------------------------------------------------- memory and latency


def _window(duration_s: float) -> float:
    """The "first / last minute" compared: a minute, or half of a shorter stream."""
    return min(WINDOW_S, duration_s / 2)


def summarize(run: StreamRun, *, duration_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(memory, latency): the first window vs the end."""
    window = _window(duration_s)
    chunk_s = run.chunk_samples / run.sample_rate
    first = run.chunk_end_s <= window + 1e-9
    last = run.chunk_end_s - chunk_s >= duration_s - window - 1e-9
    if not first.any():
        first[0] = True
    if not last.any():
        last[-1] = True

    def med(x: np.ndarray, sel: np.ndarray) -> float:
        return float(np.median(x[sel]))

    latency = {
        "window_s": window,
        "chunks": int(run.wall_s.size),
        "first_median_s": med(run.wall_s, first),
        "last_median_s": med(run.wall_s, last),
        "ratio_last_first": med(run.wall_s, last) / max(med(run.wall_s, first), 1e-12),
        "first_cpu_median_s": med(run.cpu_s, first),
        "last_cpu_median_s": med(run.cpu_s, last),
        "cpu_ratio_last_first": med(run.cpu_s, last) / max(med(run.cpu_s, first), 1e-12),
        "median_s": float(np.median(run.wall_s)),
        "p99_s": float(np.quantile(run.wall_s, 0.99)),
        "max_s": float(run.wall_s.max()),
        "flush_s": run.flush_s,
        "real_time_factor": float(run.wall_s.sum() + run.flush_s) / duration_s,
    }
    tl = run.timeline
    start = next((s for s in tl if s["t_s"] >= window - 1e-9), tl[-1])
    end = tl[-1]
    after = [s for s in tl if s["t_s"] >= start["t_s"]]
    slope = None
    if len(after) >= 2:
        t_min = np.array([s["t_s"] for s in after]) / 60.0
        rss_mib = np.array([s["rss_bytes"] for s in after]) / bc.MIB
        slope = float(np.polyfit(t_min, rss_mib, 1)[0])
    enc = {s["encoder_state_bytes"] for s in tl}
    memory = {
        "start_t_s": start["t_s"],
        "end_t_s": end["t_s"],
        "rss_start_bytes": start["rss_bytes"],
        "rss_end_bytes": end["rss_bytes"],
        "rss_ratio_end_start": end["rss_bytes"] / start["rss_bytes"],
        "rss_slope_mib_per_min": slope,
        "encoder_state_start_bytes": start["encoder_state_bytes"],
        "encoder_state_end_bytes": end["encoder_state_bytes"],
        "encoder_state_constant": len(enc) == 1,
        "frontend_state_max_bytes": max(s["frontend_state_bytes"] for s in tl),
        "rss_source": "/proc/self/statm",
    }
    return memory, latency


# ---------------------------------------------------------------------------------------------- outputs


def plot(run: StreamRun, memory: dict[str, Any], path: Path, *, title: str) -> str | None:
    """RSS (MiB) and per-chunk latency (ms) against stream minutes; why no plot was written, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"matplotlib unavailable ({exc})"
    tl = run.timeline
    t_min = [s["t_s"] / 60 for s in tl]
    fig, (ax_rss, ax_lat) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    ax_rss.plot(t_min, [s["rss_bytes"] / bc.MIB for s in tl], marker=".", label="process RSS")
    ax_rss.set_ylabel("RSS (MiB)")
    ax_rss.grid(True, alpha=0.3)
    ax_rss.set_title(
        f"encoder state {memory['encoder_state_start_bytes']:,} B at {memory['start_t_s'] / 60:.1f} min, "
        f"{memory['encoder_state_end_bytes']:,} B at the end",
        fontsize=9,
    )
    lo, hi = ax_rss.get_ylim()
    mid = (lo + hi) / 2
    ax_rss.set_ylim(min(lo, mid * 0.9), max(hi, mid * 1.1))  # a flat line stays visibly flat
    ax_lat.scatter(run.chunk_end_s / 60, run.wall_s * 1e3, s=1, alpha=0.25, color="grey", label="per chunk")
    for key, color, label in (("latency_median_s", "C1", "median (wall)"),
                              ("latency_cpu_median_s", "C2", "median (thread CPU)")):
        pts = [(s["t_s"] / 60, s[key] * 1e3) for s in tl if s[key] is not None]
        if pts:
            ax_lat.plot(*zip(*pts), color=color, label=f"{label} per sampling interval")
    ax_lat.set_yscale("log")
    ax_lat.set_ylabel("compute per chunk (ms)")
    ax_lat.set_xlabel("stream time (minutes)")
    ax_lat.grid(True, which="both", alpha=0.3)
    ax_lat.legend(fontsize=8)
    bc.save_figure(fig, path, title=title)
    return None


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def table(result: dict[str, Any]) -> str:
    st, wer, mem, lat = result["stream"], result["wer"], result["memory"], result["latency"]
    label = "PER" if wer["unit"] == "phone" else "WER"
    rep = lat["replay"]
    rows = [
        ("stream", f"{st['duration_s'] / 60:.2f} min, {st['occurrences']} utterances "
                   f"({st['distinct_utterances']} distinct, {st['cycles']} pass(es)), "
                   f"{lat['chunks']} chunks, {st['segments']} final segments"),
        (f"{label} separate (full-utterance)", _pct(wer["separate"])),
        (f"{label} stream (one string)", _pct(wer["stream"])),
        ("relative difference", f"{_pct(wer['relative_difference'])} "
                                f"({'within' if wer['within_5pct_relative'] else 'NOT within'} 5%)"),
        (f"{label} separate joined (one string)", _pct(wer["separate_joined"])),
        (f"{label} stream split by time", f"{_pct(wer['stream_by_time'])} "
                                          f"({wer['identical_by_time']}/{wer['occurrences']} identical)"),
        ("RSS after first window / end", f"{bc.format_bytes(mem['rss_start_bytes'])} / "
                                         f"{bc.format_bytes(mem['rss_end_bytes'])} "
                                         f"(x{mem['rss_ratio_end_start']:.3f})"),
        ("RSS slope after first window", "-" if mem["rss_slope_mib_per_min"] is None
                                         else f"{mem['rss_slope_mib_per_min']:+.3f} MiB/min"),
        ("encoder state start / end", f"{mem['encoder_state_start_bytes']:,} / "
                                      f"{mem['encoder_state_end_bytes']:,} B"),
        (f"latency first / last {lat['window_s']:.0f} s (wall)",
         f"{bc.format_seconds(lat['first_median_s'])} / {bc.format_seconds(lat['last_median_s'])} "
         f"(x{lat['ratio_last_first']:.3f})"),
        ("latency first / last (thread CPU)",
         f"{bc.format_seconds(lat['first_cpu_median_s'])} / {bc.format_seconds(lat['last_cpu_median_s'])} "
         f"(x{lat['cpu_ratio_last_first']:.3f})"),
        ("encoder step replayed, first / end",
         f"{bc.format_seconds(rep['first_cpu_median_s'])} / {bc.format_seconds(rep['end_cpu_median_s'])} "
         f"(x{rep['cpu_ratio_end_first']:.3f}, thread CPU, {rep['rounds']} interleaved rounds)"),
        ("real-time factor", f"{lat['real_time_factor']:.4f}"),
    ]  # fmt: skip
    return bc.render_table(("measure", "value"), rows)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    import json

    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the bundled model)")
    p.add_argument("--data", default="data/synth/test",
                   help="test utterances: a manifest, Kaldi data dir or LibriSpeech-layout folder")
    p.add_argument("--minutes", type=float, default=30.0, help="length of the stream in minutes")
    p.add_argument("--pause-s", default="0.5-2.0",
                   help="pause before each utterance (and after the last): 'LO-HI' seconds, uniform")
    p.add_argument("--pause-noise", type=float, default=0.0,
                   help="RMS of Gaussian noise in the pauses (0: digital silence; 0.001 is about -60 dBFS)")
    p.add_argument("--chunk-ms", type=int, default=160, help="audio per chunk fed to the recognizer")
    p.add_argument("--silence-after-speech", type=float, default=EndpointConfig.silence_after_speech,
                   help="endpoint rule: seconds of trailing silence after speech that end a segment")
    p.add_argument("--reset-state-at-endpoint", action="store_true",
                   help="also zero the encoder's attention state (S, z) at each endpoint (default: carry it)")
    p.add_argument("--sample-every-s", type=float, default=10.0, help="RSS/state sampling interval (audio s)")
    p.add_argument("--replay-rounds", type=int, default=200,
                   help="interleaved encoder steps timed from the first-window and the end states")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="order of the utterances, pauses and pause noise")
    p.add_argument("--out", type=Path, default=Path("runs/long_stream"), help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p.parse_args(argv)  # fmt: skip


def _check_args(args: argparse.Namespace) -> None:
    if not math.isfinite(args.minutes) or args.minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    if not math.isfinite(args.sample_every_s) or args.sample_every_s <= 0:
        raise ValueError(f"--sample-every-s must be > 0, got {args.sample_every_s}")
    if not math.isfinite(args.pause_noise) or args.pause_noise < 0:
        raise ValueError(f"--pause-noise must be >= 0, got {args.pause_noise}")
    if args.replay_rounds < 1:
        raise ValueError(f"--replay-rounds must be >= 1, got {args.replay_rounds}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not Path(args.data).exists():
        raise ValueError(f"--data {args.data!r} does not exist")


def run(args: argparse.Namespace, *, command: str) -> dict[str, Any]:
    """The whole measurement; returns what long_stream.json holds (and writes it, the PNG and the JSONL)."""
    _check_args(args)
    pause = parse_pause_range(args.pause_s)
    torch.set_num_threads(args.threads)
    model_path = resolve_model_path(args.model)
    bundle = load_asr_model(model_path, device=args.device)
    if not bundle.model.config.causal:
        raise ValueError(f"model {model_path} is bidirectional (causal=False): it cannot stream")
    recognizer_config(args.chunk_ms, frame_shift_ms=bundle.features.frame_shift_ms)  # validates --chunk-ms
    endpoint = EndpointConfig(
        silence_after_speech=args.silence_after_speech, reset_attention_state=args.reset_state_at_endpoint
    )
    utterances = load_utterances(args.data)
    sr = bundle.features.sample_rate
    started = time.perf_counter()
    signal = build_signal(
        utterances, seconds=60 * args.minutes, pause_s=pause, pause_noise=args.pause_noise, sample_rate=sr,
        seed=args.seed,
    )  # fmt: skip
    duration = signal.samples.numel() / sr
    logger.info(
        "stream of %.1f min: %d utterances (%d distinct, %d pass(es)) from %s; model %s",
        duration / 60, len(signal.placements), len({p.utt_id for p in signal.placements}), signal.cycles,
        args.data, model_path,
    )  # fmt: skip
    progress = not args.no_progress
    stream_run = run_stream(
        bundle, signal, chunk_ms=args.chunk_ms, endpoint=endpoint, sample_every_s=args.sample_every_s,
        snapshot_at_s=_window(duration), device=args.device, progress=progress,
    )  # fmt: skip
    replay = replay_steps(bundle, stream_run.snapshots, chunk_ms=args.chunk_ms, rounds=args.replay_rounds,
                          seed=args.seed)  # fmt: skip
    by_id = {u.id: u for u in utterances}
    wer, rows, transcript = score(bundle, signal, stream_run, utterances=by_id, progress=progress)
    memory, latency = summarize(stream_run, duration_s=duration)
    latency["separate_decode_compute_s"] = wer.pop("separate_compute_s")
    latency["replay"] = replay
    speech = sum(p.end - p.start for p in signal.placements) / sr
    result: dict[str, Any] = {
        "command": command,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        | {"model_path": str(model_path), "pause_range_s": list(pause),
           "chunk_samples": stream_run.chunk_samples, "endpoint": dataclasses.asdict(endpoint),
           "model_config": dataclasses.asdict(bundle.model.config)},
        "machine": bc.machine_info(torch.device(args.device)),
        "stream": {
            "duration_s": duration, "samples": signal.samples.numel(), "speech_s": speech,
            "pause_s": sum(signal.pauses_s), "occurrences": len(signal.placements),
            "distinct_utterances": len({p.utt_id for p in signal.placements}), "cycles": signal.cycles,
            "skipped": signal.skipped, "segments": len(stream_run.segments),
            "endpoints": dict(Counter(s.endpoint for s in stream_run.segments)),
        },
        "wer": wer,
        "memory": memory,
        "latency": latency,
        "timeline": stream_run.timeline,
        "transcript": transcript,
        "wall_s": time.perf_counter() - started,
    }  # fmt: skip
    result["machine"]["load_average_1m_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    bc.write_json(out / "long_stream.json", result)
    _write_jsonl(out / "utterances.jsonl", rows)
    _write_jsonl(out / "segments.jsonl", [dataclasses.asdict(s) for s in stream_run.segments])
    title = f"{model_path} - {duration / 60:.1f} min stream"
    why = plot(stream_run, memory, out / "long_stream.png", title=title)
    if why:
        logger.warning("no plot: %s", why)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    command = shlex.join(["python", "tools/long_stream.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        result = run(args, command=command)
    except ValueError as exc:
        print(f"long_stream: error: {exc}", file=sys.stderr)
        return 2
    m = result["machine"]
    print(f"{m['cpu_model']}, torch {m['torch']}, {args.threads} thread(s), device {args.device}, "
          f"load average {m['load_average_1m']:.1f} -> {m['load_average_1m_end']:.1f}")  # fmt: skip
    print(table(result))
    print(f"\nwrote {args.out}/long_stream.json, long_stream.png, utterances.jsonl, segments.jsonl "
          f"({result['wall_s']:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
