"""A tiny LibriSpeech-layout corpus of real FLAC files for the training tests.

Each character of the transcript becomes a short tone whose pitch identifies the character (with a little
seeded noise), and words are separated by silence: deterministic, fast to make, decodable by every reader,
and even faintly learnable. No TTS engine is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
CHAR_SECONDS = 0.06
GAP_SECONDS = 0.08
EDGE_SECONDS = 0.1

WORDS = ("ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "ZERO", "YES", "NO")


def _tone_for(char: str, rng: np.random.Generator) -> np.ndarray:
    n = int(CHAR_SECONDS * SR)
    t = np.arange(n) / SR
    freq = 300.0 + 90.0 * (ord(char) - ord("A"))
    envelope = np.hanning(n)
    return 0.3 * envelope * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)


def synth_utterance(text: str, *, seed: int) -> np.ndarray:
    """Samples [N] float32 at 16 kHz for ``text`` (upper-case words)."""
    rng = np.random.default_rng(seed)
    edge = 0.005 * rng.standard_normal(int(EDGE_SECONDS * SR))
    gap = 0.005 * rng.standard_normal(int(GAP_SECONDS * SR))
    parts = [edge]
    for w, word in enumerate(text.split()):
        if w:
            parts.append(gap)
        parts.extend(_tone_for(c, rng) for c in word if c.isalpha())
    parts.append(edge)
    return np.concatenate(parts).astype(np.float32)


def write_subset(root: Path, *, num_utterances: int, seed: int, speakers: int = 2) -> Path:
    """``root`` as a LibriSpeech subset: <spk>/<chapter>/<spk>-<chapter>-<idx>.flac + .trans.txt."""
    rng = np.random.default_rng(seed)
    lines: dict[tuple[int, int], list[str]] = {}
    for i in range(num_utterances):
        spk, chapter = 100 + i % speakers, 7
        words = rng.choice(len(WORDS), size=int(rng.integers(1, 4)))
        text = " ".join(WORDS[k] for k in words)
        utt_id = f"{spk}-{chapter}-{i:04d}"
        folder = root / str(spk) / str(chapter)
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(
            str(folder / f"{utt_id}.flac"), synth_utterance(text, seed=seed * 1000 + i), SR, subtype="PCM_16"
        )
        lines.setdefault((spk, chapter), []).append(f"{utt_id} {text}")
    for (spk, chapter), rows in lines.items():
        (root / str(spk) / str(chapter) / f"{spk}-{chapter}.trans.txt").write_text("\n".join(rows) + "\n")
    return root


def write_corpus(root: Path, *, train: int = 24, dev: int = 6, seed: int = 0) -> dict[str, Path]:
    """train/ and dev/ subsets under ``root``; returns their paths."""
    return {
        "train": write_subset(root / "train", num_utterances=train, seed=seed + 1),
        "dev": write_subset(root / "dev", num_utterances=dev, seed=seed + 2),
    }
