"""The tokenizer interface shared by characters, BPE and phones.

A tokenizer maps normalised text (:func:`asr.text.normalize.normalize_text`, applied inside ``encode``) to CTC
target ids and model output ids back to text. Id 0 is always the CTC blank; ``encode`` never emits it and
``decode`` ignores it (collapsing repeats is the CTC decoder's job, not the tokenizer's).

Out-of-vocabulary units (characters for chars/BPE, words for phones) are never dropped silently: ``encode``
raises :class:`OOVError` (a ``ValueError``) naming them, or with ``on_oov="skip"`` leaves them out and logs a
warning naming them. To skip a whole utterance instead, ask ``tokenizer.oov(text)`` first (empty = covered).

A tokenizer is saved inside the model checkpoint as ``to_dict()`` (plain JSON types, no side files) and
restored with :func:`asr.text.tokenizer_from_dict`; restored tokenizers behave identically (tested).
"""

from __future__ import annotations

import abc
import logging
import operator
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

logger = logging.getLogger(__name__)

__all__ = ["BLANK_ID", "BLANK_TOKEN", "OOVError", "OnOOV", "Tokenizer"]

BLANK_ID = 0
BLANK_TOKEN = "<blank>"
FORMAT_VERSION = 1  # bump when to_dict() changes incompatibly

OnOOV = Literal["raise", "skip"]


class OOVError(ValueError):
    """Text contains units the tokenizer cannot encode; ``units`` lists them (sorted, unique)."""

    def __init__(self, kind: str, units: Sequence[str], text: str) -> None:
        self.units = list(units)
        self.text = text
        shown = text if len(text) <= 200 else text[:200] + "..."
        super().__init__(
            f"{kind} tokenizer cannot encode {len(self.units)} unit(s) {self.units!r} in text {shown!r} "
            "(pass on_oov='skip' to leave them out, or filter the utterance with tokenizer.oov(text))"
        )


class Tokenizer(abc.ABC):
    """Text <-> CTC target ids. Subclasses set ``kind`` and implement the abstract methods."""

    kind: ClassVar[str]
    blank_id: ClassVar[int] = BLANK_ID

    @property
    @abc.abstractmethod
    def tokens(self) -> list[str]:
        """All tokens, indexed by id; ``tokens[0]`` is the blank. Returns a copy."""

    @property
    def vocab_size(self) -> int:
        """Number of output classes of the CTC layer, blank included."""
        return len(self.tokens)

    @abc.abstractmethod
    def oov(self, text: str) -> list[str]:
        """Units of ``normalize_text(text)`` this tokenizer cannot encode (sorted, unique; empty if none)."""

    @abc.abstractmethod
    def encode(self, text: str, *, on_oov: OnOOV = "raise") -> list[int]:
        """Normalise ``text`` and map it to ids (never the blank). See the module docstring for ``on_oov``."""

    @abc.abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Map ids to a normalised string (blanks ignored). Phones give space-separated phones."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, restored by :func:`asr.text.tokenizer_from_dict`."""

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """The token strings of ``ids``, blanks left out (for display and debugging)."""
        table = self.tokens
        return [table[i] for i in self._check_ids(ids) if i != self.blank_id]

    # -- helpers for subclasses ------------------------------------------------------------------------------

    def _check_ids(self, ids: Iterable[int]) -> list[int]:
        """Ids as Python ints; raises ValueError naming non-integers and ids outside [0, vocab_size)."""
        try:
            out = [operator.index(i) for i in ids]
        except TypeError as err:
            raise ValueError(f"{self.kind} tokenizer: ids must be integers, got {ids!r}") from err
        bad = sorted({i for i in out if not 0 <= i < self.vocab_size})
        if bad:
            raise ValueError(f"{self.kind} tokenizer: ids {bad} outside [0, {self.vocab_size})")
        return out

    def _handle_oov(self, units: list[str], text: str, on_oov: OnOOV) -> None:
        if on_oov not in ("raise", "skip"):
            raise ValueError(f"on_oov must be 'raise' or 'skip', got {on_oov!r}")
        if not units:
            return
        if on_oov == "raise":
            raise OOVError(self.kind, units, text)
        logger.warning("%s tokenizer: leaving out uncovered units %r of %r", self.kind, units, text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, vocab_size={self.vocab_size})"


def check_dict(d: Any, kind: str, keys: Sequence[str]) -> None:
    """Validate a ``to_dict()`` payload for ``kind``: a dict with the right kind, version and keys."""
    if not isinstance(d, dict):
        raise ValueError(f"tokenizer dict must be a dict, got {type(d).__name__}")
    if d.get("kind") != kind:
        raise ValueError(f"expected a {kind!r} tokenizer dict, got kind={d.get('kind')!r}")
    if d.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{kind} tokenizer dict has version {d.get('version')!r}; "
            f"this code reads version {FORMAT_VERSION}"
        )
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{kind} tokenizer dict lacks keys {missing}; has {sorted(d)}")
