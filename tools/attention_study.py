#!/usr/bin/env python
"""The accuracy study's runs: train every variant with the same recipe and overrides, then evaluate each.

Every variant trains as a separate `asr train` process (with --parallel side by side, one thread each). Then each
final model is evaluated with `asr eval` on the test set (full-utterance, and streaming for causal models) and on
the real-speech set, into RUN/eval-{test,real}-{full,stream} (with --lm: through that lexicon + LM, plus the test
set greedy in RUN/eval-test-greedy-full). The study of docs/results.md, section 6 (phone targets, words through the
bundled LM; two variants a session fit on 2 cores, so its rows are made over several sessions):

    .venv/bin/python tools/attention_study.py --recipe recipes/synth/study.yaml --out runs/study_v3 --parallel \
        --variants linear softmax --test data/synth_clean/test --real data/realspeech/realspeech-dev.jsonl \
        --lm asr/assets/model --record docs/study.json

--record adds each evaluated variant's figures to a JSON file that is committed (run folders do not outlive the
machine; `tools/make_results.py` writes the section from it), keeping the rows other sessions recorded, and each
linear row's paired bootstrap against the softmax row of its kind (``against``: the test WER and the greedy PER, when
both rows' evaluations are in --out).
`tools/make_results_history.py` runs the first study (recipes/synth/base.yaml with its settings) into runs/study_v2.

Resumable: a variant whose run has final.safetensors is not retrained (its checkpoints resume otherwise), and an
evaluation whose summary.json exists is not rerun.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _model_card import scores  # sibling tools: this file's folder is first on sys.path
from learning_curve import cpu_seconds_by_step
from paired_bootstrap import compare, read_scores

ROOT = Path(__file__).resolve().parent.parent
ASR = [sys.executable, "-m", "asr.cli"]

#: name -> (overrides on the study's recipe, description)
VARIANTS = {
    "linear": ([], "(a) causal linear attention, elu+1, pure sum (the paper's attention)"),
    "improved": (
        ["model.decay=per_head", "model.output_norm=rms"],
        "(b) causal linear, elu+1, learned per-head decay + per-head RMS output norm",
    ),
    "softmax": (["model.attention=softmax"], "(c) causal softmax attention (SDPA), same size"),
    "bidir_linear": (["model.causal=false"], "(d) bidirectional (a), offline only"),
    "bidir_softmax": (["model.attention=softmax", "model.causal=false"], "(d) bidirectional (c), offline only"),
    "decay_only": (["model.decay=per_head"], "ablation: (b) without the output norm"),
    "norm_only": (["model.output_norm=rms"], "ablation: (b) without the decay"),
    "linear_noconv": (["model.conv_module=false"], "ablation: (a) without the conv module (the paper's encoder block)"),
}
#: row -> the row it is measured against (the softmax of its kind), utterance by utterance: a paired bootstrap
AGAINST = {"linear": "softmax", "improved": "softmax", "bidir_linear": "bidir_softmax"}
#: the evaluations compared: test WER through the LM (or greedy without one) and the greedy PER
COMPARED = ("test-full", "test-greedy-full")


def _run(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    f = log.open("a")
    f.write(f"\n$ {' '.join(cmd)}\n")
    f.flush()
    return subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)


def _train(names: list[str], out: Path, recipe: str, common: list[str], parallel: bool) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1" if parallel else os.environ.get("OMP_NUM_THREADS", "2"))
    procs = []
    for name in names:
        extra, _ = VARIANTS[name]
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


def _eval(name: str, out: Path, data: str, tag: str, mode: str, threads: int, decode: list[str]) -> dict | None:
    dest = out / name / f"eval-{tag}-{mode}"
    if not (dest / "summary.json").exists():
        cmd = [*ASR, "eval", "--model", str(out / name), "--data", data, "--mode", mode, "--out", str(dest)]
        cmd += ["--threads", str(threads), "--no-progress", *decode]
        print(f"[{name}] eval {tag} ({mode})")
        if _run(cmd, out / f"{name}.eval.log", dict(os.environ)).wait() != 0:
            print(f"[{name}] eval {tag} {mode} failed: see {out / f'{name}.eval.log'}")
            return None
    return json.loads((dest / "summary.json").read_text())


def evaluations(name: str, test: str, real: str | None, lm: str | None) -> list[tuple[str, str, str, list[str]]]:
    """(tag, data, mode, decoding arguments) of every evaluation of one variant.

    Without --lm: the model's own output (greedy), test full and (causal rows) stream, and the real-speech set.
    With --lm: the same through the lexicon + LM (its folder's decoder settings, the same for every row), plus the
    test set greedy as "test-greedy" (a phone model's PER: the attention's effect before any LM).
    """
    causal = "model.causal=false" not in VARIANTS[name][0]
    decode = ["--lm", lm] if lm else []
    runs = [("test", test, "full", decode), *([("test", test, "stream", decode)] if causal else [])]
    if lm:
        runs.append(("test-greedy", test, "full", ["--no-lm"]))
    if real:
        runs.append(("real", real, "full", decode))
    return runs


def identical(full: Path, stream: Path) -> tuple[int, int]:
    """(utterances whose streamed transcript equals the full-utterance one, utterances) of two eval folders."""
    hyps = [
        {r["id"]: r["hyp"] for r in map(json.loads, (d / "utterances.jsonl").read_text().splitlines())}
        for d in (full, stream)
    ]
    return sum(hyps[0][k] == hyps[1].get(k) for k in hyps[0]), len(hyps[0])


def figures(name: str, run_dir: Path, recipe: str, common: list[str], evals: list[tuple]) -> dict:
    """One trained and evaluated variant as the study file keeps it: its settings, budget and every measure."""
    import torch

    from asr.pipeline import load_asr_model

    with (run_dir / "dev.csv").open(newline="") as f:
        dev = list(csv.DictReader(f))
    with (run_dir / "metrics.csv").open(newline="") as f:
        cpu = cpu_seconds_by_step(list(csv.DictReader(f)))
    rec = {
        "description": VARIANTS[name][1],
        "recipe": recipe,
        "overrides": [*common, *VARIANTS[name][0]],
        "params": load_asr_model(run_dir / "final.safetensors").model.num_params(),
        "epochs": int(dev[-1]["epoch"]),
        "steps": int(dev[-1]["step"]),
        "cpu_seconds": round(cpu[-1][1], 1) if cpu else None,
        "seconds_per_epoch": round(sum(float(r["epoch_seconds"]) for r in dev) / len(dev), 1),
        "dev_curve": [{"epoch": int(r["epoch"]), "dev_wer": float(r["dev_wer"])} for r in dev],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "recorded": time.strftime("%Y-%m-%d"),
        "evals": {},
    }
    for tag, data, mode, decode in evals:
        summary = run_dir / f"eval-{tag}-{mode}" / "summary.json"
        if summary.is_file():
            s = json.loads(summary.read_text())
            keep = ("wer", "cer", "per", "utterances", "real_time_factor", "decoder", "lm")
            rec["evals"][f"{tag}-{mode}"] = {"data": data, "decode": decode, **{k: s.get(k) for k in keep}}
    if {"test-full", "test-stream"} <= rec["evals"].keys():
        same, total = identical(run_dir / "eval-test-full", run_dir / "eval-test-stream")
        rec["stream_equals_full"] = [same, total]
    return rec


def against(out: Path) -> dict[str, dict]:
    """Each row of AGAINST whose evaluations and its reference row's are in ``out``: the paired bootstrap (2,000
    resamples, seed 0) of its error rates against the reference's, per evaluation of COMPARED: row -> {"row":
    reference, evaluation: {rate_a (the reference's), rate_b (this row's), difference, low, high, ...}}."""
    found = {}
    for name, ref in AGAINST.items():
        pairs = {}
        for ev in COMPARED:
            a, b = out / ref / f"eval-{ev}" / "utterances.jsonl", out / name / f"eval-{ev}" / "utterances.jsonl"
            if a.is_file() and b.is_file():
                result = compare(read_scores(a), read_scores(b), resamples=2000, seed=0, confidence=0.95)
                pairs[ev] = {k: round(v, 5) if isinstance(v, float) else v for k, v in vars(result).items()}
        if pairs:
            found[name] = {"row": ref, **pairs}
    return found


def record(path: Path, rows: dict[str, dict], comparisons: dict[str, dict] | None = None) -> None:
    """Merge ``rows`` into the study file at ``path`` (its other variants stay), written atomically; ``comparisons``
    (from :func:`against`) go into the rows they belong to, when those are recorded."""
    study = json.loads(path.read_text()) if path.is_file() else {}
    study.update(rows)
    for name, found in (comparisons or {}).items():
        if name in study:
            study[name]["against"] = found
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(study.items())), indent=1) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/synth/base.yaml", help="the recipe every variant trains with")
    ap.add_argument("--out", type=Path, default=Path("runs/study"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], help="overrides for every variant (key=value)")
    ap.add_argument("--parallel", action="store_true", help="train variants side by side, one thread each")
    ap.add_argument("--test", default="data/synth/test")
    ap.add_argument("--real", default="data/realspeech/realspeech.jsonl")
    ap.add_argument("--lm", help="decode through this LM folder / file (e.g. asr/assets/model for phone targets)")
    ap.add_argument("--eval-threads", type=int, default=1)
    ap.add_argument("--record", type=Path, help="add each variant's figures to this JSON file (committed)")
    args = ap.parse_args(argv)

    out = args.out.resolve()
    _train(args.variants, out, args.recipe, args.set, args.parallel)
    real = args.real if Path(args.real).exists() else None
    for name in args.variants:
        evals = evaluations(name, args.test, real, args.lm)
        for tag, data, mode, decode in evals:
            s = _eval(name, out, data, tag, mode, args.eval_threads, decode)
            print(f"[{name}] {tag} ({mode}): {'failed' if s is None else scores(s)}")
        if args.record:
            record(args.record, {name: figures(name, out / name, args.recipe, args.set, evals)}, against(out))
            print(f"[{name}] recorded in {args.record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
