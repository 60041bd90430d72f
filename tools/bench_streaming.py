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

Weights are random (seeded), rounded to float16 values as the bundled model's are (the packed step reads such
weights from float16 panels; speed does not depend on the values). Writes DIR/bench_streaming.{json,md,png}.

    python tools/bench_streaming.py                 # everything (~20-30 min on a quiet 2-core machine)
    python tools/bench_streaming.py --quick         # 10 s and 1 min checkpoints, smaller searches (~2 min)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import _bench_common as bc
import numpy as np
import torch
from bench import streaming_latency as latency
from bench import streaming_report as report
from bench import streaming_rtf as rtf
from bench import streaming_setup as setup
from bench import streaming_throughput as throughput

from asr.configs import parse_cli_overrides
from asr.model.ctc import CTCModel


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/bench_streaming"), help="output folder")
    p.add_argument("--quick", action="store_true", help="checkpoints 10 s and 1 min, small searches")
    p.add_argument("--device", default="cpu", help="cpu or cuda (RTF and pocketsphinx always run on the CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: one core)")
    p.add_argument("--base", choices=("bundled", "default"), default="bundled",
                   help="model configuration before overrides: the bundled model's, or ModelConfig's defaults")
    p.add_argument("--step", choices=setup.STEPS, default="packed",
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
        setup.model_config("linear", args.model, args.base)  # fail early on unknown fields or invalid values
    except ValueError as exc:
        p.error(str(exc))
    if args.checkpoints is None:
        args.checkpoints = list(setup.QUICK_CHECKPOINTS_S if args.quick else setup.CHECKPOINTS_S)
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
    if sorted(args.checkpoints) != args.checkpoints or min(args.checkpoints) < setup.CHUNK_S:
        p.error(f"--checkpoints must increase and be >= {setup.CHUNK_S} s, got {args.checkpoints}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sections = args.sections.split(",")
    results: dict[str, Any] = {"machine": bc.machine_info(device), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}  # fmt: skip
    probe = CTCModel(setup.model_config("linear", args.model, args.base))
    results["model"] = {"config": probe.config.to_dict(), "params": probe.num_params(),
                        "flops_per_audio_s": probe.flops_per_second()}  # fmt: skip
    del probe
    started = time.perf_counter()
    if "latency" in sections:
        results["latency"] = latency.run_latency(args, device)
    if "rtf" in sections:
        results["rtf"] = rtf.run_rtf(args, torch.device("cpu"))
    if "throughput" in sections:
        results["throughput"] = throughput.run_throughput(args, device)
    results["wall_s"] = time.perf_counter() - started
    results["machine"]["load_average_1m_end"] = bc.machine_info(device)["load_average_1m"]

    args.out.mkdir(parents=True, exist_ok=True)
    bc.write_json(args.out / "bench_streaming.json", _jsonable(results))
    (args.out / "bench_streaming.md").write_text(report.tables(results, markdown=True) + "\n")
    report.plot(results, args.out / "bench_streaming.png")
    m = results["machine"]
    print(f"{m['cpu_model']}, torch {m['torch']}, {args.threads} thread(s), device {args.device}, "
          f"load average {m['load_average_1m']:.1f} -> {m['load_average_1m_end']:.1f}")  # fmt: skip
    mc = results["model"]["config"]
    print(f"model: d_model {mc['d_model']}, {mc['num_layers']} layers, {mc['num_heads']} heads, ff {mc['ff_dim']}, "
          f"decay {mc['decay']}, output_norm {mc['output_norm']}, conv {mc['conv_kernel_size']}; "
          f"{results['model']['params'] / 1e6:.2f} M params, "
          f"{results['model']['flops_per_audio_s'] / 1e9:.3f} GFLOP per audio second")  # fmt: skip
    print(report.tables(results, markdown=False))
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
