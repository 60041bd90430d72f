"""pocketsphinx 5 (PyPI ``pocketsphinx``) with its bundled US English models: a second recognizer, independent of
Whisper (HMM/GMM acoustic model, trigram LM, CMU dictionary), for peer rows and two-system label agreement.

    from asr.peers.pocketsphinx import PocketSphinx
    ps = PocketSphinx()
    result = ps.transcribe(samples)     # float32 [N], 16 kHz mono
    result.text, result.normalized      # raw hypothesis; fillers dropped + normalize_text

Each utterance is decoded on its own: the running cepstral mean is put back to its initial value before every
utterance (pocketsphinx otherwise carries it over, which would make a result depend on the order of a set).
"""

from __future__ import annotations

import importlib.metadata
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.text.normalize import normalize_text

__all__ = [
    "INSTALL_HINT",
    "SAMPLE_RATE",
    "PocketSphinx",
    "PocketSphinxResult",
    "clean_hypothesis",
    "decode_pcm",
    "decoder_config",
    "import_pocketsphinx",
    "pocketsphinx_version",
    "to_pcm16",
]

SAMPLE_RATE = 16000  # the en-us acoustic model's rate
INSTALL_HINT = "pip install 'pocketsphinx>=5,<6' (a project dependency: pip install -e .)"
_VARIANT = re.compile(r"\(\d+\)$")  # "read(2)": the dictionary's second pronunciation of "read"


def pocketsphinx_version() -> str:
    try:
        return importlib.metadata.version("pocketsphinx")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def import_pocketsphinx():
    """The pocketsphinx module (version 5), or ImportError saying how to install it."""
    try:
        import pocketsphinx
    except ImportError as exc:
        raise ImportError(f"pocketsphinx is not installed ({exc}): {INSTALL_HINT}") from exc
    version = pocketsphinx_version()
    if not version.startswith("5."):
        raise ImportError(f"pocketsphinx 5 is needed, found {version}: {INSTALL_HINT}")
    return pocketsphinx


def decoder_config(decoder) -> dict[str, Any]:
    """The decoder settings that decide its output (model files by name, beams, weights, front end)."""
    keys = ("hmm", "lm", "dict", "samprate", "cmn", "cmninit", "beam", "wbeam", "pbeam", "lw", "wip", "bestpath")
    out: dict[str, Any] = {}
    for key in keys:
        try:
            value = decoder.config[key]
        except (KeyError, RuntimeError):
            continue
        out[key] = Path(value).name if key in ("hmm", "lm", "dict") and value else value
    return out


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) ``[N]`` -> little-endian int16 ``[N]`` (clipped, rounded)."""
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples [N], got shape {samples.shape}")
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")


def clean_hypothesis(text: str) -> str:
    """pocketsphinx words as words: drop fillers (<sil>, [NOISE], ++NOISE++) and pronunciation variants (2)."""
    words = []
    for word in text.split():
        if word[:1] in "<[+":
            continue
        words.append(_VARIANT.sub("", word))
    return " ".join(words)


def decode_pcm(decoder, pcm: np.ndarray, *, chunk: int, initial_cmn: str | None) -> tuple[str, float, float]:
    """One utterance: ``(raw hypothesis, thread CPU seconds, wall seconds)``; ``chunk`` 0 = whole utterance."""
    if initial_cmn is not None:
        decoder.set_cmn(initial_cmn)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    decoder.start_utt()
    if chunk <= 0:
        decoder.process_raw(pcm.tobytes(), False, True)
    else:
        for start in range(0, pcm.shape[0], chunk):
            decoder.process_raw(pcm[start : start + chunk].tobytes(), False, False)
    decoder.end_utt()
    hyp = decoder.hyp()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    return (hyp.hypstr if hyp is not None else ""), cpu, wall


@dataclass(frozen=True)
class PocketSphinxResult:
    """One decoded utterance."""

    text: str  # pocketsphinx's hypothesis as it gave it (fillers included)
    normalized: str  # clean_hypothesis + normalize_text
    audio_seconds: float
    cpu_seconds: float  # CPU time of the decoding thread
    wall_seconds: float


class PocketSphinx:
    """The bundled en-us decoder with its default configuration; whole utterances, cepstral mean reset each time."""

    def __init__(self) -> None:
        pocketsphinx = import_pocketsphinx()
        self.decoder = pocketsphinx.Decoder(loglevel="FATAL")
        self._initial_cmn = self.decoder.get_cmn(False)
        self.version = pocketsphinx_version()

    def transcribe(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> PocketSphinxResult:
        """Decode ``samples`` (float ``[N]``, mono, 16 kHz, in [-1, 1])."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"pocketsphinx's en-us model needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
        x = np.asarray(samples)
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"expected float samples in [-1, 1], got dtype {x.dtype}")
        raw, cpu, wall = decode_pcm(self.decoder, to_pcm16(x), chunk=0, initial_cmn=self._initial_cmn)
        return PocketSphinxResult(
            text=raw,
            normalized=normalize_text(clean_hypothesis(raw)),
            audio_seconds=x.shape[0] / SAMPLE_RATE,
            cpu_seconds=cpu,
            wall_seconds=wall,
        )
