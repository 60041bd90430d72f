#!/usr/bin/env python
"""Commit the real-speech clips' readings: `asr prepare realspeech`'s label caches -> asr/assets/realspeech_labels.

Whisper tiny.en, pocketsphinx and hama read every clip of `asr prepare realspeech` (~2,100 clips, about an hour of
one CPU on a new machine). Their readings, made with the recognizers' current settings and versions, are written
gzipped and sorted to the committed seed folder; a new machine's `asr prepare realspeech` takes them from there
(asr.data.realspeech_labels.SEED_DIR) and reads only the clips whose samples or settings differ. Run after a
prepare that read clips again (a new package, a recognizer upgrade), then commit the folder:

    .venv/bin/python tools/seed_realspeech_labels.py --labels data/realspeech/labels
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from asr.data.realspeech_labels import SEED_DIR, write_seed

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", type=Path, default=Path("data/realspeech/labels"), help="the prepare's label caches")
    ap.add_argument("--out", type=Path, default=SEED_DIR, help="the seed folder (default: the committed one)")
    args = ap.parse_args(argv)
    try:
        counts = write_seed(args.labels, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, n in counts.items():
        size = (args.out / f"{name}.jsonl.gz").stat().st_size
        print(f"{args.out / (name + '.jsonl.gz')}: {n} readings, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
