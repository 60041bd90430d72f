"""Section 3 of the streaming benchmark: the largest batch of streams one core steps in real time, and
that against the bound the machine's matmul speed sets."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import _bench_common as bc
import numpy as np
import torch

from asr.model.inference import PackedStep
from asr.streaming.recognizer import Recognizer, RecognizerConfig
from bench.streaming_rtf import load_speech, make_bundle
from bench.streaming_setup import CHUNK_FRAMES, CHUNK_S, build_model, step_function


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
