"""What every text-to-speech engine wrapper shares (asr.synth.engines holds the engines and their registry).

A *speaker* is one :class:`SpeakerVoice`: an engine, one of its voices and fixed rate / pitch settings; a
:class:`Request` is one utterance for it to speak; :class:`Engine` is the base class each wrapper fills in.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Engine", "Request", "SpeakerVoice"]

_TIMEOUT_S = 300


@dataclass(frozen=True)
class SpeakerVoice:
    """The engine-side identity of one synthetic speaker."""

    engine: str  # engine name, a key of ENGINES
    voice: str  # the engine's voice name ("en-us+m3", "slt", "kal_diphone", "joe", ...)
    rate: float  # speaking-rate factor, 1 = engine default, > 1 faster
    pitch_cents: int  # base pitch shift applied by the effects stage, cents
    engine_pitch: int = -1  # engine-native pitch (espeak-ng -p, 0..99); -1 = engine default
    noise_scale: float = -1.0  # piper's generator noise; -1 = voice default
    group: str = ""  # settings that must not be shared between splits (defaults to the whole key)

    @property
    def key(self) -> str:
        """A readable unique name of these settings."""
        parts = [self.engine, self.voice, f"rate{self.rate:.2f}", f"pitch{self.pitch_cents:+d}c"]
        if self.engine_pitch >= 0:
            parts.append(f"p{self.engine_pitch}")
        if self.noise_scale >= 0:
            parts.append(f"noise{self.noise_scale:.2f}")
        return ":".join(parts)

    @property
    def split_group(self) -> str:
        return self.group or self.key


@dataclass(frozen=True)
class Request:
    """One utterance for an engine to speak."""

    text: str  # normalised transcript (A-Z, apostrophe, space)
    wav_path: Path  # where the engine writes its WAV
    speaker: SpeakerVoice  # voice and settings


@dataclass
class Engine:
    """Base class: subclasses set the fields' defaults and implement available, version and synthesize
    (and speakers / native_rate where the defaults do not fit)."""

    name: str = ""
    licence: str = ""  # licence of the engine and of its voices, for the corpus summary
    deterministic: bool = True  # same request -> same samples
    rate_grid: tuple[float, ...] = (0.85, 1.0, 1.15)  # speaker rates for engines with few voices
    pitch_grid: tuple[int, ...] = (-300, -150, 0, 150, 300)  # speaker base pitch shifts, cents
    voice_names: tuple[str, ...] = field(default=())  # voices found on this machine
    # False for engines whose voices forbid commercial use (MBROLA): used only when named in ``engines``.
    default_enabled: bool = True

    def available(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def native_rate(self, voice: str) -> bool:
        """Whether the engine applies ``SpeakerVoice.rate`` itself (else the effects stage does, by tempo)."""
        return True

    def speakers(self, rng: random.Random) -> list[SpeakerVoice]:
        """Every candidate speaker of this engine; the planner picks from these."""
        return [
            SpeakerVoice(engine=self.name, voice=v, rate=r, pitch_cents=p)
            for v in self.voice_names
            for r in self.rate_grid
            for p in self.pitch_grid
        ]

    def synthesize(self, requests: Sequence[Request]) -> None:
        """Write one WAV per request (any sample rate, mono)."""
        raise NotImplementedError


def _run(cmd: list[str], *, what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def _probe(cmd: list[str]) -> str:
    """Output of a version query, whatever its exit status (``flite --version`` exits 1)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout + proc.stderr


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else "unknown"
