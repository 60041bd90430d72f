"""Pronunciations for words CMUdict lacks: espeak-ng's letter-to-sound rules, mapped onto the 39 ARPAbet phones.

A phone model can only output the words its lexicon pronounces. CMUdict covers most English words but not every
name or new word (2,943 of the 40,000 most frequent words of the bundled LM's text); for those, espeak-ng (Debian
``espeak-ng``, already installed for ``asr synth``; maintained, and its en-us rules are written for exactly this)
gives its phonemes (``espeak-ng -q -x --sep=_ -v en-us``), which :data:`ESPEAK_TO_ARPABET` maps onto CMUdict's
phones. On 3,000 random CMUdict words the result is CMUdict's pronunciation (one of its variants) for 58% of the
words and 10.5% phone error rate overall (``tests/asr/text/test_g2p.py`` checks a sample of it); CMUdict's own
entries always come first, this only spells what it lacks.

One espeak-ng process spells a whole batch, one word per input line and one output line per word; anything else
(a different number of lines, a phoneme the table does not know) is an error naming the word, never a guess.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterable

logger = logging.getLogger(__name__)

__all__ = ["ESPEAK_TO_ARPABET", "G2PError", "espeak_pronunciations", "g2p_can_spell"]

#: espeak-ng's en-us phoneme mnemonics (``-x``; stress marks removed) -> ARPAbet (CMUdict's, stress removed).
ESPEAK_TO_ARPABET: dict[str, tuple[str, ...]] = {
    k: tuple(v.split())
    for k, v in {
        # consonants
        "p": "P", "b": "B", "t": "T", "t#": "T", "t2": "T", "*": "T", "?": "T", "d": "D", "k": "K", "x": "K",
        "g": "G", "f": "F", "v": "V", "T": "TH", "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH",
        "tS": "CH", "dZ": "JH", "m": "M", "n": "N", "N": "NG", "l": "L", "r": "R", "w": "W", "j": "Y",
        # syllabic consonants
        "n-": "AH N", "m-": "AH M", "l-": "AH L", "@L": "AH L", "r-": "ER",
        # vowels
        "a": "AE", "aa": "AE", "a#": "AH", "A:": "AA", "A": "AA", "0": "AA", "A@": "AA R", "@": "AH", "@2": "AH",
        "@-": "AH", "V": "AH", "3": "ER", "3:": "ER", "E": "EH", "e": "EH", "e@": "EH R", "eI": "EY", "I": "IH",
        "I2": "IH", "I#": "IH", "i": "IY", "i:": "IY", "i@": "IH R", "i@3": "IH R", "O": "AO", "O:": "AO",
        "O2": "AO", "O@": "AO R", "o@": "AO R", "o": "OW", "oU": "OW", "OI": "OY", "U": "UH", "U@": "UH R",
        "u": "UW", "u:": "UW", "aI": "AY", "aI@": "AY ER", "aI3": "AY ER", "aU": "AW", "aU@": "AW ER",
        "i::": "IY", "l#": "L",
        # nasal vowels of French loanwords (BLANC)
        "A~": "AA", "O~": "AO", "E~": "EH", "U~": "UH",
        # modifiers and pauses, not phones
        ";": "", "!": "", "|": "",
    }.items()  # fmt: skip
}
_STRESS = re.compile(r"[',]")
_WORD = re.compile(r"[A-Z][A-Z']*")  # what G2P takes: ASCII letters and apostrophes (NAÏVE, À: not English rules)


def g2p_can_spell(word: str) -> bool:
    """Whether ``word`` is one G2P takes (a normalised word of ASCII letters and apostrophes)."""
    return _WORD.fullmatch(word) is not None


class G2PError(RuntimeError):
    """espeak-ng is missing, failed, or gave output that cannot be mapped (the message names the word)."""


def _to_arpabet(word: str, line: str) -> tuple[str, ...]:
    phones: list[str] = []
    for symbol in re.split(r"[_\s]+", _STRESS.sub("", line.strip())):
        if not symbol:
            continue
        if symbol not in ESPEAK_TO_ARPABET:
            raise G2PError(f"espeak-ng spelled {word!r} as {line.strip()!r}: phoneme {symbol!r} has no ARPAbet mapping")
        phones += ESPEAK_TO_ARPABET[symbol]
    if not phones:
        raise G2PError(f"espeak-ng gave no phonemes for {word!r} ({line.strip()!r})")
    return tuple(phones)


def espeak_pronunciations(words: Iterable[str], *, voice: str = "en-us") -> dict[str, tuple[str, ...]]:
    """Normalised (upper-case) words -> ARPAbet phones by espeak-ng's rules, in one process for the batch."""
    words = list(dict.fromkeys(w for w in words if w))
    if not words:
        return {}
    bad = [w for w in words if not g2p_can_spell(w)]
    if bad:
        raise G2PError(f"G2P takes normalised words (letters and apostrophes), got {bad[:5]}")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise G2PError("espeak-ng is not installed (Debian package espeak-ng; `make system-deps` installs it)")
    text = "".join(w.lower() + "\n" for w in words)
    done = subprocess.run([exe, "-q", "-x", "--sep=_", "-v", voice], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        raise G2PError(f"espeak-ng failed (exit {done.returncode}): {done.stderr.strip()[:200]}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if len(lines) != len(words):
        raise G2PError(f"espeak-ng returned {len(lines)} lines for {len(words)} words: cannot tell which is which")
    out = {w: _to_arpabet(w, line) for w, line in zip(words, lines)}
    logger.info("espeak-ng spelled %d words CMUdict lacks (e.g. %s)", len(out), dict(list(out.items())[:3]))
    return out
