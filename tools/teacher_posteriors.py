#!/usr/bin/env python
"""The teacher's posteriors for frame-level distillation (issue 13): hama's phone posteriors on every utterance of
the training manifests, mapped onto a phone model's tokens (:mod:`asr.distill.teacher`), stored as float16 in
safetensors shards (:mod:`asr.distill.store`); and the delay that fits a student.

    # every training utterance (clean audio: the student hears it augmented); resumable, --jobs processes
    python tools/teacher_posteriors.py --data data/manifests/synth_train_all.jsonl \\
        --data data/realspeech/realspeech-train.jsonl --out data/teacher/hama --jobs 2
    # how many 40 ms frames later than hama a causal student emits: the KL of each delay on a dev set
    python tools/teacher_posteriors.py --measure-delay --model asr/assets/model/model.safetensors \\
        --data data/realspeech/realspeech-dev.jsonl --max-utterances 200 --out runs/distill/delay

Posteriors come from the utterance's audio as the loader gives it (16 kHz mono), decoded whole by hama's engine (one
thread per process). ``--measure-delay`` writes ``delay.json`` and prints a table: for each delay, the mean per
frame of KL(teacher || student) and the share of frames where the two agree on the most likely token.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

logger = logging.getLogger("teacher_posteriors")

_worker_teacher = None


def _model_tokens(model: str | None) -> list[str]:
    """The student's tokens: a model's, or with ``phone`` those of the phone tokenizer a new phone run builds."""
    if model == "phone":
        from asr.text.phones import PhoneTokenizer

        return list(PhoneTokenizer().tokens)
    from asr.pipeline import load_asr_model, resolve_model_path

    return list(load_asr_model(resolve_model_path(model)).tokenizer.tokens)


def _init_worker(tokens: list[str]) -> None:
    global _worker_teacher
    from asr.distill.teacher import HamaTeacher

    _worker_teacher = HamaTeacher(tokens)


def _shard_job(job: tuple[str, list, dict]) -> tuple[str, int, float, dict[str, str]]:
    """Posteriors of one shard's utterances, written to ``job[0]``."""
    from asr.distill.store import write_shard

    path, utts, setup = job
    posteriors, failed, unmapped = {}, {}, 0.0
    for u in utts:
        try:
            out = _worker_teacher(u.load_audio(target_sr=16000).numpy())
        except ValueError as exc:
            failed[u.id] = str(exc)
            continue
        posteriors[u.id] = out.log_probs
        unmapped += out.unmapped_mass
    if posteriors:
        write_shard(Path(path), posteriors, setup)
    return path, len(posteriors), unmapped, failed


def _stored_ids(folder: Path, tokens: list[str], setup: dict) -> set[str]:
    """The utterances the folder's shards hold already; its shards must have been made with this setup."""
    from asr.distill.store import TeacherStore

    if not any(folder.glob("shard-*.safetensors")):
        return set()
    store = TeacherStore(folder, tokens)
    if store.setup != setup:
        raise SystemExit(f"{folder} holds posteriors made with another setup ({store.setup}); this run's is {setup}: "
                         "use another --out")  # fmt: skip
    return set(store.ids)


def make_store(args: argparse.Namespace) -> int:
    from multiprocessing import get_context

    from tqdm import tqdm

    from asr.data.sources import load_utterances
    from asr.distill.store import plan_shards
    from asr.distill.teacher import HamaTeacher

    tokens = _model_tokens(args.model)
    setup = HamaTeacher(tokens).setup
    where: dict[str, tuple[str, object]] = {}  # id -> (manifest, utterance)
    for manifest in args.data:
        for u in load_utterances(manifest):
            if u.id in where:
                raise SystemExit(f"utterance id {u.id} is in {where[u.id][0]} and {manifest}: ids must be unique")
            where[u.id] = (manifest, u)
    out = Path(args.out)
    have = _stored_ids(out, tokens, setup)  # shards of earlier runs (other manifests, or an interrupted run)
    shards = plan_shards([i for i in where if i not in have], setup, size=args.shard_size)
    todo = [(str(out / n), [where[i][1] for i in ids], setup) for n, ids in shards]
    print(f"{len(where)} utterances: {len(where) - sum(len(t[1]) for t in todo)} stored already, "
          f"{sum(len(t[1]) for t in todo)} to make in {len(todo)} shards")
    failed: dict[str, str] = {}
    unmapped = made = 0.0
    ctx = get_context("fork")
    with ctx.Pool(args.jobs, initializer=_init_worker, initargs=(tokens,)) as pool, tqdm(
        total=sum(len(j[1]) for j in todo), unit="utt", desc="hama posteriors", disable=args.no_progress
    ) as bar:
        for _, n, mass, fails in pool.imap_unordered(_shard_job, todo):
            bar.update(n + len(fails))
            failed.update(fails)
            made += n
            unmapped += mass
    summary = {
        "setup": setup,
        "utterances": len(where),
        "shards_made_now": len(todo),
        "made_now": int(made),
        "failed": failed,
        "mean_unmapped_mass": unmapped / made if made else None,
        "manifests": args.data,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}: {int(made)} utterances now, {len(failed)} failed; mean probability hama gave to tokens "
          f"nothing maps: {summary['mean_unmapped_mass']}")  # fmt: skip
    return 1 if todo and not made else 0  # nothing could be made


def measure_delay(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from asr.data.sources import load_utterances
    from asr.distill.loss import distill_loss, student_targets
    from asr.distill.teacher import FRAME_SECONDS, HamaTeacher
    from asr.pipeline import load_asr_model, resolve_model_path

    torch.set_num_threads(1)
    bundle = load_asr_model(resolve_model_path(args.model))
    teacher = HamaTeacher(bundle.tokenizer.tokens)
    blank = bundle.tokenizer.blank_id
    delays = list(range(args.max_delay + 1))
    kl = {d: 0.0 for d in delays}
    agree = {d: 0 for d in delays}
    frames = {d: 0 for d in delays}
    utts = []
    for manifest in args.data:
        utts += load_utterances(manifest)
    utts = utts[: args.max_utterances] if args.max_utterances else utts
    for u in tqdm(utts, unit="utt", desc="delay", disable=args.no_progress):
        samples = u.load_audio(target_sr=16000)
        student = bundle.utterance_log_probs(samples).numpy().astype(np.float64)
        t_lp = teacher(samples.numpy()).log_probs
        for d in delays:
            target, mask = student_targets(
                t_lp, student.shape[0], frame_seconds=bundle.seconds_per_frame, teacher_frame_seconds=FRAME_SECONDS,
                delay_frames=d, blank=blank,
            )  # fmt: skip
            loss, n = distill_loss(torch.from_numpy(student)[None], [(target, mask)])  # the trainer's KL term
            kl[d] += float(loss)
            agree[d] += int((target[mask].argmax(1) == student[mask].argmax(1)).sum())
            frames[d] += n
    rows = [{"delay_frames": d, "delay_ms": round(1000 * d * bundle.seconds_per_frame),
             "kl_per_frame": kl[d] / max(frames[d], 1), "argmax_agreement": agree[d] / max(frames[d], 1),
             "frames": frames[d]} for d in delays]  # fmt: skip
    best = min(rows, key=lambda r: r["kl_per_frame"])
    print("| delay (frames) | ms | KL per frame | argmax agreement |\n|---:|---:|---:|---:|")
    for r in rows:
        mark = " (best)" if r is best else ""
        print(f"| {r['delay_frames']}{mark} | {r['delay_ms']} | {r['kl_per_frame']:.3f} | "
              f"{r['argmax_agreement']:.3f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": str(resolve_model_path(args.model)), "data": args.data, "utterances": len(utts),
              "teacher": teacher.setup, "rows": rows, "best_delay_frames": best["delay_frames"]}  # fmt: skip
    (out / "delay.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'delay.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True, help="a manifest (repeat for several)")
    ap.add_argument("--out", required=True, help="the store folder (or, with --measure-delay, the report folder)")
    ap.add_argument("--model", help="the student whose tokens the posteriors are mapped onto (default: the bundle; "
                    "'phone': the phone tokenizer's, as a new phone run builds it)")
    ap.add_argument("--jobs", type=int, default=1, help="processes (hama's engine uses one thread each)")
    ap.add_argument("--shard-size", type=int, default=None, help="utterances per shard (default: the store's)")
    ap.add_argument("--measure-delay", action="store_true", help="measure the student's delay instead")
    ap.add_argument("--max-delay", type=int, default=8, help="--measure-delay: largest delay tried, in frames")
    ap.add_argument("--max-utterances", type=int, default=200, help="--measure-delay: utterances (0: all)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    if args.shard_size is None:
        from asr.distill.store import SHARD_UTTERANCES

        args.shard_size = SHARD_UTTERANCES
    return measure_delay(args) if args.measure_delay else make_store(args)


if __name__ == "__main__":
    sys.exit(main())
