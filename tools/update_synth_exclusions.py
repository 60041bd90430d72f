#!/usr/bin/env python
"""Refresh the list of real-speech reference sentences kept out of the synthetic train pool.

Reads every reference source found on this machine (the bundled real clips ``asr/assets/audio/real.jsonl``,
pocketsphinx-testdata's transcription files, ALSA's channel names, and ``data/realspeech/realspeech-{dev,test}
.jsonl`` when they exist; :func:`asr.synth.text.reference_sentences_found`) and adds their normalised sentences
to ``asr/synth/reference_sentences.txt``. Sentences are only ever added (a sentence that left a set stays
excluded; delete its line by hand). Commit the file afterwards: corpora planned with ``exclude_references``
(the ``varied`` preset) use the committed list, and refuse to plan while a reference sentence found here is
missing from it.

    python tools/update_synth_exclusions.py            # add what is missing, print what was added
    python tools/update_synth_exclusions.py --check    # exit 1 when something is missing, change nothing
    python tools/update_synth_exclusions.py --manifest other/dev.jsonl   # other reference manifests
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.synth.text import (
    REALSPEECH_REFERENCE_MANIFESTS,
    REFERENCE_FILE,
    reference_exclusions,
    reference_sentences_found,
    write_reference_file,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--manifest",
        type=Path,
        action="append",
        help="reference manifest (JSON lines with 'text'); default: "
        + ", ".join(str(p) for p in REALSPEECH_REFERENCE_MANIFESTS),
    )
    parser.add_argument("--list", type=Path, default=REFERENCE_FILE, help="the exclusion list to update")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 when sentences are missing")
    args = parser.parse_args(argv)
    manifests = args.manifest or list(REALSPEECH_REFERENCE_MANIFESTS)
    for manifest in manifests:
        if not manifest.is_file():
            print(f"note: {manifest} not found, not read")
    found = reference_sentences_found(manifests)
    current = reference_exclusions(args.list) if args.list.is_file() else frozenset()
    missing = sorted({s for sentences in found.values() for s in sentences} - current)
    for source, sentences in sorted(found.items()):
        print(f"{len(sentences):6d} sentences  {source}")
    print(f"{len(current)} in {args.list}; {len(missing)} missing: {missing[:20]}")
    if args.check:
        return 1 if missing else 0
    if missing:
        old_sources = _listed_sources(args.list)
        write_reference_file([*current, *missing], [*old_sources, *found], args.list)
        print(f"wrote {args.list}: {len(current) + len(missing)} sentences")
    return 0


def _listed_sources(path: Path) -> list[str]:
    """The sources named in an existing list's header (kept: the list only grows)."""
    if not path.is_file():
        return []
    return [line[4:].strip() for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#   ")]


if __name__ == "__main__":
    raise SystemExit(main())
