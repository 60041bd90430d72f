"""The channel: microphone EQ, level, telephone band and lossy codecs (mu-law, GSM, Opus, codec2, MP3).

Every function maps ``x [N]`` (float64, 16 kHz) to ``[N]`` aligned with ``x``: filters are zero-phase or
minimum-phase biquads of a few samples' delay, and codec output is re-aligned to the input by a bounded
cross-correlation (MP3 at low bitrates comes back ~1100 samples late; codec2 is a vocoder, aligned on the
envelope). The codecs run in process: libsndfile (inside the soundfile wheel) for GSM 6.10, Opus and MP3,
torchaudio's mu-law, and the pycodec2 wheel (libcodec2 inside) for codec2.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np

from asr.augment._common import align_to, check_prob, check_range, fit_length, uniform

CODECS = ("mulaw", "gsm", "opus", "codec2", "mp3")
CODEC2_MODES = (3200, 2400, 1600, 1400, 1300, 1200, 700)
_NARROW = 8000  # Hz: telephone codecs (mu-law, GSM, codec2) run at this rate


@dataclass(frozen=True)
class EqConfig:
    """Microphone colouring: 1-3 random RBJ biquads (low shelf, high shelf, peaking)."""

    prob: float = 0.0  # share of utterances equalised
    filters_range: tuple[int, ...] = (1, 3)  # biquads per utterance (inclusive)
    gain_db_range: tuple[float, ...] = (-12.0, 8.0)  # each filter's gain, dB
    low_shelf_hz: tuple[float, ...] = (80.0, 400.0)  # corner of a low shelf
    high_shelf_hz: tuple[float, ...] = (2000.0, 6000.0)  # corner of a high shelf
    peak_hz: tuple[float, ...] = (200.0, 6000.0)  # centre of a peaking filter
    peak_q: tuple[float, ...] = (0.5, 3.0)  # its quality factor

    def __post_init__(self) -> None:
        check_prob("augment.eq", self.prob)
        check_range("augment.eq", "filters_range", self.filters_range, low=1, high=8)
        check_range("augment.eq", "gain_db_range", self.gain_db_range, low=-40.0, high=40.0)
        for name in ("low_shelf_hz", "high_shelf_hz", "peak_hz"):
            check_range("augment.eq", name, getattr(self, name), low=10.0, high=7900.0)
        check_range("augment.eq", "peak_q", self.peak_q, low=0.1, high=20.0)


@dataclass(frozen=True)
class GainConfig:
    """Recording level: the peak set to a random level (quiet microphones, loud ones)."""

    prob: float = 0.0  # share of utterances re-levelled
    peak_db_range: tuple[float, ...] = (-30.0, -1.0)  # peak level after the gain, dBFS

    def __post_init__(self) -> None:
        check_prob("augment.gain", self.prob)
        check_range("augment.gain", "peak_db_range", self.peak_db_range, low=-80.0, high=0.0)


@dataclass(frozen=True)
class TelephoneConfig:
    """Telephone band: a Butterworth band-pass (zero phase), optionally through 8 kHz and back."""

    prob: float = 0.0  # share of utterances band-limited
    low_hz_range: tuple[float, ...] = (200.0, 400.0)  # lower edge, Hz
    high_hz_range: tuple[float, ...] = (3000.0, 3600.0)  # upper edge, Hz
    resample_prob: float = 0.5  # share of those also resampled to 8 kHz and back

    def __post_init__(self) -> None:
        check_prob("augment.telephone", self.prob)
        check_prob("augment.telephone.resample", self.resample_prob)
        check_range("augment.telephone", "low_hz_range", self.low_hz_range, low=20.0, high=1000.0)
        check_range("augment.telephone", "high_hz_range", self.high_hz_range, low=1500.0, high=3900.0)


@dataclass(frozen=True)
class CodecConfig:
    """A lossy codec round trip, one codec per utterance drawn uniformly from ``codecs``."""

    prob: float = 0.0  # share of utterances through a codec
    codecs: tuple[str, ...] = CODECS  # any of mulaw, gsm, opus, codec2, mp3
    # libsndfile's compression level; measured at 16 kHz: Opus 0.95 -> 21 kbit/s, 0.98 -> 13, 0.99 -> 9;
    # MP3 (constant bitrate) 0.85 -> 33 kbit/s, 0.9 -> 25, 0.95 -> 16, 0.99 -> 8
    opus_levels: tuple[float, ...] = (0.95, 0.98, 0.99)
    mp3_levels: tuple[float, ...] = (0.85, 0.9, 0.95, 0.99)
    codec2_modes: tuple[int, ...] = (3200, 2400, 1600, 1200, 700)  # bit/s

    def __post_init__(self) -> None:
        check_prob("augment.codec", self.prob)
        bad = [c for c in self.codecs if c not in CODECS]
        if bad or not self.codecs:
            raise ValueError(f"augment.codec.codecs must be a non-empty subset of {list(CODECS)}, got {bad or []}")
        levels = (*self.opus_levels, *self.mp3_levels)
        if not self.opus_levels or not self.mp3_levels or not all(0.0 <= v < 1.0 for v in levels):
            raise ValueError(f"augment.codec: compression levels must be in [0, 1), got {list(levels)}")
        if not self.codec2_modes or any(m not in CODEC2_MODES for m in self.codec2_modes):
            raise ValueError(f"augment.codec.codec2_modes must be among {list(CODEC2_MODES)}, got "
                             f"{list(self.codec2_modes)}")  # fmt: skip


# --- EQ and level ------------------------------------------------------------------------------------------


def _biquad(kind: str, freq: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """One RBJ-cookbook biquad as an SOS row ``[b0, b1, b2, 1, a1, a2]``."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / sr
    cos, sin = math.cos(w0), math.sin(w0)
    if kind == "peak":
        alpha = sin / (2.0 * q)
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:  # shelves with slope 1
        alpha = sin / 2.0 * math.sqrt(2.0)
        s = 2.0 * math.sqrt(a) * alpha
        g = 1.0 if kind == "low" else -1.0  # the high shelf mirrors the low one
        b = [a * ((a + 1) - g * (a - 1) * cos + s), 2 * g * a * ((a - 1) - g * (a + 1) * cos),
             a * ((a + 1) - g * (a - 1) * cos - s)]  # fmt: skip
        den = [(a + 1) + g * (a - 1) * cos + s, -2 * g * ((a - 1) + g * (a + 1) * cos), (a + 1) + g * (a - 1) * cos - s]
    return np.array([*(v / den[0] for v in b), 1.0, den[1] / den[0], den[2] / den[0]])


def eq_filters(cfg: EqConfig, rng: np.random.Generator, sr: int) -> np.ndarray:
    """The SOS matrix ``[F, 6]`` of one random microphone response."""
    rows = []
    for _ in range(int(rng.integers(cfg.filters_range[0], cfg.filters_range[1] + 1))):
        kind = ("low", "high", "peak")[int(rng.integers(0, 3))]
        bounds = {"low": cfg.low_shelf_hz, "high": cfg.high_shelf_hz, "peak": cfg.peak_hz}[kind]
        freq = math.exp(uniform(rng, (math.log(bounds[0]), math.log(bounds[1]))))  # log-uniform
        rows.append(_biquad(kind, min(freq, 0.45 * sr), uniform(rng, cfg.gain_db_range), uniform(rng, cfg.peak_q), sr))
    return np.stack(rows)


def apply_eq(x: np.ndarray, cfg: EqConfig, rng: np.random.Generator, sr: int) -> np.ndarray:
    from scipy.signal import sosfilt

    return sosfilt(eq_filters(cfg, rng, sr), x)


def apply_gain(x: np.ndarray, cfg: GainConfig, rng: np.random.Generator) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= 0.0:
        return x
    return x * (10.0 ** (uniform(rng, cfg.peak_db_range) / 20.0) / peak)


# --- telephone band ----------------------------------------------------------------------------------------


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, src, dst, quality="HQ")


def through_8k(x: np.ndarray, sr: int) -> np.ndarray:
    """``x`` resampled to 8 kHz and back (everything above ~3.9 kHz gone), at its length."""
    return fit_length(resample(resample(x, sr, _NARROW), _NARROW, sr), len(x))


def telephone_band(x: np.ndarray, cfg: TelephoneConfig, rng: np.random.Generator, sr: int) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    low, high = uniform(rng, cfg.low_hz_range), uniform(rng, cfg.high_hz_range)
    y = sosfiltfilt(butter(4, [low, min(high, 0.45 * sr)], btype="bandpass", fs=sr, output="sos"), x)
    if rng.random() < cfg.resample_prob:
        y = through_8k(y, sr)
    return y


# --- codecs ------------------------------------------------------------------------------------------------


def _sndfile_round_trip(x: np.ndarray, sr: int, *, fmt: str, subtype: str, **options) -> np.ndarray:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0).astype(np.float32), sr, format=fmt, subtype=subtype, **options)
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float64")
    return y


@functools.cache
def _codec2_rand_state():
    """libcodec2's random-phase generator state (``static unsigned long next`` behind ``codec2_rand``, an LCG
    with no seeding function), as a ctypes ``c_uint64`` at its address, or None when it cannot be found.

    The decoder draws unvoiced harmonics' phases from it, so its output depends on every earlier decode in the
    process; resetting it to its initial value 1 before each round trip makes the output a function of the input
    alone (what a fresh ``c2dec`` process gives). It is found from the first instruction of the exported
    ``codec2_rand`` (x86-64 ``imul $a, next(%rip), %rax``), checked against the LCG's known first output, and
    kept only if a pycodec2 decode advances it (another libcodec2, e.g. FFmpeg's, may be loaded beside
    pycodec2's own).
    """
    import ctypes

    import pycodec2

    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "/libcodec2" in line.split()[-1]}
    for path in sorted(paths):
        lib = ctypes.CDLL(path)  # the already-loaded library (same handle, same statics)
        addr = ctypes.cast(lib.codec2_rand, ctypes.c_void_p).value
        code = ctypes.string_at(addr, 11)
        if code[:3] != b"\x48\x69\x05":
            continue
        state = ctypes.c_uint64.from_address(addr + 11 + int.from_bytes(code[3:7], "little", signed=True))
        saved = state.value
        state.value = 1
        ok = lib.codec2_rand() == 16838 and state.value == 1103527590  # the LCG's first step from 1
        if ok:
            state.value = 1
            codec = pycodec2.Codec2(3200)
            noise = np.random.default_rng(0).integers(-3000, 3000, 4 * codec.samples_per_frame()).astype(np.int16)
            for i in range(4):
                spf = codec.samples_per_frame()
                codec.decode(codec.encode(noise[i * spf : (i + 1) * spf]))
            ok = state.value != 1  # pycodec2's decoder draws from this one
        state.value = saved
        if ok:
            return state
    return None


def _codec2(x8: np.ndarray, mode: int) -> np.ndarray:
    import pycodec2

    state = _codec2_rand_state()
    if state is None:
        raise ValueError("codec2: cannot reset libcodec2's random-phase state on this build (not deterministic)")
    state.value = 1
    codec = pycodec2.Codec2(mode)
    spf = codec.samples_per_frame()
    frames = -(-len(x8) // spf)
    pcm = np.zeros(frames * spf, dtype=np.int16)
    pcm[: len(x8)] = np.round(np.clip(x8, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)
    out = [codec.decode(codec.encode(pcm[i * spf : (i + 1) * spf])) for i in range(frames)]
    return np.concatenate(out).astype(np.float64) / 32768.0


def codec_round_trip(x: np.ndarray, codec: str, sr: int, *, level: float = 0.95, mode: int = 1600) -> np.ndarray:
    """``x`` encoded and decoded by ``codec`` (``level``: Opus/MP3 compression level, ``mode``: codec2 bit/s),
    resampled back to ``sr``, aligned with ``x`` and at its length."""
    import torch
    import torchaudio.functional as AF

    if codec in ("mulaw", "gsm", "codec2"):
        x8 = resample(x, sr, _NARROW)
        if codec == "mulaw":
            q = AF.mu_law_encoding(torch.from_numpy(np.clip(x8, -1.0, 1.0)), 256)
            y8 = AF.mu_law_decoding(q, 256).numpy().astype(np.float64)
            return fit_length(resample(y8, _NARROW, sr), len(x))  # sample-exact: no re-alignment needed
        if codec == "gsm":
            y8 = _sndfile_round_trip(x8, _NARROW, fmt="WAV", subtype="GSM610")
            return align_to(x, resample(y8, _NARROW, sr), max_lag=sr // 10)
        y8 = _codec2(x8, mode)
        return align_to(x, resample(y8, _NARROW, sr), max_lag=sr // 10, envelope=sr // 100)
    if codec == "opus":
        y = _sndfile_round_trip(x, sr, fmt="OGG", subtype="OPUS", compression_level=level)
    elif codec == "mp3":
        y = _sndfile_round_trip(x, sr, fmt="MP3", subtype="MPEG_LAYER_III", compression_level=level,
                                bitrate_mode="CONSTANT")  # fmt: skip
    else:
        raise ValueError(f"unknown codec {codec!r}; known: {list(CODECS)}")
    return align_to(x, y, max_lag=sr // 10)


def apply_codec(x: np.ndarray, cfg: CodecConfig, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, str]:
    """``(x through one random codec of cfg.codecs, its name)``."""
    codec = cfg.codecs[int(rng.integers(0, len(cfg.codecs)))]
    levels = cfg.opus_levels if codec == "opus" else cfg.mp3_levels
    level = float(levels[int(rng.integers(0, len(levels)))])
    mode = int(cfg.codec2_modes[int(rng.integers(0, len(cfg.codec2_modes)))])
    return codec_round_trip(x, codec, sr, level=level, mode=mode), codec


def check_codecs_available(codecs: tuple[str, ...]) -> None:
    """Raise a clear error when a configured codec's library is missing (before training starts)."""
    import soundfile as sf

    need = {"gsm": ("WAV", "GSM610"), "opus": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III")}
    for codec in codecs:
        if codec in need:
            fmt, subtype = need[codec]
            if subtype not in sf.available_subtypes(fmt):
                raise ValueError(
                    f"augment.codec: {codec} needs libsndfile with {fmt}/{subtype} (soundfile's wheel ships "
                    f"libsndfile >= 1.1); this one has {sorted(sf.available_subtypes(fmt))}"
                )
        if codec == "codec2":
            try:
                import pycodec2  # noqa: F401
            except ImportError as exc:
                raise ValueError("augment.codec: codec2 needs the pycodec2 package (pip install pycodec2)") from exc
            if _codec2_rand_state() is None:
                raise ValueError(
                    "augment.codec: libcodec2's random-phase state cannot be reset on this build, so codec2 would "
                    "not be deterministic; leave codec2 out of augment.codec.codecs"
                )
