"""hama's phoneme recognizer as a peer: its IPA phones mapped onto CMUdict's 39 ARPAbet phones.

PyPI ``hama`` (Apache-2.0) ships a 4.7 MB multilingual IPA phone CTC model run by its own engine (no download, CPU
only). It outputs phones, not words, so it is a peer of the phone models' phone error rate (``asr eval`` of a phone
model with ``--no-lm``), and the teacher that issue 13's distillation lever names.

:data:`IPA_TO_ARPABET` maps the IPA phones English uses (and the nearest English phone for the foreign ones hama
sometimes hears in English audio); :data:`NOT_PHONES` are its diacritics, tones, length marks, punctuation and
word boundaries, which carry no phone of their own. Every other token of hama's vocabulary (Korean and Chinese
symbols) is *unmapped*: dropped from the hypothesis and counted, never silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

__all__ = ["IPA_TO_ARPABET", "NOT_PHONES", "HamaError", "load_hama", "to_arpabet"]

IPA_TO_ARPABET: dict[str, tuple[str, ...]] = {
    k: tuple(v.split())
    for k, v in {
        # consonants
        "p": "P", "pʰ": "P", "b": "B", "t": "T", "tʰ": "T", "ʈ": "T", "ɾ": "T", "ʔ": "T", "d": "D", "ɖ": "D",
        "k": "K", "kʰ": "K", "c": "K", "x": "K", "χ": "K", "g": "G", "ɡ": "G", "ɟ": "G", "ɣ": "G", "f": "F",
        "ɸ": "F", "v": "V", "β": "V", "ʋ": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʂ": "SH",
        "ɕ": "SH", "ʒ": "ZH", "ʐ": "ZH", "ʑ": "ZH", "h": "HH", "ħ": "HH", "ɦ": "HH", "ç": "HH", "t͡ʃ": "CH",
        "t͡ɕ": "CH", "d͡ʒ": "JH", "m": "M", "ɱ": "M", "n": "N", "ɲ": "N", "ñ": "N", "ɴ": "NG", "ŋ": "NG",
        "l": "L", "ɫ": "L", "ɮ": "L", "ʎ": "L", "r": "R", "ɹ": "R", "ɻ": "R", "ɽ": "R", "ʀ": "R", "ʁ": "R",
        "w": "W", "ɰ": "W", "j": "Y", "ʝ": "Y", "ɥ": "Y",
        # vowels and diphthongs
        "i": "IY", "ĩ": "IY", "ì": "IY", "y": "IY", "ɪ": "IH", "ɨ": "IH", "ʏ": "IH", "e": "EY", "eɪ": "EY",
        "ẽ": "EY", "ɛ": "EH", "ø": "EH", "œ": "EH", "eə": "EH R", "æ": "AE", "a": "AA", "à": "AA", "ã": "AA",
        "ä": "AA", "å": "AO", "ɑ": "AA", "ɒ": "AA", "ɐ": "AH", "ɔ": "AO", "o": "OW", "õ": "OW", "oʊ": "OW",
        "ɵ": "OW", "ɔɪ": "OY", "ʊ": "UH", "u": "UW", "ũ": "UW", "ʉ": "UW", "ɯ": "UW", "ʌ": "AH", "ə": "AH",
        "ᵊ": "AH", "ɘ": "AH", "ɤ": "AH", "ɜ": "ER", "ɝ": "ER", "ɚ": "ER", "aɪ": "AY", "aʊ": "AW", "ɪə": "IH R",
        "ǐ": "IY",
    }.items()  # fmt: skip
}

NOT_PHONES = frozenset(
    "<pad> <sos> <eos> <unk> <wb> <blank> % , ~ ‿ ² ³ ¹ ⁰ ⁴ ⁵ ⁻ ⁽ ⁾ ʰ ʱ ʲ ʷ ˀ ː ˑ ˕ ˞ ˤ ˥ ˦ ˧ ˨ ˩ ꜔ ̃ ̆ ̈ ̊ ̌ ̍ ̚ ̝ ̞ "
    "̟ ̠ ̥ ̩ ̪ ̬ ̯ ̰ ̺ ̻ ͈ ͍ ͜ ͡ ᵝ".split() + [" ", ""]
)


class HamaError(RuntimeError):
    """hama is not installed or failed."""


def load_hama():
    """hama's phoneme recognizer (``hama.ASRModel``), or a HamaError saying how to install it."""
    try:
        from hama import ASRModel
    except ImportError as exc:
        raise HamaError("hama is not installed: pip install 'hama==1.7.0' (a project dependency)") from exc
    return ASRModel()


def to_arpabet(phones: Sequence[str], unmapped: Counter | None = None) -> list[str]:
    """hama's IPA tokens -> ARPAbet phones; tokens that are not phones are skipped, unknown ones counted."""
    out: list[str] = []
    for p in phones:
        if p in IPA_TO_ARPABET:
            out += IPA_TO_ARPABET[p]
        elif p not in NOT_PHONES and unmapped is not None:
            unmapped[p] += 1
    return out
