"""Build a tokenizer by kind, and restore one from the dict saved in a checkpoint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asr.text.base import Tokenizer
from asr.text.bpe import BpeTokenizer, train_bpe
from asr.text.chars import CharTokenizer
from asr.text.phones import PhoneTokenizer

__all__ = ["TOKENIZER_KINDS", "build_tokenizer", "tokenizer_from_dict"]

_CLASSES: dict[str, type[CharTokenizer] | type[BpeTokenizer] | type[PhoneTokenizer]] = {
    CharTokenizer.kind: CharTokenizer,
    BpeTokenizer.kind: BpeTokenizer,
    PhoneTokenizer.kind: PhoneTokenizer,
}
TOKENIZER_KINDS: tuple[str, ...] = tuple(_CLASSES)


def build_tokenizer(kind: str, *, texts: Iterable[str] | None = None, **opts: Any) -> Tokenizer:
    """Make a tokenizer of ``kind`` ("char", "bpe" or "phone").

    ``opts`` go to the constructor (``CharTokenizer(letters=...)``, ``PhoneTokenizer(word_boundary=...,
    extra_lexicon=...)``) or, for "bpe", to :func:`train_bpe` (``vocab_size`` required, ``model_type``), which
    trains on ``texts`` (e.g. the training manifest's transcripts). ``texts`` is only used by "bpe".
    """
    if kind not in _CLASSES:
        raise ValueError(f"unknown tokenizer kind {kind!r}; choose one of {list(TOKENIZER_KINDS)}")
    if kind == BpeTokenizer.kind:
        if texts is None:
            raise ValueError("build_tokenizer('bpe') needs texts=... to train on")
        if "vocab_size" not in opts:
            raise ValueError("build_tokenizer('bpe') needs vocab_size=...")
        return train_bpe(texts, **opts)
    try:
        return _CLASSES[kind](**opts)
    except TypeError as err:
        raise ValueError(f"bad options {sorted(opts)} for the {kind!r} tokenizer: {err}") from err


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Restore a tokenizer from its ``to_dict()`` (e.g. read from a checkpoint or a JSON file)."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in _CLASSES:
        raise ValueError(f"tokenizer dict has unknown kind {kind!r}; known kinds: {list(TOKENIZER_KINDS)}")
    return _CLASSES[kind].from_dict(d)
