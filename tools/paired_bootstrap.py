"""Is system B's error rate really different from system A's? The paired bootstrap over two `asr eval` runs of the
same set (Bisani & Ney, "Bootstrap estimates for confidence intervals in ASR performance evaluation", 2004).

    python tools/paired_bootstrap.py runs/study_v3/linear/eval-test-full runs/study_v3/softmax/eval-test-full
    python tools/paired_bootstrap.py A/utterances.jsonl B/utterances.jsonl --resamples 10000 --out runs/ab.json

A and B are `asr eval --out` folders (their utterances.jsonl) or the files themselves; every utterance must be in
both, scored against the same reference. The utterances are resampled with replacement (``--resamples``, seeded),
and each resample's difference of corpus error rates (B - A) is kept: the table gives the difference, the interval
holding ``--confidence`` of the resampled differences, the share of resamples in which B is better, and on how many
utterances each system makes fewer errors. The rate is whatever `asr eval` scored (WER, or PER for phone output).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from asr.scoring import ErrorCounts, paired_bootstrap


def read_scores(path: Path) -> dict[str, tuple[str, ErrorCounts]]:
    """id -> (reference, counts) of an `asr eval` run: its folder or its utterances.jsonl."""
    path = Path(path)
    file = path / "utterances.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"{path}: no utterances.jsonl (give an `asr eval --out` folder or the file)")
    out = {}
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            counts = ErrorCounts(*(int(row[k]) for k in ("hits", "substitutions", "deletions", "insertions")))
            utt_id, ref = str(row["id"]), row["ref"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{file}:{n}: not an `asr eval` utterance row ({exc})") from None
        if utt_id in out:
            raise ValueError(f"{file}:{n}: utterance {utt_id!r} appears twice")
        out[utt_id] = (ref, counts)
    if not out:
        raise ValueError(f"{file}: no utterances")
    return out


def compare(a: dict, b: dict, *, resamples: int, seed: int, confidence: float):
    """The bootstrap of b against a over their common utterances; ValueError when the sets or references differ."""
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    if only_a or only_b:
        raise ValueError(f"the runs scored different utterances: {len(only_a)} only in A (e.g. {only_a[:3]}), "
                         f"{len(only_b)} only in B (e.g. {only_b[:3]})")  # fmt: skip
    ids = sorted(a)
    differ = [i for i in ids if a[i][0] != b[i][0]]
    if differ:
        i = differ[0]
        raise ValueError(f"{len(differ)} utterances have different references in the two runs, e.g. {i!r}: "
                         f"{a[i][0]!r} against {b[i][0]!r}")  # fmt: skip
    return paired_bootstrap([a[i][1] for i in ids], [b[i][1] for i in ids], resamples=resamples, seed=seed,
                            confidence=confidence)  # fmt: skip


def describe(result, name_a: str, name_b: str) -> str:
    r = result
    pts = lambda x: f"{100 * x:+.2f}"  # noqa: E731
    return "\n".join([
        f"A  {100 * r.rate_a:6.2f}  {name_a}",
        f"B  {100 * r.rate_b:6.2f}  {name_b}",
        f"B - A: {pts(r.difference)} points; {100 * r.confidence:g}% of {r.resamples} resamples (seed {r.seed}) "
        f"within {pts(r.low)} .. {pts(r.high)}; B better in {100 * r.p_b_better:.1f}% of them",
        f"{r.utterances} utterances: B makes fewer errors on {r.b_better}, more on {r.b_worse}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="system A: an `asr eval --out` folder or its utterances.jsonl")
    parser.add_argument("b", type=Path, help="system B, on the same utterances")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--out", type=Path, help="write the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = compare(read_scores(args.a), read_scores(args.b), resamples=args.resamples, seed=args.seed,
                         confidence=args.confidence)  # fmt: skip
    except ValueError as exc:
        print(f"paired_bootstrap: error: {exc}", file=sys.stderr)
        return 2
    print(describe(result, str(args.a), str(args.b)))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"a": str(args.a), "b": str(args.b), **asdict(result)}, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
