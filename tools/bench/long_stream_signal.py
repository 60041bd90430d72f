"""The long-stream test's signal: test utterances joined with seeded pauses, and where each one lies."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from asr.data.manifest import Utterance

logger = logging.getLogger("long_stream")


@dataclass(frozen=True)
class Placement:
    """One utterance occurrence in the long signal (sample indices at the model's rate)."""

    utt_id: str
    start: int  # first sample of the utterance
    end: int  # one past its last sample
    region_start: int  # middle of the pause before it (0 for the first): tokens from here on are its own
    region_end: int  # middle of the pause after it (the signal's end for the last)
    text: str  # the corpus transcript


@dataclass(frozen=True)
class LongSignal:
    samples: torch.Tensor  # [N] float32
    sample_rate: int
    placements: tuple[Placement, ...]
    pauses_s: tuple[float, ...]  # every pause, in order (one more than placements)
    cycles: int  # passes begun through the utterance set
    skipped: dict[str, str]  # utterance id -> why its audio could not be read (left out of the stream)


def parse_pause_range(text: str) -> tuple[float, float]:
    """``"0.5-2.0"`` -> (0.5, 2.0); ``"1.0"`` -> (1.0, 1.0)."""
    parts = text.split("-")
    try:
        lo, hi = (float(parts[0]), float(parts[-1])) if len(parts) in (1, 2) else (math.nan, math.nan)
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi < lo:
        raise ValueError(f"--pause-s must be 'LO-HI' seconds with 0 <= LO <= HI (or one value), got {text!r}")
    return lo, hi


def build_signal(
    utterances: list[Utterance],
    *,
    seconds: float,
    pause_s: tuple[float, float],
    pause_noise: float,
    sample_rate: int,
    seed: int,
) -> LongSignal:
    """Utterances in seeded order (cycling) with seeded pauses until the signal holds ``seconds`` of audio.

    The last utterance is never cut: the signal ends with the first utterance (+ its pause) that reaches
    ``seconds``. Pauses are zeros, or Gaussian noise of RMS ``pause_noise`` when it is > 0.
    """
    if not utterances:
        raise ValueError("no utterances to build the stream from")
    rng = np.random.default_rng(seed)  # order and pause lengths
    noise_rng = np.random.default_rng([seed, 1])  # pause noise: the same order and pauses with or without it
    target = int(round(seconds * sample_rate))
    cache: dict[str, torch.Tensor] = {}
    skipped: dict[str, str] = {}
    pieces: list[torch.Tensor] = []
    spans: list[tuple[str, int, int, str]] = []
    pauses: list[float] = []
    total = 0
    cycles = 0

    def add_pause() -> None:
        nonlocal total
        p = float(rng.uniform(*pause_s))
        n = int(round(p * sample_rate))
        noise = noise_rng.standard_normal(n).astype(np.float32) * pause_noise if pause_noise > 0 else None
        pieces.append(torch.from_numpy(noise) if noise is not None else torch.zeros(n))
        pauses.append(n / sample_rate)
        total += n

    add_pause()
    while total < target:
        cycles += 1
        added = 0
        for i in rng.permutation(len(utterances)):
            if total >= target:
                break
            utt = utterances[int(i)]
            if utt.id in skipped:
                continue
            if utt.id not in cache:
                try:
                    audio = utt.load_audio(target_sr=sample_rate).float()
                except ValueError as exc:
                    skipped[utt.id] = str(exc)
                    logger.warning("skipping utterance %s: %s", utt.id, exc)
                    continue
                if audio.numel() == 0:
                    skipped[utt.id] = "no samples"
                    continue
                cache[utt.id] = audio
            audio = cache[utt.id]
            pieces.append(audio)
            spans.append((utt.id, total, total + audio.numel(), utt.text))
            total += audio.numel()
            add_pause()
            added += 1
        if not added:
            first = dict(list(skipped.items())[:3])
            raise ValueError(f"none of the {len(utterances)} utterances could be read: {first}")
    samples = torch.cat(pieces)
    bounds = [0] + [(spans[k][2] + spans[k + 1][1]) // 2 for k in range(len(spans) - 1)] + [samples.numel()]
    placements = tuple(
        Placement(uid, s, e, bounds[k], bounds[k + 1], text) for k, (uid, s, e, text) in enumerate(spans)
    )
    return LongSignal(samples, sample_rate, placements, tuple(pauses), cycles, skipped)
