"""A tiny word LM + lexicon for a char model, built with the project's own tools, and CTC log-probs that spell
given letters: shared by the decoder, recognizer and LM-build tests."""

from __future__ import annotations

from pathlib import Path

import torch

from asr.decoding.lexicon import spell_words, write_lexicon
from asr.lm.build import train_arpa
from asr.text.chars import CharTokenizer

SENTENCES = [
    "THE CAT SAT ON THE MAT",
    "THE DOG SAT ON THE LOG",
    "A CAT AND A DOG",
    "THE CAT RAN",
    "THE DOG RAN AWAY",
    "GO FORWARD TEN METERS",
    "GO BACK TWO METERS",
    "TURN LEFT",
    "THE MAT IS RED",
    "A RED CAT SAT",
]


def tiny_lm(folder: Path, *, order: int = 3, tokenizer=None) -> tuple[Path, Path]:
    """(ARPA file, lexicon file) over SENTENCES for ``tokenizer`` (default: characters)."""
    tokenizer = tokenizer or CharTokenizer()
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "text.txt"
    text.write_text("\n".join(SENTENCES) + "\n")
    arpa = train_arpa(text, folder / "tiny.arpa", order=order)
    words = sorted({w for s in SENTENCES for w in s.split()})
    lexicon, missing = spell_words(words, tokenizer)
    assert not missing
    write_lexicon(folder / "lexicon.txt", lexicon)
    return arpa, folder / "lexicon.txt"


def spelled_log_probs(
    letters: str, tokenizer=None, *, frames_per_token: int = 2, blanks: int = 1, peak: float = 0.9, seed: int = 0
) -> torch.Tensor:
    """Log-probs [T, V] whose frames spell ``letters`` (a space is the word boundary ``|``): each token for
    ``frames_per_token`` frames at posterior ``peak`` (the rest spread at random), then ``blanks`` blank frames."""
    tokenizer = tokenizer or CharTokenizer()
    ids = tokenizer.tokens
    g = torch.Generator().manual_seed(seed)
    rows = []
    for ch in letters:
        tok = ids.index("|" if ch == " " else ch)
        rows += [tok] * frames_per_token + [0] * blanks
    rows = [0] + rows + [0]
    probs = torch.rand(len(rows), len(ids), generator=g)
    probs = probs / probs.sum(-1, keepdim=True) * (1 - peak)
    for t, tok in enumerate(rows):
        probs[t, tok] += peak
    return probs.log()
