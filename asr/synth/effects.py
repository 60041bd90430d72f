"""Per-utterance augmentation of raw TTS output: tempo, pitch, room reverberation, noise, level.

The sox stage (pitch, tempo, reverb, resampling to 16 kHz mono) is deterministic; the noise is drawn from a
NumPy generator seeded per utterance, so an utterance's audio depends only on its :class:`EffectParams`.
sox runs with 6 dB of headroom (``gain -6``) before any effect and writes 32-bit floats, so nothing clips
before the final level is set (shared DATA.md: without headroom ~10% of the files clipped).
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
NOISE_COLOURS = ("white", "pink", "brown")
_FRAME = 320  # 20 ms at 16 kHz, for the speech-power estimate


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges the per-utterance effects are drawn from."""

    tempo_range: tuple[float, float] = (0.9, 1.1)  # sox tempo factor (duration / factor, pitch kept)
    pitch_jitter_cents: int = 80  # +- per-utterance pitch change added to the speaker's base shift
    reverb_prob: float = 0.35  # share of utterances with room reverberation
    noise_prob: float = 0.6  # share of utterances with background noise
    snr_db_range: tuple[float, float] = (8.0, 40.0)  # signal-to-noise ratio of added noise, dB
    peak_db_range: tuple[float, float] = (-18.0, -1.0)  # final peak level, dBFS (the gain augmentation)


@dataclass(frozen=True)
class Reverb:
    """Parameters of sox's ``reverb`` effect (a Freeverb-style room)."""

    reverberance: int  # tail length, percent
    hf_damping: int  # high-frequency damping, percent
    room_scale: int  # room size, percent
    pre_delay_ms: int  # delay before the reverberation, ms
    wet_gain_db: float  # level of the reverberant part, dB


@dataclass(frozen=True)
class EffectParams:
    """Everything that turns one raw TTS file into one corpus file."""

    tempo: float  # sox tempo factor, > 1 faster (applied after the engine's own rate)
    pitch_cents: int  # sox pitch shift, cents
    reverb: Reverb | None  # room reverberation, or none
    noise: str  # "none" or one of NOISE_COLOURS
    snr_db: float  # signal-to-noise ratio of the noise, dB (ignored without noise)
    peak_db: float  # peak level of the result, dBFS
    seed: int  # seed of the noise generator

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EffectParams:
        reverb = Reverb(**d["reverb"]) if d.get("reverb") else None
        return cls(**{**d, "reverb": reverb})


def draw_effects(
    rng: random.Random, *, config: AugmentConfig, base_pitch_cents: int, extra_tempo: float
) -> EffectParams:
    """Draw one utterance's effects; ``extra_tempo`` carries a speaker rate the engine cannot apply."""
    tempo = rng.uniform(*config.tempo_range) * extra_tempo
    pitch = base_pitch_cents + rng.randint(-config.pitch_jitter_cents, config.pitch_jitter_cents)
    reverb = None
    if rng.random() < config.reverb_prob:
        reverb = Reverb(
            reverberance=rng.randint(10, 70),
            hf_damping=rng.randint(20, 80),
            room_scale=rng.randint(20, 100),
            pre_delay_ms=rng.randint(0, 30),
            wet_gain_db=round(rng.uniform(-8.0, 0.0), 1),
        )
    noise = rng.choice(NOISE_COLOURS) if rng.random() < config.noise_prob else "none"
    return EffectParams(
        tempo=round(tempo, 3),
        pitch_cents=int(pitch),
        reverb=reverb,
        noise=noise,
        snr_db=round(rng.uniform(*config.snr_db_range), 1),
        peak_db=round(rng.uniform(*config.peak_db_range), 1),
        seed=rng.getrandbits(63),
    )


def _sox_effects(params: EffectParams) -> list[str]:
    chain = ["gain", "-6"]
    if params.pitch_cents != 0:
        chain += ["pitch", str(params.pitch_cents)]
    if abs(params.tempo - 1.0) > 1e-3:
        chain += ["tempo", "-s", f"{params.tempo:.3f}"]
    if params.reverb is not None:
        r = params.reverb
        chain += [
            "reverb",
            str(r.reverberance),
            str(r.hf_damping),
            str(r.room_scale),
            "0",
            str(r.pre_delay_ms),
            f"{r.wet_gain_db:.1f}",
        ]
    return chain + ["channels", "1", "rate", "-v", str(SAMPLE_RATE)]


def _run_sox(raw_path: Path, params: EffectParams) -> np.ndarray:
    cmd = [
        "sox",
        "-D",
        "-R",
        "-V1",
        str(raw_path),
        "-t",
        "raw",
        "-e",
        "floating-point",
        "-b",
        "32",
        "-L",
        "-",
    ] + _sox_effects(params)
    proc = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"sox failed (exit {proc.returncode}) on {raw_path}: {' '.join(cmd)}\n{err}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)  # [T]


def coloured_noise(colour: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of ``n`` samples: white (flat), pink (1/f power) or brown (1/f^2 power)."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"unknown noise colour {colour!r}; expected one of {NOISE_COLOURS}")
    white = rng.standard_normal(n)
    if colour != "white" and n > 1:
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n)
        freqs[0] = freqs[1]
        exponent = 0.5 if colour == "pink" else 1.0  # amplitude slope: power slope / 2
        white = np.fft.irfft(spectrum / freqs**exponent, n=n)
    white -= white.mean()
    rms = float(np.sqrt(np.mean(white**2))) if n else 0.0
    return (white / rms if rms > 0 else white).astype(np.float32)


def speech_power(x: np.ndarray) -> float:
    """Mean power of the 20 ms frames within 30 dB of the loudest one (silence does not count)."""
    n = len(x) // _FRAME
    if n == 0:
        return float(np.mean(x.astype(np.float64) ** 2)) if len(x) else 0.0
    frames = x[: n * _FRAME].astype(np.float64).reshape(n, _FRAME)  # [N, 320]
    energy = np.mean(frames**2, axis=1)  # [N]
    active = energy[energy >= energy.max() * 1e-3]
    return float(active.mean())


def apply_effects(raw_path: Path, params: EffectParams) -> np.ndarray:
    """Turn the engine's raw WAV into the corpus audio: float32 samples at 16 kHz, mono, peak ``peak_db``.

    Raises RuntimeError when sox fails and ValueError when the result is empty or silent.
    """
    x = _run_sox(raw_path, params)  # [T]
    power = speech_power(x)
    if len(x) == 0 or power <= 0.0 or not np.isfinite(power):
        raise ValueError(f"TTS output {raw_path} is empty or silent after effects ({len(x)} samples)")
    if params.noise != "none":
        rng = np.random.default_rng(params.seed)
        noise = coloured_noise(params.noise, len(x), rng)
        x = x + noise * np.float32(np.sqrt(power / 10.0 ** (params.snr_db / 10.0)))
    peak = float(np.max(np.abs(x)))
    return (x * np.float32(10.0 ** (params.peak_db / 20.0) / peak)).astype(np.float32)
