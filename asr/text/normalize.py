"""The one text normalisation of the project.

Every transcript passes through :func:`normalize_text` exactly once on its way to a number: training targets
(the tokenizers call it inside ``encode``), references and hypotheses before WER/CER/PER scoring, and the text
a BPE model is trained on. Using one function everywhere is what makes the error rates mean something.

The rules, in order (LibriSpeech's convention: upper case letters, apostrophes, single spaces):

1. Apostrophe look-alikes become ``'`` (U+0027): ``’`` (U+2019), ``‘`` (U+2018), ``ʼ`` (U+02BC),
   ``` ` ``` (U+0060), ``´`` (U+00B4), ``′`` (U+2032).
2. Unicode NFKC (compatibility composition: ``ﬁ`` -> ``fi``, full-width ``Ａ`` -> ``A``, ``é`` composed).
3. Upper case (``str.upper``: ``ß`` -> ``SS``), then NFKC and step 1 again (upper-casing may decompose).
4. Every character that is not a letter (Unicode category L*), a digit or other number (N*), a combining mark
   (M*) or an apostrophe becomes a space: punctuation, symbols, control characters, all kinds of whitespace.
   So ``well-known`` -> ``WELL KNOWN``, ``"Hi!"`` -> ``HI``, ``$5`` -> ``5``.
5. Apostrophes are kept only inside a word (``DON'T``, ``O'BRIEN``, ``ROCK'N'ROLL``); at the start or end of a
   word they are quotation marks and are removed (``'TIS`` -> ``TIS``, ``BOYS'`` -> ``BOYS``); runs of
   apostrophes inside a word become one.
6. Whitespace collapses to single spaces; no leading or trailing space. All-punctuation text becomes ``""``.

Nothing is expanded or translated: digits stay digits (``3`` is not ``THREE``; ``3½`` becomes ``31 2`` through
NFKC's ``1⁄2``), accented and non-Latin letters stay as they are (``CAFÉ``). Such characters are not in the
character/phone inventories, so the tokenizers refuse them loudly (naming them) rather than dropping them;
corpus preparation reports those utterances.

The function is idempotent: ``normalize_text(normalize_text(s)) == normalize_text(s)`` (tested).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text"]

_APOSTROPHE_LOOKALIKES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc\u0060\u00b4\u2032"})
_KEPT_CATEGORIES = frozenset("LNM")  # first letter of the Unicode general category
_APOSTROPHE_RUN = re.compile(r"'{2,}")


def _keep(char: str) -> bool:
    return char == "'" or unicodedata.category(char)[0] in _KEPT_CATEGORIES


def _clean_word(word: str) -> str:
    return _APOSTROPHE_RUN.sub("'", word).strip("'")


def normalize_text(text: str) -> str:
    """Normalise a transcript to upper case words separated by single spaces (rules in the module docstring).

    >>> normalize_text("  Don’t   stop -- the “well-known” fox's den!  ")
    "DON'T STOP THE WELL KNOWN FOX'S DEN"
    """
    if not isinstance(text, str):
        raise ValueError(f"normalize_text expects a str, got {type(text).__name__}: {text!r}")
    s = unicodedata.normalize("NFKC", text.translate(_APOSTROPHE_LOOKALIKES))
    s = unicodedata.normalize("NFKC", s.upper()).translate(_APOSTROPHE_LOOKALIKES)
    s = "".join(c if _keep(c) else " " for c in s)
    words = (_clean_word(w) for w in s.split())
    return " ".join(w for w in words if w)
