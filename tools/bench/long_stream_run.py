"""The long-stream test's measurement: the signal fed chunk by chunk into one stream of the Recognizer, every
chunk timed, memory sampled, encoder states kept and stepped again at both ends."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import _bench_common as bc
import numpy as np
import torch
from tqdm import tqdm

from asr.model import PackedStep
from asr.pipeline import AsrModel
from asr.streaming import EndpointConfig, Recognizer, Segment
from asr.streaming.feed import chunk_samples, feed_chunks, recognizer_config
from bench.long_stream_signal import LongSignal


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
    config = recognizer_config(bundle, chunk_ms)
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
    frames = recognizer_config(bundle, chunk_ms).chunk_frames
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
