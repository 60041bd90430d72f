#!/usr/bin/env python
"""Training throughput side by side: the same recipe, data and steps in variants that differ in one setting.

Each variant is a real ``asr train`` run (asr.train.trainer.train, in this process) of --steps optimiser steps
on the same corpus, model and seed; its metrics.csv (one row per step) gives the loss curve and the figures:

- audio_s_per_wall_s: audio seconds trained per wall second, over the steps after --warmup-steps;
- audio_s_per_cpu_s: audio seconds trained per CPU second of the training process (time.process_time) over
  the same steps, the loader workers' CPU not included (it is reported as loader_cpu_s, the whole run's);
- the loss at every step (the curves are written side by side: JSON, table and PNG).

Comparisons (--compare, any of):
- precision: fp32 against bf16 autocast (on a CPU without AMX-BF16/AVX512-BF16, bf16 is emulated: expect it
  slower; the tool says which the CPU has);
- workers: batches built in the training process (data.num_workers=0, the trainer before the DataLoader) against
  one loader worker process (data.num_workers=1).

    python tools/bench_train_throughput.py --data data/synth_clean --recipe recipes/synth/bundle.yaml
    python tools/bench_train_throughput.py --data DIR --compare workers --set augment.noise.prob=0.5

Writes DIR/bench_train_throughput.json (machine, config, per-variant figures and loss curves),
DIR/bench_train_throughput.png (the loss curves) and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _bench_common as bc
import torch

from asr.configs import parse_cli_overrides
from asr.train.precision import choose_precision, cpu_native_bf16
from asr.train.trainer import load_train_config, train

COMPARISONS = {
    "precision": [("fp32", {"precision": "fp32"}), ("bf16", {"precision": "bf16"})],
    "workers": [("in-process", {"data": {"num_workers": 0}}), ("1 worker", {"data": {"num_workers": 1}})],
}


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_variant(recipe: str | None, overrides: dict, run_dir: Path, *, warmup: int) -> dict[str, Any]:
    """Train one variant from scratch in ``run_dir``; its figures from metrics.csv."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    config = load_train_config(recipe, overrides)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    train(config, run_dir)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = _rows(run_dir / "metrics.csv")
    if len(rows) <= warmup + 1:
        raise ValueError(f"{run_dir}: only {len(rows)} steps logged; need more than --warmup-steps={warmup} + 1")
    first, last = rows[warmup], rows[-1]
    audio = float(last["audio_s"]) - float(first["audio_s"])
    return {
        "steps": len(rows),
        "precision": choose_precision(config.precision, torch.device("cpu")).name,
        "num_workers": config.data.num_workers,
        "audio_s_per_wall_s": audio / max(float(last["wall_s"]) - float(first["wall_s"]), 1e-9),
        "audio_s_per_cpu_s": audio / max(float(last["cpu_s"]) - float(first["cpu_s"]), 1e-9),
        "audio_s_timed": audio,
        "loader_cpu_s": (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime),
        "run_wall_s": wall,
        "losses": [float(r["loss"]) for r in rows],
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's record with each rate replaced by the median over the runs (every run's kept)."""
    out = dict(runs[0])
    for key in ("audio_s_per_wall_s", "audio_s_per_cpu_s", "loader_cpu_s"):
        out[key] = statistics.median(r[key] for r in runs)
        out[f"{key}_runs"] = [r[key] for r in runs]
    out["same_losses_every_run"] = all(r["losses"] == runs[0]["losses"] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="training corpus (manifest, LibriSpeech folder, Kaldi dir)")
    parser.add_argument("--recipe", default="recipes/synth/bundle.yaml", help="recipe of the model and batches")
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per variant")
    parser.add_argument("--warmup-steps", type=int, default=3, help="steps left out of the rates")
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant, interleaved (A B A B); medians")
    parser.add_argument("--compare", nargs="+", choices=sorted(COMPARISONS), default=["precision", "workers"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides for all")
    parser.add_argument("--out", default="runs/bench_train", help="output folder (variant runs inside)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    common = _merge(
        {
            "data": {"train": args.data, "dev": None},
            "max_steps": args.steps,
            "epochs": 1000,
            "checkpoint_every_steps": 10**9,
            "average_last": 1,
            "log_every_steps": 1,
        },
        parse_cli_overrides(args.set),
    )
    native, found = cpu_native_bf16()
    runs: dict[str, list[dict[str, Any]]] = {}
    for comparison in args.compare:
        for repeat in range(args.repeats):  # interleaved, so that a busy spell of the machine hits both
            for name, change in COMPARISONS[comparison]:
                label = f"{comparison}: {name}"
                print(f"== {label} (run {repeat + 1} of {args.repeats})", flush=True)
                run_dir = out / f"{comparison}-{name.replace(' ', '_')}"
                run = run_variant(args.recipe, _merge(common, change), run_dir, warmup=args.warmup_steps)
                runs.setdefault(label, []).append(run)
    results = {label: _summary(rs) for label, rs in runs.items()}

    header = ["variant", "steps", "audio s / wall s", "audio s / CPU s", "loader CPU s", "first loss", "last loss"]
    if args.repeats > 1:
        header[2:4] = [f"audio s / wall s (median of {args.repeats})", "audio s / CPU s (median)"]
    table = [
        [
            label,
            str(r["steps"]),
            f"{r['audio_s_per_wall_s']:.1f}",
            f"{r['audio_s_per_cpu_s']:.1f}",
            f"{r['loader_cpu_s']:.1f}",
            f"{r['losses'][0]:.3f}",
            f"{r['losses'][-1]:.3f}",
        ]
        for label, r in results.items()
    ]
    print(bc.render_table(header, table))
    print(f"CPU bf16: {'native' if native else 'emulated'} ({found})")
    curves = {label: r["losses"] for label, r in results.items()}
    steps = max(len(c) for c in curves.values())
    print(bc.render_table(["step", *curves], [[str(i + 1), *(f"{c[i]:.3f}" if i < len(c) else "-" for c in
                                                           curves.values())] for i in range(steps)]))  # fmt: skip
    payload = {
        "machine": bc.machine_info(torch.device("cpu")),
        "cpu_bf16": {"native": native, "found": found},
        "recipe": args.recipe,
        "data": args.data,
        "overrides": common,
        "warmup_steps": args.warmup_steps,
        "variants": results,
    }
    bc.write_json(out / "bench_train_throughput.json", payload)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("CTC loss per utterance")
    ax.legend()
    bc.save_figure(fig, out / "bench_train_throughput.png", title=f"{args.recipe} on {args.data}")
    print(f"wrote {out / 'bench_train_throughput.json'} and {out / 'bench_train_throughput.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
