#!/usr/bin/env python
"""Linear vs softmax attention on the synthetic corpus: train, evaluate, and write docs/results.md.

Every variant trains with the same recipe and overrides (only the attention differs), as a separate `asr train`
process; with --parallel they run side by side, one thread each, so their times per epoch are measured under the
same conditions. Then each final model is evaluated with `asr eval` on the test set (full-utterance, and streaming
for causal models) and on the real-speech dev set. Finally the per-epoch dev WER curves (dev.csv), times per epoch
and test figures go into a Markdown table and a PNG.

    .venv/bin/python tools/attention_study.py --out runs/study --doc docs/results.md --parallel \
        --set epochs=8 model.d_model=192 model.num_layers=6

Resumable: a variant whose run has final.safetensors is not retrained (its checkpoints resume otherwise), and an
evaluation whose summary.json exists is not rerun.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
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


def _dev_rows(run_dir: Path) -> list[dict]:
    with (run_dir / "dev.csv").open() as f:
        return list(csv.DictReader(f))


def _params(run_dir: Path) -> int:
    from asr.pipeline import load_asr_model

    return load_asr_model(run_dir / "final.safetensors").model.num_params()


def _plot(names: list[str], out: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in names:
        rows = [r for r in _dev_rows(out / name) if r.get("dev_wer")]
        ax.plot([int(r["epoch"]) for r in rows], [100 * float(r["dev_wer"]) for r in rows], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev WER (%)")
    ax.set_title("Synthetic corpus: dev WER per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/study"))
    ap.add_argument("--doc", type=Path, default=Path("docs/results.md"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], help="overrides for every variant (key=value)")
    ap.add_argument("--parallel", action="store_true", help="train variants side by side, one thread each")
    ap.add_argument("--test", default="data/synth/test")
    ap.add_argument("--real", default="data/realspeech/realspeech.jsonl")
    ap.add_argument("--eval-threads", type=int, default=1)
    args = ap.parse_args()

    out = args.out.resolve()
    t0 = time.time()
    _train(args.variants, out, args.set, args.parallel)
    results = {}
    for name in args.variants:
        run_dir = out / name
        rec = {"dev": _dev_rows(run_dir), "params": _params(run_dir)}
        rec["test_full"] = _eval(name, out, args.test, "test", "full", args.eval_threads)
        causal = "causal=false" not in " ".join(VARIANTS[name][1])
        rec["test_stream"] = _eval(name, out, args.test, "test", "stream", args.eval_threads) if causal else None
        if Path(args.real).exists():
            rec["real_full"] = _eval(name, out, args.real, "real", "full", args.eval_threads)
        results[name] = rec
    (out / "results.json").write_text(json.dumps({"variants": VARIANTS, "results": results}, indent=2) + "\n")
    png = args.doc.parent / "figures" / "results_wer.png"
    _plot(args.variants, out, png)

    def pct(s, key="wer"):
        return "-" if not s else f"{100 * s[key]:.2f}"

    lines = [
        "| model | params | epochs | s / epoch (mean) | final dev WER | test WER (full) | test WER (stream) "
        "| test CER | real-speech WER |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rec in results.items():
        dev = [r for r in rec["dev"] if r.get("epoch_seconds")]
        secs = sum(float(r["epoch_seconds"]) for r in dev) / max(len(dev), 1)
        last_dev = next((r["dev_wer"] for r in reversed(rec["dev"]) if r.get("dev_wer")), None)
        lines.append(
            f"| {name}: {VARIANTS[name][2]} | {rec['params'] / 1e6:.2f} M | {len(dev)} | {secs:.0f} | "
            f"{'-' if last_dev is None else f'{100 * float(last_dev):.2f}'} | {pct(rec['test_full'])} | "
            f"{pct(rec['test_stream'])} | {pct(rec['test_full'], 'cer')} | {pct(rec.get('real_full'))} |"
        )
    table = "\n".join(lines)
    cmd = " ".join(["tools/attention_study.py", *sys.argv[1:]])
    text = f"""## Linear vs softmax attention on the synthetic corpus (issue 4)

Produced by `.venv/bin/python {cmd}` on {platform.node() or "this machine"} ({os.cpu_count()} cores,
{time.strftime("%Y-%m-%d")}), {(time.time() - t0) / 60:.0f} min wall clock for this invocation. Same recipe and
overrides for both; only the attention differs. WER in %, greedy CTC decoding; stream = 160 ms chunks through the
streaming recognizer.

{table}

![dev WER per epoch](figures/{png.name})
"""
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    (out / "results_section.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
