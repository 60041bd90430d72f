"""Corpora -> one manifest format (:mod:`asr.data.manifest`), and readers for the layouts corpora come in."""

from asr.data.manifest import (
    DEFAULT_ALPHABET,
    Issue,
    PrepareReport,
    Utterance,
    check_utterances,
    read_manifest,
    update_summary,
    write_manifest,
)
from asr.data.sources import load_utterances

__all__ = [
    "DEFAULT_ALPHABET",
    "Issue",
    "PrepareReport",
    "Utterance",
    "check_utterances",
    "load_utterances",
    "read_manifest",
    "update_summary",
    "write_manifest",
]
