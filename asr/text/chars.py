"""Character targets: ``<blank>``, the word boundary ``|``, the apostrophe and A-Z (29 classes by default)."""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any

from asr.text.base import BLANK_TOKEN, FORMAT_VERSION, OnOOV, Tokenizer, check_dict
from asr.text.normalize import normalize_text

__all__ = ["DEFAULT_LETTERS", "WORD_BOUNDARY", "CharTokenizer"]

DEFAULT_LETTERS = "'" + string.ascii_uppercase
WORD_BOUNDARY = "|"  # the token standing for the space between two words


class CharTokenizer(Tokenizer):
    """One id per character; the space between words is the token ``|``.

    ``encode("Don't stop")`` -> ids of ``D O ' N T | S T O P``; ``decode`` turns ``|`` back into a space and
    collapses repeated or edge boundaries, so ``decode(encode(t)) == normalize_text(t)`` for covered text.
    """

    kind = "char"

    def __init__(self, *, letters: str = DEFAULT_LETTERS) -> None:
        """``letters``: the characters (besides the word boundary) that get an id, in id order."""
        bad = sorted({c for c in letters if c.isspace() or c in (WORD_BOUNDARY,)})
        dups = sorted({c for c in letters if letters.count(c) > 1})
        if not letters or bad or dups:
            raise ValueError(
                f"CharTokenizer letters must be non-empty, unique, without whitespace or {WORD_BOUNDARY!r}: "
                f"got {letters!r} (offending: {bad + dups})"
            )
        self._letters = letters
        self._tokens = [BLANK_TOKEN, WORD_BOUNDARY, *letters]
        self._ids = {c: i for i, c in enumerate(self._tokens)}
        self._ids[" "] = self._ids.pop(WORD_BOUNDARY)

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    def oov(self, text: str) -> list[str]:
        return sorted({c for c in normalize_text(text) if c not in self._ids})

    def encode(self, text: str, *, on_oov: OnOOV = "raise") -> list[int]:
        norm = normalize_text(text)
        self._handle_oov(sorted({c for c in norm if c not in self._ids}), text, on_oov)
        # Leaving characters out can leave a word empty: re-collapse the spaces.
        kept = " ".join("".join(c for c in norm if c in self._ids).split())
        return [self._ids[c] for c in kept]

    def decode(self, ids: Iterable[int]) -> str:
        pieces = [" " if t == WORD_BOUNDARY else t for t in self.decode_tokens(ids)]
        return " ".join("".join(pieces).split())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": FORMAT_VERSION, "letters": self._letters}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        check_dict(d, cls.kind, ["letters"])
        return cls(letters=d["letters"])
