"""``asr plot RUN_DIR [RUN_DIR ...] [--out PNG]``: training loss and dev-WER curves of one or more runs.

    asr plot runs/linear                                  # -> runs/linear/curves.png
    asr plot runs/linear runs/softmax --out docs/curves.png   # several runs overlaid, labelled by folder name

Reads ``metrics.csv`` (loss per logged step) and ``dev.csv`` (dev WER per epoch) that ``asr train`` writes.
Rows a resumed run logged twice (after its last checkpoint, then again after the resume) count once: the
later row wins. Rendering uses matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders written by 'asr train'"
    )
    parser.add_argument("--out", type=Path, help="PNG path (default: RUN_DIR/curves.png of the first run)")
    parser.add_argument("--dpi", type=int, default=120, help="resolution (default 120)")


def _read_csv(path: Path, key: str, value: str) -> tuple[list[float], list[float]]:
    """(keys, values) of the rows with a ``value`` entry, one per ``key`` (the last row wins), sorted."""
    if not path.is_file():
        return [], []
    rows: dict[float, float] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or key not in reader.fieldnames or value not in reader.fieldnames:
            raise ValueError(f"{path} lacks the columns {key!r} and {value!r} (has {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            if not row.get(value):
                continue
            try:
                rows[float(row[key])] = float(row[value])
            except ValueError as exc:
                raise ValueError(
                    f"{path}:{line}: bad {key}/{value} values {row[key]!r}, {row[value]!r}"
                ) from exc
    keys = sorted(rows)
    return keys, [rows[k] for k in keys]


def plot_runs(runs: list[Path], out: Path, *, dpi: int = 120) -> Path:
    """Draw loss (per step) and dev WER (per epoch) of ``runs`` side by side into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = []
    for run in runs:
        if not run.is_dir():
            raise ValueError(f"run folder {str(run)!r} does not exist")
        loss = _read_csv(run / "metrics.csv", "step", "loss")
        wer = _read_csv(run / "dev.csv", "epoch", "dev_wer")
        if not loss[0] and not wer[0]:
            raise ValueError(
                f"{run} has neither metrics.csv nor dev.csv rows: is it an 'asr train' run folder?"
            )
        curves.append((run.resolve().name, loss, wer))

    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(11, 4))
    for label, (steps, losses), (epochs, wers) in curves:
        if steps:
            ax_loss.plot(steps, losses, label=label, linewidth=1)
        if epochs:
            ax_wer.plot(epochs, [100 * w for w in wers], marker="o", label=label)
    ax_loss.set(xlabel="optimizer step", ylabel="CTC loss per utterance", title="training loss")
    ax_wer.set(xlabel="epoch", ylabel="dev WER (%)", title="dev WER (greedy; PER for phone models)")
    ax_wer.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax_loss, ax_wer):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if any(losses and min(losses) > 0 for _, (_, losses), _ in curves):
        ax_loss.set_yscale("log")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(out)
    return out


def run(args: argparse.Namespace) -> int:
    out = args.out or args.runs[0] / "curves.png"
    try:
        plot_runs(args.runs, out, dpi=args.dpi)
    except ValueError as exc:
        print(f"asr plot: error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0
