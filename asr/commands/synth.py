"""``asr synth``: build (or resume) the synthetic speech corpus in LibriSpeech layout."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from asr.synth.engines import ENGINES
    from asr.synth.generate import PRESETS

    parser.add_argument("--out", type=Path, required=True, help="corpus folder (created; rerun to resume)")
    parser.add_argument("--hours", type=float, default=None, help="target hours of audio, all splits (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPU count)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="tiny: ~1 minute, for tests")
    parser.add_argument(
        "--engines",
        default=None,
        help=f"comma-separated engines to use (default: every one found); known: {','.join(ENGINES)}",
    )
    parser.add_argument(
        "--exclude-settings",
        type=Path,
        default=None,
        help="a file of engine:voice:rate keys or glob patterns, one per line (# comments), that the planner skips: "
        "e.g. the excluded_settings.txt of tools/score_voices.py (voices Whisper cannot read)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_excluded_settings(path: Path) -> tuple[str, ...]:
    """The setting keys / patterns of ``path`` (blank lines and # comments ignored); a clear error if unreadable."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--exclude-settings {path}: cannot read it ({exc})") from exc
    keys = tuple(k for k in (line.split("#", 1)[0].strip() for line in lines) if k)
    bad = [k for k in keys if k.count(":") < 1]
    if bad:
        raise ValueError(f"--exclude-settings {path}: {bad[:3]} are not engine:voice[:rate] keys or patterns")
    return keys


def run(args: argparse.Namespace) -> int:
    from asr.synth.generate import config_with_preset, synthesize_corpus

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip()) if args.engines else None
    excluded = read_excluded_settings(args.exclude_settings) if args.exclude_settings else None
    config = config_with_preset(
        args.preset, hours=args.hours, seed=args.seed, engines=engines, excluded_settings=excluded
    )
    summary = synthesize_corpus(args.out, config=config, jobs=args.jobs, progress=not args.no_progress)
    rows = summary["hours_per_engine_per_split"]
    print(f"{'engine':<12}{'train h':>10}{'dev h':>10}{'test h':>10}{'total h':>10}")
    for engine, hours in rows.items():
        print(
            f"{engine:<12}{hours['train']:>10.3f}{hours['dev']:>10.3f}{hours['test']:>10.3f}"
            f"{sum(hours.values()):>10.3f}"
        )
    print(f"{'all':<12}{'':>30}{summary['hours_total']:>10.3f}")
    print(json.dumps({"out": str(args.out), "wall_seconds": summary["run"]["wall_seconds"]}))
    return 0
