"""One entry point for "where the utterances are": a manifest, a LibriSpeech-layout folder, a Kaldi data dir.

Training and evaluation call :func:`load_utterances` with whatever the user named. Folders are read the same
way ``asr prepare`` reads them (durations included); what a folder read skips is logged as a warning with
counts per reason (run ``asr prepare`` for the full listing in ``summary.json``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from asr.data.kaldi import is_kaldi_dir, read_kaldi_dir
from asr.data.librispeech import find_librispeech_subsets, is_librispeech_subset, read_librispeech_subset
from asr.data.manifest import PrepareReport, Utterance, check_utterances, read_manifest

logger = logging.getLogger(__name__)

__all__ = ["describe_source", "load_utterances"]


def describe_source(path: str | os.PathLike) -> str:
    """``"manifest"``, ``"kaldi"`` or ``"librispeech"``: how :func:`load_utterances` reads ``path``."""
    p = Path(path)
    if p.is_file():
        return "manifest"
    if not p.is_dir():
        raise ValueError(f"data source {str(p)!r} does not exist")
    if is_kaldi_dir(p):
        return "kaldi"
    if is_librispeech_subset(p):
        return "librispeech"
    subsets = [s.name for s in find_librispeech_subsets(p)] if _has_subsets(p) else []
    if len(subsets) == 1:
        return "librispeech"  # a root holding one subset: that subset
    if subsets:
        raise ValueError(
            f"{str(p)!r} holds several LibriSpeech subsets {subsets}: name one of them "
            "(or prepare them all with 'asr prepare librispeech')"
        )
    raise ValueError(
        f"{str(p)!r} is not a manifest (.jsonl file), a Kaldi data dir (wav.scp + text) or a "
        "LibriSpeech-layout folder (<speaker>/<chapter>/<speaker>-<chapter>.trans.txt)"
    )


def _has_subsets(p: Path) -> bool:
    try:
        find_librispeech_subsets(p)
    except ValueError:
        return False
    return True


def load_utterances(path: str | os.PathLike, *, jobs: int = 4) -> list[Utterance]:
    """The utterances of a manifest file, a LibriSpeech subset folder or a Kaldi data dir.

    Manifests are read as they are (:func:`read_manifest`: any problem is an error). Folders are read with the
    ``asr prepare`` readers and checks (no alphabet filtering: the tokenizer decides what it can encode).
    """
    kind = describe_source(path)
    if kind == "manifest":
        utts = read_manifest(path)
        if not utts:
            raise ValueError(f"manifest {str(path)!r} holds no utterances (it is empty or has blank lines only)")
        return utts
    report = PrepareReport(name=Path(path).name, corpus=kind, source=str(path))
    if kind == "kaldi":
        utts = read_kaldi_dir(path, report, jobs=jobs)
    else:
        utts = read_librispeech_subset(find_librispeech_subsets(path)[0], report, jobs=jobs)
    utts = check_utterances(utts, report, alphabet=None)
    if report.skipped:
        counts = report.to_json(utts)["skipped"]["by_reason"]
        logger.warning("%s: %d utterances read, %d skipped %s", path, len(utts), len(report.skipped), counts)
    else:
        logger.info("%s: %d utterances read", path, len(utts))
    if not utts:
        raise ValueError(f"no usable utterances in {str(path)!r} ({len(report.skipped)} skipped)")
    return utts
