"""Score a phone training run of issue 13's campaign against the committed bundle, as every session scores one.

    python tools/score_run.py runs/kvblend1                 # one run
    python tools/score_run.py runs/kvaried2 runs/kvblend1   # several, in the order they were trained

For each RUN (its ``final.safetensors``: the weights after its last step), three things, each cached on disk:
1. the phone learning curve's rows (``tools/learning_curve.py`` at the campaign's fixed settings, the same call as
   ``make_bundle --steps curve``: greedy PER on realspeech-dev and synth-dev, realspeech-dev in words at fixed LM
   weights), written into ``docs/learning_curve_phones.csv``; the run's warm start is read from its config (as
   ``make_bundle`` reads it), or given with ``--start RUN=EARLIER:EPOCH``;
2. realspeech-dev with the committed bundle's own decoder (its lexicon, LM and shipped weights from ``lm.json``):
   ``RUN/score/realspeech-dev``; the bundle itself is scored the same way once per dev set, model and decoder
   (``runs/score-bundle/<dev set>/<digest>/realspeech-dev``);
3. the paired bootstrap of RUN against the bundle on those utterances (``RUN/score/bootstrap-vs-bundle.json``).

Prints one markdown row a run, in the columns of docs/results.md section 2's tables, and writes them with the
figures to ``RUN/score/score.json``. This is the comparison at the bundle's weights; whether a run replaces the
bundle is ``make_bundle --steps select`` (each model at its own tuned weights, and the 4+ word condition).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import make_bundle as mb

CURVE_OUT = Path("runs/curve-phones")  # where make_bundle.phone_curve_command writes
BASELINES = Path("runs/score-bundle")


def _curve_row(run: Path) -> dict:
    """The run's last row of the phone curve (its final weights, or its last epoch's when they are the same)."""
    rows = json.loads((mb.ROOT / CURVE_OUT / "curve.json").read_text())["rows"]
    mine = [r for r in rows if r["run"] == run.name]
    if not mine:
        raise SystemExit(f"{run}: no row in {CURVE_OUT}/curve.json after scoring: no checkpoints to score?")
    return max(mine, key=lambda r: r["step"])


def score_curve(runs: list[Path], starts: list[str]) -> None:
    given = {s.split("=", 1)[0] for s in starts}
    for run in runs:
        if run.name in given:
            continue
        point = mb._start_point(run)
        if point is None:  # the curve would continue from the runs before it: wrong CPU-hours, silently
            raise SystemExit(f"{run}: cannot tell which checkpoint it was warm-started from; "
                             f"pass --start {run.name}=EARLIER:EPOCH")  # fmt: skip
        starts = [*starts, f"{run.name}={point[0]}:{point[1]}"]
    mb._sh(mb.phone_curve_command(runs, [f"--start={s}" for s in starts], mb.ASSETS / "model"))


def baseline() -> Path:
    """The committed bundle on realspeech-dev with its own decoder (cached per dev set and tail padding, model and
    decoder files)."""
    folder = mb.ASSETS / "model"
    key = mb._digest(mb.MODEL, folder / "lm.json", folder / "lexicon.txt.gz", folder / "lm.arpa.gz")
    out = BASELINES / mb._dev_key() / key / "realspeech-dev"
    mb._eval(mb.MODEL, mb.REAL_DEV, out, lm=True)
    return out


def score_run(run: Path, base: Path) -> dict:
    final = run / "final.safetensors"
    if not (mb.ROOT / final).is_file():
        raise SystemExit(f"{final} is missing: a run is scored when it has finished (or resume it first)")
    out = run / "score"
    summary = mb._eval(final, mb.REAL_DEV, out / "realspeech-dev", lm=True)
    boot = out / "bootstrap-vs-bundle.json"
    if not (mb.ROOT / boot).is_file():
        mb._sh([mb.PY, "tools/paired_bootstrap.py", str(base), str(out / "realspeech-dev"), "--out", str(boot)])
    b = json.loads((mb.ROOT / boot).read_text())
    curve = _curve_row(run)
    result = {
        "run": run.name,
        "step": curve["step"],
        "realspeech_dev_per": curve["realspeech-dev_wer"],
        "synth_dev_per": curve["synth-dev_wer"],
        "realspeech_dev_wer": summary["wer"],
        "realspeech_dev_cer": summary["cer"],
        "decoder": summary["decoder"],
        "bootstrap_vs_bundle": b,
    }
    (mb.ROOT / out / "score.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def row(r: dict) -> str:
    b = r["bootstrap_vs_bundle"]
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    diff = f"{100 * b['difference']:+.1f} (95%: {100 * b['low']:+.1f} .. {100 * b['high']:+.1f}; fewer errors on " \
        f"{b['b_better']} clips, more on {b['b_worse']})"  # fmt: skip
    return (f"| {r['run']} ({r['step']} steps) | {pct(r['realspeech_dev_per'])} | {pct(r['synth_dev_per'])} | "
            f"{pct(r['realspeech_dev_wer'])} / {pct(r['realspeech_dev_cer'])} | {diff} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (runs/NAME), in the order trained")
    parser.add_argument("--start", action="append", default=[], metavar="RUN=EARLIER:EPOCH",
                        help="a run's warm start, when its config cannot tell (learning_curve.py --start)")  # fmt: skip
    args = parser.parse_args(argv)
    for s in args.start:
        if not re.fullmatch(r"[^=]+=[^:]+:\d+", s):
            parser.error(f"--start {s!r}: expected RUN=EARLIER:EPOCH")
    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not (mb.ROOT / r / "config.yaml").is_file():
            parser.error(f"{r} is not a training run folder (no config.yaml)")
    score_curve(runs, args.start)
    base = baseline()
    results = [score_run(r, base) for r in runs]
    print("| run | realspeech-dev PER (greedy) | synth-dev PER | realspeech-dev WER / CER, bundle's decoder "
          "| paired bootstrap against the bundle (WER) |")  # fmt: skip
    print("|---|---|---|---|---|")
    bundle = json.loads((mb.ROOT / base / "summary.json").read_text())
    print(f"| the bundle | | | {100 * bundle['wer']:.1f} / {100 * bundle['cer']:.1f} | |")
    for r in results:
        print(row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
