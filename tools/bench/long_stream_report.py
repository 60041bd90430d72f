"""The long-stream test's report: memory and latency summaries, the figure, the table and the JSONL files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _bench_common as bc
import numpy as np

from bench.long_stream_run import StreamRun

WINDOW_S = 60.0  # "first minute" / "last minute"


def window_s(duration_s: float) -> float:
    """The "first / last minute" compared: a minute, or half of a shorter stream."""
    return min(WINDOW_S, duration_s / 2)


def summarize(run: StreamRun, *, duration_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(memory, latency): the first window vs the end."""
    window = window_s(duration_s)
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


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    import json

    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
