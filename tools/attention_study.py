#!/usr/bin/env python
"""The accuracy study's runs: train every variant with the same recipe and overrides, then evaluate each.

Every variant trains as a separate `asr train` process (with --parallel side by side, one thread each). Then each
final model is evaluated with `asr eval` on the test set (full-utterance, and streaming for causal models) and on
the real-speech set, into RUN/eval-{test,real}-{full,stream}. `tools/make_results_history.py` runs this with the study's
settings and writes the tables and plots of docs/results.md from these run folders.

    .venv/bin/python tools/attention_study.py --out runs/study --parallel --variants linear softmax \
        --set epochs=8 model.d_model=192 model.num_layers=6

Resumable: a variant whose run has final.safetensors is not retrained (its checkpoints resume otherwise), and an
evaluation whose summary.json exists is not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASR = [sys.executable, "-m", "asr.cli"]

#: name -> (recipe, extra overrides, description)
VARIANTS = {
    "linear": ("recipes/synth/base.yaml", [], "(a) causal linear attention, elu+1, pure sum (the paper's attention)"),
    "improved": (
        "recipes/synth/base.yaml",
        ["model.decay=per_head", "model.output_norm=rms"],
        "(b) causal linear, elu+1, learned per-head decay + per-head RMS output norm",
    ),
    "softmax": ("recipes/synth/softmax.yaml", [], "(c) causal softmax attention (SDPA), same size"),
    "bidir_linear": ("recipes/synth/base.yaml", ["model.causal=false"], "(d) bidirectional (a), offline only"),
    "bidir_softmax": ("recipes/synth/softmax.yaml", ["model.causal=false"], "(d) bidirectional (c), offline only"),
    "decay_only": ("recipes/synth/base.yaml", ["model.decay=per_head"], "ablation: (b) without the output norm"),
    "norm_only": ("recipes/synth/base.yaml", ["model.output_norm=rms"], "ablation: (b) without the decay"),
    "linear_noconv": (
        "recipes/synth/base.yaml",
        ["model.conv_module=false"],
        "ablation: (a) without the conv module (the paper's encoder block)",
    ),
}


def _run(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    f = log.open("a")
    f.write(f"\n$ {' '.join(cmd)}\n")
    f.flush()
    return subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)


def _train(names: list[str], out: Path, common: list[str], parallel: bool) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1" if parallel else os.environ.get("OMP_NUM_THREADS", "2"))
    procs = []
    for name in names:
        recipe, extra, _ = VARIANTS[name]
        run_dir = out / name
        if (run_dir / "final.safetensors").exists():
            print(f"[{name}] trained already: {run_dir / 'final.safetensors'}")
            continue
        resume = ["--resume"] if (run_dir / "checkpoints" / "latest").exists() else []
        threads = ["num_threads=1"] if parallel else []
        cmd = [*ASR, "train", recipe, "--run-dir", str(run_dir), *resume, *common, *extra, *threads]
        print(f"[{name}] training: {' '.join(cmd)}")
        p = _run(cmd, run_dir.parent / f"{name}.train.log", env)
        if parallel:
            procs.append((name, p))
        elif p.wait() != 0:
            raise SystemExit(f"[{name}] training failed: see {run_dir.parent / f'{name}.train.log'}")
    for name, p in procs:
        if p.wait() != 0:
            raise SystemExit(f"[{name}] training failed: see {out / f'{name}.train.log'}")


def _eval(name: str, out: Path, data: str, tag: str, mode: str, threads: int) -> dict | None:
    dest = out / name / f"eval-{tag}-{mode}"
    if not (dest / "summary.json").exists():
        cmd = [
            *ASR,
            "eval",
            "--model",
            str(out / name),
            "--data",
            data,
            "--mode",
            mode,
            "--out",
            str(dest),
            "--threads",
            str(threads),
            "--no-progress",
        ]
        print(f"[{name}] eval {tag} ({mode})")
        if _run(cmd, out / f"{name}.eval.log", dict(os.environ)).wait() != 0:
            print(f"[{name}] eval {tag} {mode} failed: see {out / f'{name}.eval.log'}")
            return None
    return json.loads((dest / "summary.json").read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/study"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], help="overrides for every variant (key=value)")
    ap.add_argument("--parallel", action="store_true", help="train variants side by side, one thread each")
    ap.add_argument("--test", default="data/synth/test")
    ap.add_argument("--real", default="data/realspeech/realspeech.jsonl")
    ap.add_argument("--eval-threads", type=int, default=1)
    args = ap.parse_args()

    out = args.out.resolve()
    _train(args.variants, out, args.set, args.parallel)
    for name in args.variants:
        causal = "causal=false" not in " ".join(VARIANTS[name][1])
        modes = [("test", args.test, "full"), *([("test", args.test, "stream")] if causal else [])]
        if Path(args.real).exists():
            modes.append(("real", args.real, "full"))
        for tag, data, mode in modes:
            s = _eval(name, out, data, tag, mode, args.eval_threads)
            figures = "failed" if s is None else f"WER {100 * s['wer']:.2f}  CER {100 * s['cer']:.2f}"
            print(f"[{name}] {tag} ({mode}): {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
