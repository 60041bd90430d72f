"""Section 1 of the streaming benchmark: per-chunk latency as a stream grows (linear, softmax + KV cache,
softmax recomputing the history)."""

from __future__ import annotations

import argparse
from typing import Any

import _bench_common as bc
import numpy as np
import torch

from asr.model.attention import SoftmaxAttentionState
from asr.model.blocks import BlockState
from asr.model.ctc import CTCModel
from asr.model.encoder import EncoderState
from bench.streaming_setup import CHUNK_FRAMES, CHUNK_S, FRAME_RATE, TARGET_FLAT, build_model, step_function


def _summary(wall: list[float] | np.ndarray, cpu: list[float] | np.ndarray) -> dict[str, float]:
    return {
        "median_s": float(np.median(wall)),
        "min_s": float(np.min(wall)),
        "cpu_median_s": float(np.median(cpu)),
        "steps": int(len(wall)),
    }


def _step_timer(model: CTCModel, device: torch.device, kind: str):
    x = torch.randn(1, CHUNK_FRAMES, model.config.input_dim, device=device)
    fn = step_function(model, kind)

    def step(state: EncoderState) -> tuple[float, float, EncoderState]:
        with bc.Clock(device) as clock:
            _, new = fn(x, state)
        return clock.wall, clock.cpu, new

    return step


@torch.inference_mode()
def stepped_trace(
    model: CTCModel, checkpoints_s: list[float], *, device: torch.device, window: int, label: str, kind: str
) -> tuple[dict[float, dict[str, float]], dict[float, EncoderState]]:
    """Step through the longest checkpoint; the median and min step time of the ``window`` steps before each
    checkpoint, and the state reached there."""
    from tqdm import tqdm

    step = _step_timer(model, device, kind)
    targets = {int(round(c / CHUNK_S)): c for c in checkpoints_s}
    total = max(targets)
    wall, cpu = np.zeros(total), np.zeros(total)
    state = model.init_state(1, device)
    summary, states = {}, {}
    for i in tqdm(range(total), desc=f"{label}: stepping {total} chunks", unit="chunk", mininterval=5.0):
        wall[i], cpu[i], state = step(state)
        if i + 1 in targets:
            lo = max(0, i + 1 - window)
            summary[targets[i + 1]] = _summary(wall[lo : i + 1], cpu[lo : i + 1])
            states[targets[i + 1]] = state
    return summary, states


@torch.inference_mode()
def replay(
    model: CTCModel, states: dict[float, EncoderState], *, device: torch.device, rounds: int, kind: str
) -> dict[float, dict[str, float]]:
    """One step from each checkpoint's state, round robin, ``rounds`` times: median and min per checkpoint."""
    step = _step_timer(model, device, kind)
    for s in states.values():  # warm-up
        step(s)
    wall: dict[float, list[float]] = {c: [] for c in states}
    cpu: dict[float, list[float]] = {c: [] for c in states}
    for _ in range(rounds):
        for c, s in states.items():
            w, t, _ = step(s)
            wall[c].append(w)
            cpu[c].append(t)
    return {c: _summary(wall[c], cpu[c]) for c in states}


def kv_cache_state(model: CTCModel, seconds: float, *, device: torch.device, seed: int) -> EncoderState:
    """A softmax model's state after ``seconds`` of audio: random keys/values of the right length."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    cfg = model.config
    frames = int(round(seconds * FRAME_RATE / cfg.subsampling_factor))
    fresh = model.init_state(1, device)
    layers = []
    for block_state in fresh.layers:
        k = torch.randn(1, cfg.num_heads, frames, cfg.head_dim, generator=g).to(device)
        v = torch.randn(1, cfg.num_heads, frames, cfg.head_dim, generator=g).to(device)
        valid = torch.ones(1, frames, dtype=torch.bool, device=device)
        layers.append(BlockState(SoftmaxAttentionState(k, v, valid), block_state.conv))
    return EncoderState(fresh.subsampling, tuple(layers))


@torch.inference_mode()
def recompute_latency(
    model: CTCModel, checkpoints_s: list[float], *, device: torch.device, cap_s: float
) -> dict[float, dict[str, Any]]:
    """Time of one full causal forward over the whole history at each checkpoint (the cost per chunk of a
    softmax model without a cache); beyond ``cap_s`` per call, extrapolated from the measured growth."""
    out: dict[float, dict[str, Any]] = {}
    points: list[tuple[int, float]] = []
    for c in checkpoints_s:
        frames = int(round(c * FRAME_RATE))
        predicted = bc.predict_next(points, frames, min_exponent=1.0, max_exponent=2.0) if points else None
        if predicted is not None and predicted > cap_s:
            out[c] = {"median_s": predicted, "cpu_median_s": predicted, "extrapolated": True}
            points.append((frames, predicted))
            continue
        feats = torch.randn(1, frames, model.config.input_dim, device=device)
        lengths = torch.tensor([frames], device=device)
        walls, cpus = [], []
        for _ in range(3 if frames <= 10 * FRAME_RATE else 1):  # one call is plenty once it takes seconds
            with bc.Clock(device) as clock:
                model(feats, lengths)
            walls.append(clock.wall)
            cpus.append(clock.cpu)
        out[c] = {**_summary(walls, cpus), "extrapolated": False}
        points.append((frames, out[c]["cpu_median_s"]))
        del feats
    return out


def run_latency(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    checkpoints = list(args.checkpoints)
    kind = args.step
    linear = build_model("linear", seed=args.seed, device=device, overrides=args.model, base=args.base)
    trace, states = stepped_trace(linear, checkpoints, device=device, window=args.window, label="linear", kind=kind)
    linear_replay = replay(linear, states, device=device, rounds=args.replay_rounds, kind=kind)
    del states

    softmax = build_model("softmax", seed=args.seed, device=device, overrides=args.model, base=args.base)
    real_upto = [c for c in checkpoints if c <= 60]
    soft_trace, _ = stepped_trace(
        softmax, real_upto, device=device, window=args.window, label="softmax+KV", kind=kind
    )
    caches = {c: kv_cache_state(softmax, c, device=device, seed=args.seed) for c in checkpoints}
    soft_replay = replay(softmax, caches, device=device, rounds=max(3, args.replay_rounds // 10), kind=kind)
    kv_bytes = {c: bc.tensor_bytes(s) for c, s in caches.items()}
    del caches
    recompute = recompute_latency(softmax, checkpoints, device=device, cap_s=args.recompute_cap_s)

    first, last = checkpoints[0], checkpoints[-1]
    ratio = linear_replay[last]["cpu_median_s"] / linear_replay[first]["cpu_median_s"]
    ratio_wall = linear_replay[last]["median_s"] / linear_replay[first]["median_s"]
    ratio_trace = trace[last]["cpu_median_s"] / trace[first]["cpu_median_s"]
    return {
        "checkpoints_s": checkpoints,
        "linear_trace": trace,
        "linear_replay": linear_replay,
        "softmax_kv_trace": soft_trace,
        "softmax_kv_replay": soft_replay,
        "softmax_kv_state_bytes": kv_bytes,
        "softmax_recompute": recompute,
        "linear_state_bytes": bc.tensor_bytes(linear.init_state(1, device)),
        "linear_ratio_last_first": ratio,
        "linear_ratio_last_first_wall": ratio_wall,
        "linear_ratio_last_first_trace": ratio_trace,
        "target_ratio": TARGET_FLAT,
    }
