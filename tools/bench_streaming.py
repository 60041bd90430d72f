#!/usr/bin/env python
"""Streaming benchmark: per-chunk latency as a stream grows, real-time factor, batched throughput per core.

The model is the bundled model's configuration (the product's default model; ``--base default`` takes
ModelConfig's defaults instead), with any ``model.FIELD=VALUE`` overrides, and it steps as the Recognizer
steps it: through ``asr.model.PackedStep`` (``--step module``: through ``CTCModel.step``, the plain form).

1. Latency per 160 ms chunk after 10 s, 1 min, 10 min and 60 min of audio, for
   - linear: the model stepped chunk by chunk through the whole hour (22,500 steps of random
     features); each step is timed (the trace), and the state reached at each checkpoint is kept and then
     re-timed interleaved with the others ("replay": machine noise hits all checkpoints alike);
   - softmax + KV cache: the same size with softmax attention; a step is timed from a KV cache of each
     checkpoint's length (random keys/values: the cost depends on the length only). Up to 1 min it is also
     stepped for real, to check the synthetic cache against the real one;
   - softmax recomputing the whole history: one full forward over the history at each checkpoint (measured
     up to --recompute-cap-s per call, extrapolated beyond it from the measured growth, and marked so).
2. Real-time factor of one stream on one thread, 160 ms chunks, through the Recognizer (samples in, text
   out) on real speech (pocketsphinx-testdata's LibriVox files), split into front end, encoder and the rest;
   the same with the module step, timed in turns with it; beside them pocketsphinx on the same audio, fed in
   the same chunks.
3. Throughput: the largest batch of streams one core steps within 160 ms per 160 ms chunk (the packed step
   with its C kernels and on PyTorch ops, the module step, and the whole Recognizer; each the median of
   --search-repeats searches); memory per stream (state bytes); the bound = single-core matmul FLOP/s
   measured here / the model's FLOPs per second of audio (CTCModel.flops_per_second), and achieved / bound:
   against one matmul probe, against the probes bracketing each search, and in turns (each step right after
   a probe) - the last two set the step against the machine's speed at the time and decide the check.

Weights are random (seeded): speed does not depend on them. Writes DIR/bench_streaming.{json,md,png}.

    python tools/bench_streaming.py                 # everything (~20-30 min on a quiet 2-core machine)
    python tools/bench_streaming.py --quick         # 10 s and 1 min checkpoints, smaller searches (~2 min)
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _bench_common as bc
import numpy as np
import torch

from asr.configs import apply_overrides, parse_cli_overrides
from asr.features import FbankConfig, GlobalCMVN, StreamingFbank, compute_fbank
from asr.model.attention import SoftmaxAttentionState
from asr.model.blocks import BlockState
from asr.model.checkpoint import load_checkpoint
from asr.model.config import ModelConfig
from asr.model.ctc import CTCModel
from asr.model.encoder import EncoderState
from asr.model.inference import PackedStep
from asr.pipeline import AsrModel, resolve_model_path
from asr.streaming.feed import stream_samples
from asr.streaming.recognizer import Recognizer, RecognizerConfig
from asr.text.chars import CharTokenizer

CHUNK_FRAMES = 16  # feature frames per step: 160 ms
FRAME_RATE = 100  # feature frames per second
CHUNK_S = CHUNK_FRAMES / FRAME_RATE
CHECKPOINTS_S = (10, 60, 600, 3600)
QUICK_CHECKPOINTS_S = (10, 60)
SPEECH_GLOB = "/usr/share/pocketsphinx/test/data/librivox/*.wav"
TARGET_FLAT = 1.1  # linear latency at the last checkpoint / at the first
TARGET_RTF = 0.05
TARGET_OF_BOUND = 0.5  # streams sustained / (matmul FLOP/s / model FLOPs per audio second)


#: ModelConfig fields that apply to linear attention only: dropped from the overrides of the softmax baseline.
LINEAR_ONLY = ("feature_map", "num_random_features", "decay", "decay_init_min", "decay_init_max", "output_norm",
               "attention_eps", "backend", "chunk_size")  # fmt: skip


def base_config(base: str) -> ModelConfig:
    """``"bundled"``: the bundled model's config (asr/assets/model); ``"default"``: ModelConfig's defaults with
    the character tokenizer's vocabulary."""
    if base == "bundled":
        return load_checkpoint(resolve_model_path(None)).config
    if base == "default":
        return ModelConfig(vocab_size=CharTokenizer().vocab_size)
    raise ValueError(f"base must be 'bundled' or 'default', got {base!r}")


def model_config(attention: str, overrides: dict[str, Any], base: str = "bundled") -> ModelConfig:
    """``base_config(base)`` with ``attention`` and the ``model.*`` overrides applied. The softmax baseline
    keeps the size and drops the linear-only fields (back to their defaults)."""
    cfg = base_config(base)
    if attention == "softmax":
        defaults = ModelConfig()
        cfg = dataclasses.replace(cfg, **{name: getattr(defaults, name) for name in LINEAR_ONLY})
        overrides = {k: v for k, v in overrides.items() if k not in LINEAR_ONLY}
    cfg = dataclasses.replace(cfg, attention=attention)
    return apply_overrides(cfg, overrides, prefix="model.")


def build_model(
    attention: str, *, seed: int, device: torch.device, overrides: dict[str, Any] | None = None, base: str = "bundled"
) -> CTCModel:
    """``model_config(attention, overrides, base)``, random weights (seeded), eval mode."""
    torch.manual_seed(seed)
    return CTCModel(model_config(attention, overrides or {}, base)).eval().to(device)


STEPS = ("packed", "packed_torch", "module")


def step_function(model: CTCModel, kind: str):
    """How the benchmark steps ``model``: ``"packed"`` (PackedStep as the Recognizer has it: on the CPU its
    linear attention in the fused C kernel), ``"packed_torch"`` (PackedStep on PyTorch ops only) or
    ``"module"`` (CTCModel.step, the plain form)."""
    if kind == "packed":
        return PackedStep(model)
    if kind == "packed_torch":
        return PackedStep(model, kernel="torch")
    if kind == "module":
        return model.step
    raise ValueError(f"step must be one of {STEPS}, got {kind!r}")


# ------------------------------------------------------------------------------------------- 1. latency


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


# ---------------------------------------------------------------------------------------------- 2. RTF


def load_speech(max_files: int | None) -> tuple[np.ndarray, list[str]]:
    """The LibriVox test files of pocketsphinx-testdata, concatenated (16 kHz mono float32)."""
    import soundfile as sf

    files = sorted(glob.glob(SPEECH_GLOB))[:max_files]
    if not files:
        raise SystemExit(f"no speech files at {SPEECH_GLOB}: install the Debian package pocketsphinx-testdata")
    parts = []
    for f in files:
        x, sr = sf.read(f, dtype="float32")
        if sr != 16000 or x.ndim != 1:
            raise SystemExit(f"{f}: expected 16 kHz mono, got {sr} Hz, shape {x.shape}")
        parts.append(x)
    return np.concatenate(parts), files


def make_bundle(
    audio: np.ndarray, *, seed: int, device: torch.device, overrides: dict[str, Any], base: str
) -> AsrModel:
    features = FbankConfig()
    cmvn = GlobalCMVN.fit([compute_fbank(torch.from_numpy(audio), features)])
    model = build_model("linear", seed=seed, device=device, overrides=overrides, base=base)
    return AsrModel(model=model, tokenizer=CharTokenizer(), cmvn=cmvn, features=features)


@torch.inference_mode()
def run_rtf(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    audio, files = load_speech(1 if args.quick else None)
    seconds = len(audio) / 16000
    bundle = make_bundle(audio, seed=args.seed, device=device, overrides=args.model, base=args.base)
    kinds = ("packed", "module")  # the Recognizer's step, and the plain module step beside it
    recognizers = {
        kind: Recognizer(
            bundle, device=device, config=RecognizerConfig(chunk_frames=CHUNK_FRAMES, step=kind)
        )
        for kind in kinds
    }
    chunk = int(CHUNK_S * 16000)
    chunk_ms = CHUNK_FRAMES * 1000 // FRAME_RATE
    for rec in recognizers.values():
        stream_samples(rec, audio[: 16000 * 2], 16000, chunk_ms=chunk_ms)  # warm-up

    def measure(fns: dict[str, Any]) -> dict[str, tuple[float, float]]:
        """Median wall and CPU seconds of each function, timed in turns (noise hits them alike)."""
        walls: dict[str, list[float]] = {k: [] for k in fns}
        cpus: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.rtf_repeats):
            for key, fn in fns.items():
                with bc.Clock(device) as clock:
                    fn()
                walls[key].append(clock.wall)
                cpus[key].append(clock.cpu)
        return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in fns}

    fbank = StreamingFbank(bundle.features)

    def front_end() -> None:  # the front end alone, same chunks
        state = fbank.init_state()
        for i in range(0, len(audio), chunk):
            feats, state = fbank.step(torch.from_numpy(audio[i : i + chunk]), state)
            bundle.cmvn.apply(feats)

    feats = bundle.featurize(torch.from_numpy(audio)).unsqueeze(0)
    n = feats.shape[1] // CHUNK_FRAMES * CHUNK_FRAMES
    steps = {kind: step_function(bundle.model, kind) for kind in kinds}

    def encoder(kind: str, frames: int = CHUNK_FRAMES) -> None:  # the encoder alone, same chunks
        state = bundle.model.init_state(1, device)
        for i in range(0, n - frames + 1, frames):
            _, state = steps[kind](feats[:, i : i + frames], state)

    # everything timed in turns, repeat after repeat: machine noise hits all parts alike
    fns: dict[str, Any] = {f"recognizer_{kind}": (lambda rec=rec: stream_samples(rec, audio, 16000, chunk_ms=chunk_ms))
                           for kind, rec in recognizers.items()}  # fmt: skip
    fns["front"] = front_end
    for kind in kinds:
        fns[f"encoder_{kind}"] = lambda kind=kind: encoder(kind)
    for frames in (2 * CHUNK_FRAMES, 4 * CHUNK_FRAMES):
        fns[f"encoder_packed_{frames}"] = lambda frames=frames: encoder("packed", frames)
    timed = measure(fns)
    full = {kind: timed[f"recognizer_{kind}"] for kind in kinds}
    front = timed["front"]
    enc = {kind: timed[f"encoder_{kind}"] for kind in kinds}
    by_chunk = {CHUNK_FRAMES * 10: enc["packed"][1] / ((n // CHUNK_FRAMES) * CHUNK_FRAMES / FRAME_RATE)}
    for frames in (2 * CHUNK_FRAMES, 4 * CHUNK_FRAMES):
        by_chunk[frames * 10] = timed[f"encoder_packed_{frames}"][1] / ((n // frames) * frames / FRAME_RATE)
    out: dict[str, Any] = {"files": files, "audio_s": seconds, "target_rtf": TARGET_RTF}
    for key, idx in (("", 1), ("wall_", 0)):  # CPU time first (load-independent), then wall time
        out[f"{key}rtf"] = full["packed"][idx] / seconds
        out[f"{key}front_end_rtf"] = front[idx] / seconds
        out[f"{key}encoder_rtf"] = enc["packed"][idx] / (n / FRAME_RATE)
        out[f"{key}rest_rtf"] = out[f"{key}rtf"] - out[f"{key}front_end_rtf"] - out[f"{key}encoder_rtf"]
        out[f"{key}per_chunk_ms"] = 1e3 * full["packed"][idx] / (seconds / CHUNK_S)
        out[f"{key}module_rtf"] = full["module"][idx] / seconds
        out[f"{key}module_encoder_rtf"] = enc["module"][idx] / (n / FRAME_RATE)
    out["encoder_speedup"] = out["module_encoder_rtf"] / out["encoder_rtf"]
    out["encoder_rtf_by_chunk_ms"] = by_chunk
    out["pocketsphinx"] = run_pocketsphinx(audio, chunk, repeats=args.rtf_repeats)
    return out


def run_pocketsphinx(audio: np.ndarray, chunk: int, *, repeats: int) -> dict[str, Any]:
    try:
        from pocketsphinx import Decoder
    except ImportError as exc:
        return {"error": f"pocketsphinx not installed ({exc}); pip install pocketsphinx"}
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    decoder = Decoder(loglevel="FATAL")
    walls, cpus, text = [], [], ""
    for _ in range(repeats):
        with bc.Clock(torch.device("cpu")) as clock:
            decoder.start_utt()
            for i in range(0, len(pcm), chunk):
                decoder.process_raw(pcm[i : i + chunk].tobytes(), False, False)
            decoder.end_utt()
        walls.append(clock.wall)
        cpus.append(clock.cpu)
        hyp = decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
    seconds = len(audio) / 16000
    return {"rtf": statistics.median(cpus) / seconds, "wall_rtf": statistics.median(walls) / seconds, "text": text}


# ------------------------------------------------------------------------------------------ 3. throughput


def matmul_flops(device: torch.device, *, n: int = 1024, repeats: int = 10) -> float:
    """Single-thread fp32 matmul FLOP/s: the best of ``repeats`` n x n x n products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    timing = bc.time_call(lambda: a @ b, device=device, warmup=1, repeats=repeats, budget_s=5.0)
    return 2 * n**3 / timing.min_s


def _largest_within(time_of, budget_s: float, *, start: int, n_max: int) -> tuple[int, list[tuple[int, float]]]:
    """The largest N with time_of(N) < budget_s: doubling, then bisection (time_of assumed increasing)."""
    seen: list[tuple[int, float]] = []

    def ok(n: int) -> bool:
        t = time_of(n)
        seen.append((n, t))
        return t < budget_s

    lo, hi = 0, None
    n = start
    while n <= n_max:
        if ok(n):
            lo, n = n, n * 2
        else:
            hi = n
            break
    if hi is None:  # every size tried fits: lo is a lower bound only (the caller reports it as ">= lo")
        return lo, sorted(seen)
    while hi - lo > max(1, lo // 16):  # ~6% resolution
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, sorted(seen)


def _search(
    time_of, budget_s: float, *, start: int, n_max: int, repeats: int, probe=None
) -> dict[str, Any]:
    """``_largest_within`` run ``repeats`` times: the median of the sizes found (one probe's bad second
    decides a single search on a shared machine), every search's size and every probe. With ``probe`` (a
    matmul FLOP/s probe), each search is bracketed by one before and one after: ``search_matmul`` holds their
    means, so each search can be set against the machine's speed during it."""
    found, points, rates = [], [], []
    for _ in range(repeats):
        before = probe() if probe else None
        n, seen = _largest_within(time_of, budget_s, start=start, n_max=n_max)
        if probe:
            rates.append((before + probe()) / 2)
        found.append(n)
        points += seen
    return {"max_streams": int(statistics.median_low(found)), "searches": found, "points": sorted(points),
            "capped": _capped(points), "search_matmul": rates}  # fmt: skip


def _capped(points: list[tuple[int, float]]) -> bool:
    """True when every batch size tried ran within real time (the search hit --max-streams)."""
    return all(t < CHUNK_S for _, t in points)


@torch.inference_mode()
def run_throughput(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    model = build_model("linear", seed=args.seed, device=device, overrides=args.model, base=args.base)

    def batch_stepper(n: int, kind: str):
        """One timed batch step of ``n`` streams per call (CPU seconds); the state carries on."""
        step = step_function(model, kind)
        if kind != "module":  # as the Recognizer steps a batch: its stacked state is updated in place
            packed = step
            step = lambda x, state: packed(x, state, donate=True)  # noqa: E731
        x = torch.randn(n, CHUNK_FRAMES, model.config.input_dim, device=device)
        state = model.init_state(n, device)
        for _ in range(2):  # warm-up (the first steps at a new size also fault in fresh memory)
            _, state = step(x, state)

        def timed() -> float:
            nonlocal state
            with bc.Clock(device) as clock:
                _, state = step(x, state)
            return clock.cpu

        return timed

    def model_step_time(n: int, kind: str) -> float:
        timed = batch_stepper(n, kind)
        return statistics.median(timed() for _ in range(7))

    search = dict(start=8, n_max=args.max_streams, repeats=args.search_repeats)
    probe = lambda: matmul_flops(device, repeats=3)  # noqa: E731
    model_search = _search(lambda n: model_step_time(n, "packed"), CHUNK_S, **search, probe=probe)
    torch_search = _search(lambda n: model_step_time(n, "packed_torch"), CHUNK_S, **search)
    module_search = _search(lambda n: model_step_time(n, "module"), CHUNK_S, **search)
    n_model, n_torch, n_module = (x["max_streams"] for x in (model_search, torch_search, module_search))

    audio, _ = load_speech(1)
    bundle = make_bundle(audio, seed=args.seed, device=device, overrides=args.model, base=args.base)
    chunk = int(CHUNK_S * 16000)

    def recognizer_time(n: int) -> float:
        rec = Recognizer(bundle, device=device, config=RecognizerConfig(chunk_frames=CHUNK_FRAMES))
        streams = [rec.create_stream() for _ in range(n)]
        offsets = np.random.default_rng(0).integers(0, len(audio) - 8 * chunk, size=n)
        cpus = []
        for r in range(6):  # round 0 is warm-up
            with bc.Clock(device) as clock:  # samples in, text out: accepting the chunk is part of the work
                for s, o in zip(streams, offsets):
                    s.accept_waveform(audio[o + r * chunk : o + (r + 1) * chunk], 16000)
                rec.decode(streams)
            cpus.append(clock.cpu)
        return statistics.median(cpus[1:])

    rec_search = _search(recognizer_time, CHUNK_S, **search)
    n_rec = rec_search["max_streams"]

    flops = matmul_flops(device)
    per_second = model.flops_per_second()
    bound = flops / per_second
    # achieved / bound, measured in turns: the model's FLOP rate in a batch step over the matmul rate measured
    # just before it, round after round (machine noise moves both alike; the searches above cannot pair them)
    paired = {}
    for kind, n in (("packed", n_model), ("packed_torch", n_torch), ("module", n_module)):
        n = max(n, 8)
        timed, ratios, capacity, mms = batch_stepper(n, kind), [], [], []
        for _ in range(args.paired_rounds):
            mms.append(matmul_flops(device, repeats=3))
            capacity.append(n * CHUNK_S / timed())  # streams this batch step's speed sustains in real time
            ratios.append(capacity[-1] * per_second / mms[-1])
        paired[kind] = {"streams": n, "ratios": ratios, "median": statistics.median(ratios),
                        "capacity": capacity, "capacity_median": statistics.median(capacity),
                        "matmul_flops_per_s": mms}  # fmt: skip
    rec_state = Recognizer(bundle, device=device).initial_state()
    return {
        "chunk_s": CHUNK_S,
        "search_repeats": args.search_repeats,
        "model_step": model_search,
        "step_kernel": PackedStep(model).kernel,
        "packed_torch_step": torch_search,
        "module_step": module_search,
        "recognizer": rec_search,
        "matmul_flops_per_s": flops,
        "model_flops_per_audio_s": per_second,
        "bound_streams": bound,
        "achieved_over_bound_model": n_model / bound,
        # each search against the matmul probes bracketing it (the machine's speed during that search)
        "search_over_own_bound_model": [n * per_second / mm for n, mm in
                                        zip(model_search["searches"], model_search["search_matmul"])],
        "achieved_over_bound_packed_torch": n_torch / bound,
        "achieved_over_bound_module": n_module / bound,
        "paired_over_bound": paired,
        "achieved_over_bound_recognizer": n_rec / bound,
        "encoder_state_bytes_per_stream": bc.tensor_bytes(rec_state.encoder),
        "stream_state_bytes_per_stream": bc.tensor_bytes(rec_state),
        "params": model.num_params(),
    }


# -------------------------------------------------------------------------------------------- reporting


def _label(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def tables(results: dict[str, Any], *, markdown: bool) -> str:
    """CPU-time figures (one thread: the work itself) first; wall-clock beside them where it matters."""
    fmt = bc.format_seconds
    parts = []
    lat = results.get("latency")
    if lat:
        header = ["history", "linear", "linear (wall)", "linear (trace)", "softmax+KV", "softmax+KV (real)",
                  "KV cache", "softmax recompute"]  # fmt: skip
        rows = []
        for c in lat["checkpoints_s"]:
            rc = lat["softmax_recompute"][c]
            real = lat["softmax_kv_trace"].get(c)
            rows.append([
                _label(c), fmt(lat["linear_replay"][c]["cpu_median_s"]), fmt(lat["linear_replay"][c]["median_s"]),
                fmt(lat["linear_trace"][c]["cpu_median_s"]), fmt(lat["softmax_kv_replay"][c]["cpu_median_s"]),
                fmt(real["cpu_median_s"]) if real else "-", bc.format_bytes(lat["softmax_kv_state_bytes"][c]),
                fmt(rc["cpu_median_s"]) + (" (extrapolated)" if rc["extrapolated"] else ""),
            ])  # fmt: skip
        title = "Per-chunk compute (CPU time; 160 ms chunks, batch 1, one thread):\n"
        parts.append(title + bc.render_table(header, rows, markdown=markdown))
        ok = lat["linear_ratio_last_first"] <= TARGET_FLAT
        parts.append(
            f"linear latency {_label(lat['checkpoints_s'][-1])} / {_label(lat['checkpoints_s'][0])}: "
            f"{lat['linear_ratio_last_first']:.3f} (replay, CPU time), {lat['linear_ratio_last_first_wall']:.3f} "
            f"(replay, wall), {lat['linear_ratio_last_first_trace']:.3f} (trace, CPU time); "
            f"target <= {TARGET_FLAT}: {'PASS' if ok else 'FAIL'}"
        )
    rtf = results.get("rtf")
    if rtf:
        ps = rtf["pocketsphinx"]
        header = ["recognizer", "RTF (CPU time)", "RTF (wall)", "per 160 ms chunk (CPU)"]
        rows = [
            ["transcurrent (1 thread)", f"{rtf['rtf']:.4f}", f"{rtf['wall_rtf']:.4f}", f"{rtf['per_chunk_ms']:.2f} ms"],
            ["  front end (fbank+CMVN)", f"{rtf['front_end_rtf']:.4f}", f"{rtf['wall_front_end_rtf']:.4f}", ""],
            ["  encoder steps (PackedStep)", f"{rtf['encoder_rtf']:.4f}", f"{rtf['wall_encoder_rtf']:.4f}", ""],
            ["  rest (decoding, glue)", f"{rtf['rest_rtf']:.4f}", f"{rtf['wall_rest_rtf']:.4f}", ""],
            ["transcurrent, module step", f"{rtf['module_rtf']:.4f}", f"{rtf['wall_module_rtf']:.4f}", ""],
            ["  encoder steps (CTCModel.step)", f"{rtf['module_encoder_rtf']:.4f}",
             f"{rtf['wall_module_encoder_rtf']:.4f}", ""],
            ["pocketsphinx 5 (en-us)", f"{ps['rtf']:.4f}" if "rtf" in ps else ps.get("error", "-"),
             f"{ps['wall_rtf']:.4f}" if "rtf" in ps else "-", ""],
        ]  # fmt: skip
        parts.append(f"Real-time factor, one stream, {rtf['audio_s']:.1f} s of LibriVox speech:\n"
                     + bc.render_table(header, rows, markdown=markdown))  # fmt: skip
        by_chunk = ", ".join(f"{ms} ms: {r:.4f}" for ms, r in rtf["encoder_rtf_by_chunk_ms"].items())
        parts.append(f"packed encoder RTF (CPU time) by chunk length: {by_chunk}; module step / packed step "
                     f"(encoder, timed in turns): x{rtf['encoder_speedup']:.2f}")  # fmt: skip
        ok = rtf["rtf"] <= TARGET_RTF
        parts.append(f"RTF {rtf['rtf']:.4f} CPU time (target <= {TARGET_RTF}): {'PASS' if ok else 'FAIL'}")
    thr = results.get("throughput")
    if thr:
        header = ["path", "streams in real time", "bound", "achieved / bound",
                  "in turns with matmul: median (range; capacity)"]  # fmt: skip

        def streams(key: str) -> str:  # ">= N" when the search stopped at --max-streams; each search's size
            found = thr[key].get("searches", [])
            each = f" ({' / '.join(map(str, found))})" if len(found) > 1 else ""
            return (">= " if thr[key].get("capped") else "") + str(thr[key]["max_streams"]) + each

        def paired(kind: str) -> str:
            pr = thr.get("paired_over_bound", {}).get(kind)
            if not pr:
                return "-"
            spread = f"{min(pr['ratios']):.2f}-{max(pr['ratios']):.2f}"
            return f"{pr['median']:.2f} ({spread}; {pr.get('capacity_median', 0):.0f} streams at batch {pr['streams']})"

        rows = [
            [f"model step (PackedStep{' with its C kernels' if thr.get('step_kernel') == 'c' else ''}, donated state)",
             streams("model_step"), f"{thr['bound_streams']:.0f}", f"{thr['achieved_over_bound_model']:.2f}",
             paired("packed")],
            *([["model step (PackedStep, PyTorch ops only, donated state)", streams("packed_torch_step"),
                f"{thr['bound_streams']:.0f}", f"{thr['achieved_over_bound_packed_torch']:.2f}",
                paired("packed_torch")]] if "packed_torch_step" in thr else []),
            ["model step (CTCModel.step)", streams("module_step"), f"{thr['bound_streams']:.0f}",
             f"{thr['achieved_over_bound_module']:.2f}", paired("module")],
            ["recognizer (samples -> text)", streams("recognizer"), f"{thr['bound_streams']:.0f}",
             f"{thr['achieved_over_bound_recognizer']:.2f}", "-"],
        ]  # fmt: skip
        parts.append(
            "Concurrent real-time streams on one core (batch step CPU time < 160 ms per 160 ms chunk; the median "
            f"of {thr.get('search_repeats', 1)} searches, each search's in brackets):\n"
            + bc.render_table(header, rows, markdown=markdown)
            + f"\nbound = matmul {thr['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s / model "
            f"{thr['model_flops_per_audio_s'] / 1e9:.3f} GFLOP per audio second; state per stream: encoder "
            f"{bc.format_bytes(thr['encoder_state_bytes_per_stream'])}, whole stream "
            f"{bc.format_bytes(thr['stream_state_bytes_per_stream'])}"
        )
        # The check uses the two figures that set the step against the machine's speed at the time: the
        # searches against the matmul probes bracketing each, and the steps in turns with the probe. The search
        # against the one probe above is printed too (machine phases shift it by +-20% here).
        own = thr.get("search_over_own_bound_model") or [thr["achieved_over_bound_model"]]
        checked = [statistics.median(own)]
        if "packed" in thr.get("paired_over_bound", {}):
            checked.append(thr["paired_over_bound"]["packed"]["median"])
        ok = min(checked) >= TARGET_OF_BOUND
        parts.append(
            f"model step achieves {thr['achieved_over_bound_model']:.2f} of the bound by the search against the "
            f"one matmul probe; {statistics.median(own):.2f} by the searches against the probes bracketing each "
            f"({' / '.join(f'{x:.2f}' for x in own)}); {checked[-1]:.2f} in turns. Target >= {TARGET_OF_BOUND} "
            f"(the last two): {'PASS' if ok else 'FAIL'}"
        )
    return "\n\n".join(parts)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    lat = results.get("latency")
    if lat:
        ax = axes[0]
        cs = lat["checkpoints_s"]
        for key, style, label in (("linear_replay", "o-", "linear (state S, z)"),
                                  ("softmax_kv_replay", "s-", "softmax + KV cache"),
                                  ("softmax_recompute", "^--", "softmax, recompute history")):  # fmt: skip
            ax.plot(cs, [1e3 * lat[key][c]["cpu_median_s"] for c in cs], style, label=label)
        ax.axhline(1e3 * CHUNK_S, color="grey", lw=0.8, ls=":", label="160 ms (real time)")
        ax.set(xscale="log", yscale="log", xlabel="audio so far (s)", ylabel="CPU time per 160 ms chunk (ms)",
               title="Per-chunk latency as the stream grows")  # fmt: skip
        ax.legend(fontsize=8)
    thr = results.get("throughput")
    if thr:
        ax = axes[1]
        paths = (("model_step", "packed step" + (" (C kernels)" if thr.get("step_kernel") == "c" else "")),
                 ("packed_torch_step", "packed step (PyTorch ops)"), ("module_step", "module step"),
                 ("recognizer", "recognizer"))  # fmt: skip
        for key, label in paths:
            if key not in thr:  # results of an older run
                continue
            pts = thr[key]["points"]
            ax.plot([n for n, _ in pts], [1e3 * t for _, t in pts], "o-", label=label)
        ax.axhline(1e3 * CHUNK_S, color="grey", lw=0.8, ls=":", label="160 ms")
        ax.set(xscale="log", yscale="log", xlabel="streams in the batch", ylabel="batch step CPU time (ms)",
               title="One core, batched streams")  # fmt: skip
        ax.legend(fontsize=8)
    bc.save_figure(fig, path, dpi=120)


# ------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/bench_streaming"), help="output folder")
    p.add_argument("--quick", action="store_true", help="checkpoints 10 s and 1 min, small searches")
    p.add_argument("--device", default="cpu", help="cpu or cuda (RTF and pocketsphinx always run on the CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: one core)")
    p.add_argument("--base", choices=("bundled", "default"), default="bundled",
                   help="model configuration before overrides: the bundled model's, or ModelConfig's defaults")
    p.add_argument("--step", choices=STEPS, default="packed",
                   help="latency section: step through PackedStep (as the Recognizer), PackedStep on PyTorch "
                   "ops only, or CTCModel.step")
    p.add_argument("--checkpoints", type=lambda s: [float(x) for x in s.split(",")], default=None,
                   help="history lengths in seconds, comma-separated (default 10,60,600,3600)")  # fmt: skip
    p.add_argument("--window", type=int, default=200, help="trace steps summarised before each checkpoint")
    p.add_argument("--replay-rounds", type=int, default=200, help="interleaved steps per checkpoint state")
    p.add_argument("--recompute-cap-s", type=float, default=60.0, help="longest full forward to time")
    p.add_argument("--rtf-repeats", type=int, default=3)
    p.add_argument("--max-streams", type=int, default=4096)
    p.add_argument("--paired-rounds", type=int, default=9, help="throughput: rounds of step vs matmul in turns")
    p.add_argument("--search-repeats", type=int, default=3,
                   help="throughput: searches per path (the median is reported; a single probe's noise decides one)")
    p.add_argument("--sections", default="latency,rtf,throughput", help="which parts to run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", metavar="model.FIELD=VALUE",
                   help="ModelConfig overrides, e.g. model.d_model=192 model.num_layers=6")  # fmt: skip
    args = p.parse_args(argv)
    try:
        parsed = parse_cli_overrides(args.overrides)
        if set(parsed) - {"model"}:
            raise ValueError(f"only model.* overrides are accepted, got {sorted(set(parsed) - {'model'})}")
        args.model = parsed.get("model", {})
        model_config("linear", args.model, args.base)  # fail early on unknown fields or invalid values
    except ValueError as exc:
        p.error(str(exc))
    if args.checkpoints is None:
        args.checkpoints = list(QUICK_CHECKPOINTS_S if args.quick else CHECKPOINTS_S)
    if args.quick:
        args.window = min(args.window, 50)
        args.replay_rounds = min(args.replay_rounds, 30)
        args.rtf_repeats = min(args.rtf_repeats, 2)
        args.max_streams = min(args.max_streams, 64)
        args.paired_rounds = min(args.paired_rounds, 3)
        args.search_repeats = 1
        args.recompute_cap_s = min(args.recompute_cap_s, 5.0)
    if args.search_repeats < 1:
        p.error(f"--search-repeats must be >= 1, got {args.search_repeats}")
    unknown = set(args.sections.split(",")) - {"latency", "rtf", "throughput"}
    if unknown:
        p.error(f"unknown --sections {sorted(unknown)}")
    if sorted(args.checkpoints) != args.checkpoints or min(args.checkpoints) < CHUNK_S:
        p.error(f"--checkpoints must increase and be >= {CHUNK_S} s, got {args.checkpoints}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sections = args.sections.split(",")
    results: dict[str, Any] = {"machine": bc.machine_info(device), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}  # fmt: skip
    probe = CTCModel(model_config("linear", args.model, args.base))
    results["model"] = {"config": probe.config.to_dict(), "params": probe.num_params(),
                        "flops_per_audio_s": probe.flops_per_second()}  # fmt: skip
    del probe
    started = time.perf_counter()
    if "latency" in sections:
        results["latency"] = run_latency(args, device)
    if "rtf" in sections:
        results["rtf"] = run_rtf(args, torch.device("cpu"))
    if "throughput" in sections:
        results["throughput"] = run_throughput(args, device)
    results["wall_s"] = time.perf_counter() - started
    results["machine"]["load_average_1m_end"] = bc.machine_info(device)["load_average_1m"]

    args.out.mkdir(parents=True, exist_ok=True)
    bc.write_json(args.out / "bench_streaming.json", _jsonable(results))
    (args.out / "bench_streaming.md").write_text(tables(results, markdown=True) + "\n")
    plot(results, args.out / "bench_streaming.png")
    m = results["machine"]
    print(f"{m['cpu_model']}, torch {m['torch']}, {args.threads} thread(s), device {args.device}, "
          f"load average {m['load_average_1m']:.1f} -> {m['load_average_1m_end']:.1f}")  # fmt: skip
    mc = results["model"]["config"]
    print(f"model: d_model {mc['d_model']}, {mc['num_layers']} layers, {mc['num_heads']} heads, ff {mc['ff_dim']}, "
          f"decay {mc['decay']}, output_norm {mc['output_norm']}, conv {mc['conv_kernel_size']}; "
          f"{results['model']['params'] / 1e6:.2f} M params, "
          f"{results['model']['flops_per_audio_s'] / 1e9:.3f} GFLOP per audio second")  # fmt: skip
    print(tables(results, markdown=False))
    print(f"\nwrote {args.out}/bench_streaming.json, .md, .png ({results['wall_s']:.0f} s)")
    return 0


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


if __name__ == "__main__":
    sys.exit(main())
