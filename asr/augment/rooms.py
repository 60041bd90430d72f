"""Simulated rooms: a bank of room impulse responses from pyroomacoustics' image-source shoebox model.

Computing a RIR takes 0.02-3 s (more for longer reverberation), far too slow per utterance, so a run builds a
bank of a few hundred once (each RIR a pure function of (seed, index, config): random room size, reverberation
time, source and microphone positions), caches it on disk (``.npz``, no pickles) and draws from it. Each RIR is
cropped to start a few samples before its direct-path peak, and the convolution output is read from that
offset, so the reverberant speech stays aligned with the dry speech (CTC targets keep their timing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asr.augment._common import check_prob, check_range, uniform

logger = logging.getLogger(__name__)

PRE_PEAK = 16  # samples kept before the direct-path peak (the fractional-delay filter's main lobe)
_BANK_VERSION = 1


@dataclass(frozen=True)
class RoomConfig:
    """Reverberation by a RIR drawn from the run's bank (image-source shoebox rooms)."""

    prob: float = 0.0  # share of utterances reverberated
    bank_size: int = 200  # RIRs in the bank (built once per run and seed, cached on disk)
    rt60_range: tuple[float, ...] = (0.15, 0.8)  # target reverberation time, s (Sabine inversion)
    room_min: tuple[float, ...] = (3.0, 3.0, 2.4)  # smallest room, m (length, width, height)
    room_max: tuple[float, ...] = (10.0, 8.0, 4.0)  # largest room, m
    distance_range: tuple[float, ...] = (0.4, 3.5)  # source to microphone, m
    max_order: int = 80  # cap on the image-source order (longer rooms' late tail is cut there)
    max_rir_seconds: float = 1.0  # RIRs are truncated to this length
    cache_dir: str | None = None  # where the bank is cached; None: <run dir>/cache

    def __post_init__(self) -> None:
        check_prob("augment.room", self.prob)
        check_range("augment.room", "rt60_range", self.rt60_range, low=0.05, high=3.0)
        check_range("augment.room", "distance_range", self.distance_range, low=0.05, high=50.0)
        if (
            len(self.room_min) != 3
            or len(self.room_max) != 3
            or any(not 1.0 <= a <= b for a, b in zip(self.room_min, self.room_max))
        ):
            raise ValueError(
                f"augment.room: need 3 sizes with 1 <= room_min <= room_max, got {list(self.room_min)}, "
                f"{list(self.room_max)}"
            )
        if self.bank_size < 1 or self.max_order < 1 or self.max_rir_seconds <= 0:
            raise ValueError(
                f"augment.room: need bank_size, max_order >= 1 and max_rir_seconds > 0, got {self.bank_size}, "
                f"{self.max_order}, {self.max_rir_seconds}"
            )

    def bank_key(self, *, seed: int, sample_rate: int) -> str:
        """Cache key: everything the bank's contents depend on."""
        import pyroomacoustics

        fields = {k: v for k, v in asdict(self).items() if k not in ("prob", "cache_dir")}
        blob = json.dumps(
            [fields, seed, sample_rate, pyroomacoustics.__version__, _BANK_VERSION], sort_keys=True, default=list
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RirBank:
    """RIRs ``[K, L]`` float32 zero-padded, each starting ``PRE_PEAK`` samples before its direct path."""

    rirs: np.ndarray  # [K, L]
    lengths: np.ndarray  # [K] valid taps per RIR
    rt60: np.ndarray  # [K] target reverberation time of each, s
    sample_rate: int

    def __len__(self) -> int:
        return int(self.rirs.shape[0])

    def rir(self, k: int) -> np.ndarray:
        return self.rirs[k, : int(self.lengths[k])]


def _positions(rng: np.random.Generator, dims: np.ndarray, cfg: RoomConfig) -> tuple[np.ndarray, np.ndarray]:
    """A microphone and a source inside ``dims`` (0.3 m from the walls), ``distance_range`` apart."""
    margin = 0.3
    low, high = np.full(3, margin), dims - margin
    for _ in range(200):
        mic = np.array([rng.uniform(low[0], high[0]), rng.uniform(low[1], high[1]), rng.uniform(0.7, 1.8)])
        mic[2] = min(mic[2], high[2])
        distance = uniform(rng, cfg.distance_range)
        direction = rng.normal(size=3)
        direction[2] *= 0.2  # mostly horizontal: talkers and microphones at similar heights
        source = mic + distance * direction / np.linalg.norm(direction)
        if np.all(source > low) and np.all(source < high):
            return mic, source
    # A room too small for the distance drawn: the far corner instead.
    return low + 0.25 * (high - low), high - 0.25 * (high - low)


def _one_rir(seed: int, index: int, cfg: RoomConfig, sample_rate: int) -> tuple[np.ndarray, float]:
    import pyroomacoustics as pra

    rng = np.random.default_rng([seed, index, 0x524952])
    for _ in range(100):
        dims = np.array([uniform(rng, (lo, hi)) for lo, hi in zip(cfg.room_min, cfg.room_max)])
        rt60 = uniform(rng, cfg.rt60_range)
        try:
            absorption, order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # a reverberation time this room cannot have: draw another room
            continue
        break
    else:
        raise ValueError(f"augment.room: no room in {cfg.room_min}..{cfg.room_max} reaches rt60 {cfg.rt60_range}")
    mic, source = _positions(rng, dims, cfg)
    room = pra.ShoeBox(
        dims, fs=sample_rate, materials=pra.Material(absorption), max_order=int(min(order, cfg.max_order))
    )
    room.add_source(source.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=np.float64)
    peak = int(np.argmax(np.abs(h)))
    if peak < PRE_PEAK:  # (the simulator delays every path by its filter's half length, so not in practice)
        h, peak = np.concatenate([np.zeros(PRE_PEAK - peak), h]), PRE_PEAK
    h = h[peak - PRE_PEAK : peak - PRE_PEAK + int(cfg.max_rir_seconds * sample_rate)]
    h = h / np.sqrt(np.sum(h**2))  # unit energy; the output level is reset after the convolution anyway
    return h.astype(np.float32), rt60


def build_rir_bank(cfg: RoomConfig, *, seed: int, sample_rate: int, progress: bool = True) -> RirBank:
    """Compute ``cfg.bank_size`` RIRs (deterministic per seed and config)."""
    from tqdm import tqdm

    rirs, rt60s = [], []
    for k in tqdm(range(cfg.bank_size), desc="RIR bank", unit="rir", disable=not progress, leave=False):
        h, rt60 = _one_rir(seed, k, cfg, sample_rate)
        rirs.append(h)
        rt60s.append(rt60)
    lengths = np.array([len(h) for h in rirs], dtype=np.int64)
    out = np.zeros((len(rirs), int(lengths.max())), dtype=np.float32)
    for k, h in enumerate(rirs):
        out[k, : len(h)] = h
    return RirBank(rirs=out, lengths=lengths, rt60=np.array(rt60s), sample_rate=sample_rate)


def load_or_build_rir_bank(
    cfg: RoomConfig, *, cache_dir: str | Path, seed: int, sample_rate: int, progress: bool = True
) -> RirBank:
    """The bank from ``cache_dir/rir-bank-<key>.npz``, built and written there (atomically) when missing."""
    path = Path(cfg.cache_dir or cache_dir) / f"rir-bank-{cfg.bank_key(seed=seed, sample_rate=sample_rate)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                bank = RirBank(rirs=f["rirs"], lengths=f["lengths"], rt60=f["rt60"], sample_rate=int(f["sample_rate"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"RIR bank cache {path} is unreadable ({exc}); delete it to rebuild") from exc
        if len(bank) != cfg.bank_size or bank.sample_rate != sample_rate:
            raise ValueError(f"RIR bank cache {path} holds {len(bank)} RIRs at {bank.sample_rate} Hz, expected "
                             f"{cfg.bank_size} at {sample_rate} Hz; delete it to rebuild")  # fmt: skip
        logger.info("RIR bank: %d RIRs from %s", len(bank), path)
        return bank
    logger.info("RIR bank: computing %d RIRs (rt60 %s s) into %s", cfg.bank_size, list(cfg.rt60_range), path)
    bank = build_rir_bank(cfg, seed=seed, sample_rate=sample_rate, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, rirs=bank.rirs, lengths=bank.lengths, rt60=bank.rt60, sample_rate=np.int64(sample_rate))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return bank


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x [N]`` convolved (FFT) with ``rir``, read from the direct path on: ``[N]``, at ``x``'s active level."""
    from scipy.signal import fftconvolve

    from asr.augment._common import active_power

    y = fftconvolve(x, rir.astype(np.float64))[PRE_PEAK : PRE_PEAK + len(x)]
    px, py = active_power(x), active_power(y)
    return y * np.sqrt(px / py) if px > 0 and py > 0 else y
