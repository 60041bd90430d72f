#!/usr/bin/env python
"""The campaign's learning curve: every epoch checkpoint of one or more runs, scored on dev sets against the CPU
time spent training so far.

    python tools/learning_curve.py --run runs/world1 --run runs/world2 \\
        --data realspeech-dev=data/realspeech/realspeech-dev.jsonl --data synth-dev=data/synth_clean/dev \\
        --out runs/curve

Phone runs: greedy output is phone strings, so a set's ``wer`` column holds the phone error rate and its ``cer``
column is empty. ``--lm-data NAME=DATA --lm FOLDER --lm-weight W --word-score S`` adds sets decoded into words with
a lexicon + LM at fixed weights (the same for every epoch, so the points compare), which is how a phone model is
compared with a character one:

    python tools/learning_curve.py --run runs/targets-phone --run runs/phones1 \
        --data realspeech-dev=data/realspeech/realspeech-dev.jsonl --data synth-dev=data/synth_clean/dev \
        --lm-data realspeech-dev+lm=data/realspeech/realspeech-dev.jsonl --lm runs/lm-bundle-phone \
        --lm-weight 1 --word-score -2 --out runs/curve-phones

Runs are given in the order they were trained (a later run warm-started from an earlier one continues its
curve). For each ``RUN/checkpoints/epoch-NNN.safetensors`` and each set, ``asr eval`` (greedy CTC, full
utterance, one thread) writes ``OUT/<run>/epoch-NNN/<set>/summary.json``; an existing summary is reused, so
rerunning after more epochs only scores the new ones. Epoch checkpoints that training has since pruned are
skipped (their rows stay if they were scored before). A run that ``max_steps`` stopped inside an epoch has no
checkpoint of that epoch: its ``final.safetensors`` (the weights after the last step) is scored as that epoch's
row, at the step it stopped (``OUT/<run>/final/<set>``).

CPU time: the trainer process's CPU seconds (all its threads) from ``RUN/metrics.csv`` (``cpu_s``, which restarts
at 0 when a run is resumed: the segments are summed), at the last logged step of each epoch, plus every earlier
run's total. Loader worker processes are not counted (on 2 cores they add ~10-25%); steps a crash threw away
and a resume trained again are (the CPU was spent). Writes ``OUT/curve.json`` and ``OUT/curve.csv`` and prints
the table.

History: run folders do not outlive the machine, the curve must. ``--history docs/learning_curve.csv`` (committed)
holds every row scored so far; rows of runs no longer on disk are kept as they are, a row scored again replaces
the one of the same run and epoch, and ``--write-history`` writes the merged rows back. A run whose predecessor is
only in the history continues from the highest CPU-hours the history gives the runs before it (the checkpoint it
was warm-started from, as make_bundle's phases do). ``--start RUN=EARLIER:EPOCH`` says that RUN was warm-started
from EARLIER's epoch EPOCH (on disk or in the history): its CPU time continues from that row's, not from the total
of the runs before it (a phase that starts from an earlier epoch than the last one trained).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def cpu_seconds_by_step(metrics: list[dict]) -> list[tuple[int, float]]:
    """(step, cumulative trainer CPU seconds) for every metrics row, summing the segments between restarts."""
    out, offset, last = [], 0.0, 0.0
    for row in metrics:
        if not row.get("cpu_s"):
            continue
        cpu = float(row["cpu_s"])
        if cpu < last:  # a resume restarted the process clock
            offset += last
        last = cpu
        out.append((int(row["step"]), offset + cpu))
    return out


def cpu_at(step: int, series: list[tuple[int, float]]) -> float:
    """CPU seconds at the last logged row at or before ``step`` (rows are every log_every_steps steps)."""
    before = [c for s, c in series if s <= step]
    return before[-1] if before else 0.0


def _evaluate(model: Path, data: str, out: Path, decoder: tuple[str, ...] = ("--no-lm",)) -> dict:
    """``asr eval`` (cached in ``out``): greedy, or the ``decoder`` options (an LM folder and its weights). A cached
    summary decoded with other LM settings than ``decoder`` gives (a folder's defaults changed under it) is made
    again."""
    summary = out / "summary.json"
    if summary.is_file() and not _same_settings(json.loads(summary.read_text()), decoder):
        summary.unlink()
    if not summary.is_file():
        cmd = [sys.executable, "-m", "asr.cli", "eval", "--model", str(model), "--data", data, *decoder,
               "--threads", "1", "--no-progress", "--out", str(out)]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=REPO)
    return json.loads(summary.read_text())


_SETTINGS = {"--lm-weight": "lm_weight", "--word-score": "word_score", "--blank-penalty": "blank_penalty",
             "--beam": "beam_size", "--beam-tokens": "beam_size_token",
             "--beam-threshold": "beam_threshold"}  # fmt: skip


def _same_settings(summary: dict, decoder: tuple[str, ...]) -> bool:
    """Whether a summary was decoded with the search settings ``decoder`` names (a setting the summary predates
    counts as its default: a blank penalty of 0; a token limit of None is "all")."""
    lm = {"blank_penalty": 0.0, **(summary.get("lm") or {})}

    def value(v) -> float:
        return float("inf") if v is None or v == "all" else float(v)

    return all(value(lm.get(key, "nan")) == value(decoder[decoder.index(flag) + 1])
               for flag, key in _SETTINGS.items() if flag in decoder)  # fmt: skip


HISTORY_KEYS = ("run", "epoch", "step", "cpu_hours")


def read_history(path: Path) -> tuple[list[str], list[dict]]:
    """(set names, rows) of a history CSV; a malformed one is an error naming the file and line."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        missing = [k for k in HISTORY_KEYS if k not in fields]
        if missing:
            raise ValueError(f"{path}: header lacks {', '.join(missing)} (has {', '.join(fields) or 'nothing'})")
        extra = [f for f in fields if f not in HISTORY_KEYS]
        sets = [f[: -len("_wer")] for f in extra if f.endswith("_wer")]
        if sorted(extra) != sorted([f"{s}_{m}" for s in sets for m in ("wer", "cer")]):
            raise ValueError(f"{path}: columns after {', '.join(HISTORY_KEYS)} must be <set>_wer and <set>_cer pairs")
        rows = []
        for line, raw in enumerate(reader, start=2):
            try:
                row = {"run": raw["run"], "epoch": int(raw["epoch"]), "step": int(raw["step"]),
                       "cpu_hours": float(raw["cpu_hours"])}  # fmt: skip
                for f in extra:
                    row[f] = float(raw[f]) if raw[f] not in ("", None) else None
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {line}: {e}") from None
            if not row["run"]:
                raise ValueError(f"{path}, line {line}: empty run name")
            rows.append(row)
    return sets, rows


def merge(history: list[dict], scored: list[dict]) -> list[dict]:
    """History rows with the scored ones put in (same run and epoch: replaced), in run order then epoch order."""
    order: list[str] = []
    for r in history + scored:
        if r["run"] not in order:
            order.append(r["run"])
    by_key = {(r["run"], r["epoch"]): r for r in history}
    by_key.update({(r["run"], r["epoch"]): r for r in scored})
    return sorted(by_key.values(), key=lambda r: (order.index(r["run"]), r["epoch"]))


def curve(
    runs: list[Path],
    sets: dict[str, str],
    out: Path,
    history: list[dict] | None = None,
    decoders: dict[str, tuple[str, ...]] | None = None,
    starts: dict[str, tuple[str, int]] | None = None,
) -> list[dict]:
    """Rows for every scored epoch checkpoint of ``runs``. With ``history``, a run's CPU time starts from the
    highest CPU-hours of the history rows of runs before it, when no run before it is on disk. ``decoders``: the
    ``asr eval`` decoder options of the sets not decoded greedily (by name). ``starts``: run name -> (earlier
    run, epoch) it was warm-started from; its CPU time continues from that row's."""
    decoders = decoders or {}
    rows: list[dict] = []
    previous_total = 0.0
    on_disk = [run.name for run in runs]
    history = history or []
    history_order = list(dict.fromkeys(r["run"] for r in history))
    for i, run in enumerate(runs):
        if i == 0 and history:
            # no run before this one is on disk: it continues the history's curve
            before = history_order[: history_order.index(run.name)] if run.name in history_order else history_order
            earlier = [r["cpu_hours"] for r in history if r["run"] in before and r["run"] not in on_disk]
            previous_total = 3600 * max(earlier, default=0.0)
        if starts and run.name in starts:
            previous_total = 3600 * _start_hours(run.name, starts[run.name], rows + history)
        series = cpu_seconds_by_step(_rows(run / "metrics.csv"))
        dev = {int(r["epoch"]): int(r["step"]) for r in _rows(run / "dev.csv")}
        points = []
        for ckpt in sorted((run / "checkpoints").glob("epoch-*.safetensors")):
            epoch = int(ckpt.stem.split("-")[1])
            if dev.get(epoch) is not None:  # else the epoch's row is not written yet
                points.append((ckpt, epoch, dev[epoch]))
        stopped = stopped_inside_an_epoch(run)
        if stopped is not None and stopped[1] not in {p[1] for p in points}:
            points.append(stopped)
        for ckpt, epoch, step in points:
            row = {"run": run.name, "epoch": epoch, "step": step,
                   "cpu_hours": round((previous_total + cpu_at(step, series)) / 3600, 3)}  # fmt: skip
            for name, data in sets.items():
                s = _evaluate(ckpt, data, out / run.name / ckpt.stem / name, decoders.get(name, ("--no-lm",)))
                cer = s.get("cer")  # None for a phone model's greedy output (its summary has "per", no characters)
                row[f"{name}_wer"] = round(s["per"] if "per" in s else s["wer"], 4)
                row[f"{name}_cer"] = round(cer, 4) if cer is not None and cer == cer else None
            rows.append(row)
        previous_total += series[-1][1] if series else 0.0
    return rows


def _extra_metadata(path: Path) -> dict:
    from asr.model.checkpoint import read_extra

    try:
        return read_extra(path)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def stopped_inside_an_epoch(run: Path) -> tuple[Path, int, int] | None:
    """(final.safetensors, its 1-based epoch, its step) when ``max_steps`` stopped ``run`` inside an epoch (the
    trainer then writes the weights after the last step as the final model, naming the step checkpoint they came
    from); None when the run has no such final model. Its row is the epoch's, at the step it stopped."""
    final = run / "final.safetensors"
    if not final.is_file():
        return None
    source = _extra_metadata(final).get("from")
    if not source:
        return None  # an average of epoch checkpoints: those are scored themselves
    ckpt = run / "checkpoints" / f"{source}.safetensors"
    if not ckpt.is_file():
        raise SystemExit(f"{final} was written from {ckpt}, which is gone: its step and epoch are unknown")
    position = _extra_metadata(ckpt).get("position")
    if not position:
        raise SystemExit(f"{ckpt}: no training position in its metadata")
    return final, int(position["epoch"]) + 1, int(position["step"])


def _start_hours(run: str, start: tuple[str, int], rows: list[dict]) -> float:
    """The CPU-hours of the row ``start`` (run, epoch) a warm-started ``run`` continues from."""
    found = [r["cpu_hours"] for r in rows if r["run"] == start[0] and int(r["epoch"]) == start[1]]
    if not found:
        raise SystemExit(f"--start {run}={start[0]}:{start[1]}: no row of {start[0]} epoch {start[1]} on disk or in "
                         "the history (give the earlier run first)")  # fmt: skip
    return float(found[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, action="append", required=True, help="a run folder (repeat, in order)")
    ap.add_argument("--data", action="append", required=True, help="NAME=MANIFEST_OR_FOLDER (repeat)")
    ap.add_argument("--out", type=Path, default=Path("runs/curve"))
    ap.add_argument("--lm-data", action="append", default=[], help="NAME=DATA decoded with --lm (repeat)")
    ap.add_argument("--lm", help="LM folder for the --lm-data sets (made for the runs' tokens)")
    ap.add_argument("--lm-weight", type=float, help="fixed LM weight for the --lm-data sets")
    ap.add_argument("--word-score", type=float, help="fixed word score for the --lm-data sets")
    ap.add_argument("--lm-beam", type=int, help="fixed beam for the --lm-data sets (default: the LM folder's)")
    ap.add_argument("--lm-beam-tokens", help="fixed tokens a frame ('all' or a number) for the --lm-data sets "
                    "(default: the LM folder's)")  # fmt: skip
    ap.add_argument("--lm-beam-threshold", type=float,
                    help="fixed beam threshold for the --lm-data sets (default: the LM folder's)")  # fmt: skip
    ap.add_argument("--blank-penalty", type=float, default=0.0,
                    help="fixed blank penalty for the --lm-data sets (default 0, whatever the folder's)")  # fmt: skip
    ap.add_argument("--history", type=Path, help="CSV of the rows scored before (docs/learning_curve.csv)")
    ap.add_argument("--write-history", action="store_true", help="write the merged rows back to --history")
    ap.add_argument("--start", action="append", default=[], metavar="RUN=EARLIER:EPOCH",
                    help="RUN was warm-started from EARLIER's epoch EPOCH (repeat)")  # fmt: skip
    args = ap.parse_args(argv)
    starts: dict[str, tuple[str, int]] = {}
    for item in args.start:
        run_name, _, point = item.partition("=")
        earlier, _, epoch = point.rpartition(":")
        if not run_name or not earlier or not epoch.isdigit():
            ap.error(f"--start {item!r}: expected RUN=EARLIER:EPOCH")
        starts[run_name] = (earlier, int(epoch))
    if args.write_history and not args.history:
        ap.error("--write-history needs --history FILE")
    sets, decoders = {}, {}
    if args.lm_data and (args.lm is None or args.lm_weight is None or args.word_score is None):
        ap.error("--lm-data needs --lm, --lm-weight and --word-score (fixed weights: the epochs must compare)")
    for flag, items in (("--data", args.data), ("--lm-data", args.lm_data)):
        for item in items:
            name, sep, data = item.partition("=")
            if not sep or not name or not data:
                ap.error(f"{flag} {item!r}: expected NAME=PATH")
            if name in sets:
                ap.error(f"{flag} {item!r}: the set name {name!r} is given twice")
            sets[name] = data
            if flag == "--lm-data":
                decoders[name] = ("--lm", args.lm, "--lm-weight", str(args.lm_weight),
                                  "--word-score", str(args.word_score), "--blank-penalty", str(args.blank_penalty),
                                  *(("--beam", str(args.lm_beam)) if args.lm_beam else ()),
                                  *(("--beam-tokens", args.lm_beam_tokens) if args.lm_beam_tokens else ()),
                                  *(("--beam-threshold", str(args.lm_beam_threshold))
                                    if args.lm_beam_threshold else ()))  # fmt: skip
    for run in args.run:
        if not (run / "checkpoints").is_dir():
            ap.error(f"{run} has no checkpoints/ folder: not a training run")
    history: list[dict] = []
    if args.history and args.history.is_file():
        try:
            history_sets, history = read_history(args.history)
        except ValueError as e:
            ap.error(str(e))
        if sorted(history_sets) != sorted(sets):
            ap.error(f"{args.history} has the sets {', '.join(history_sets)}; --data gives {', '.join(sets)}")
    elif args.history and not args.write_history:
        ap.error(f"--history {args.history}: no such file")
    rows = merge(history, curve(args.run, sets, args.out, history, decoders, starts))
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"sets": sets, "rows": rows, "decoders": {k: list(v) for k, v in decoders.items()}}
    (args.out / "curve.json").write_text(json.dumps(record, indent=1) + "\n")
    fields = ["run", "epoch", "step", "cpu_hours"] + [f"{n}_{m}" for n in sets for m in ("wer", "cer")]
    targets = [args.out / "curve.csv"] + ([args.history] if args.write_history else [])
    for target in targets:
        with target.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    print(" ".join(f"{h:>16}" for h in fields))
    for r in rows:
        print(" ".join(f"{r[h]!s:>16}" for h in fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
