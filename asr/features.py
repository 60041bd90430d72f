"""Log-mel filterbank features (Kaldi-style), their exact streaming form, and global CMVN.

Framing is Kaldi's ``snip_edges``: frame ``i`` covers samples ``[i * hop, i * hop + win)`` and only whole
windows make frames, so ``N`` samples give ``1 + (N - win) // hop`` frames (``N >= win``), else 0 (win = 400,
hop = 160 at 16 kHz). Every frame is a function of its own window alone (per-frame DC removal, pre-emphasis
inside the window, Povey window, power spectrum, mel projection, log), so a stream fed any chunking yields the
same frames: :class:`StreamingFbank` keeps the fewer than ``win`` samples not yet consumed and does O(chunk)
work per call.

The per-frame arithmetic runs in float64 and is rounded to float32 at the end, which makes each row
independent of how many frames are computed together (BLAS may pick other kernels for other batch sizes):
streaming output equals offline output bit for bit. The result matches ``torchaudio.compliance.kaldi.fbank``
on the same (int16-scaled) samples to float32 precision; the mel filters come from torchaudio.

Features are ``[T, n_mels]`` float32 (``[frames, mel bins]``).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torchaudio.compliance import kaldi as _kaldi

logger = logging.getLogger(__name__)

_WINDOWS = ("povey", "hann", "hamming")


@dataclass(frozen=True)
class FbankConfig:
    """Filterbank settings; the defaults are the usual 80-dim Kaldi fbank at 16 kHz (without dither)."""

    sample_rate: int = 16000  # Hz of the input samples
    n_mels: int = 80  # number of mel filters (feature dimension)
    frame_length_ms: float = 25.0  # analysis window length; sample_rate * ms / 1000 must be an integer
    frame_shift_ms: float = 10.0  # hop between frame starts; must also be a whole number of samples
    preemphasis: float = 0.97  # x[t] - c * x[t-1] inside each frame (first sample: x[0] - c * x[0]); 0 = off
    remove_dc_offset: bool = True  # subtract each frame's mean before pre-emphasis
    window: str = "povey"  # "povey" (Hann ** 0.85, Kaldi's default), "hann" or "hamming" (both symmetric)
    low_freq: float = 20.0  # lower edge of the first mel filter, Hz
    high_freq: float = 0.0  # upper edge of the last filter, Hz; <= 0 means Nyquist + high_freq (Kaldi rule)
    dither: float = (
        0.0  # Gaussian dither std in int16 units (offline only: it breaks stream == file equality)
    )
    input_scale: float = 32768.0  # multiplies [-1, 1) samples to int16 range, so values match Kaldi's
    log_floor: float = 1.1920928955078125e-07  # mel energies are floored here before the log (float32 eps)

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_mels <= 0:
            raise ValueError(f"sample_rate and n_mels must be > 0, got {self.sample_rate}, {self.n_mels}")
        for name in ("frame_length_ms", "frame_shift_ms"):
            n = self.sample_rate * getattr(self, name) / 1000.0
            if n < 1 or abs(n - round(n)) > 1e-6:
                raise ValueError(
                    f"{name}={getattr(self, name)} gives {n} samples at {self.sample_rate} Hz; need a whole "
                    "number >= 1"
                )
        if self.hop_length > self.window_length:
            raise ValueError(
                f"frame shift {self.frame_shift_ms} ms exceeds frame length {self.frame_length_ms} ms"
            )
        if self.window not in _WINDOWS:
            raise ValueError(f"window must be one of {_WINDOWS}, got {self.window!r}")
        nyquist = self.sample_rate / 2
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        if not 0 <= self.low_freq < high <= nyquist:
            raise ValueError(f"need 0 <= low_freq < high_freq <= {nyquist}, got {self.low_freq}, {high}")
        if self.dither < 0 or self.log_floor <= 0 or self.input_scale <= 0:
            raise ValueError(
                f"need dither >= 0, log_floor > 0, input_scale > 0; got {self.dither}, {self.log_floor}, "
                f"{self.input_scale}"
            )

    @property
    def window_length(self) -> int:
        """Samples per frame (400 at 16 kHz / 25 ms)."""
        return int(round(self.sample_rate * self.frame_length_ms / 1000.0))

    @property
    def hop_length(self) -> int:
        """Samples between frame starts (160 at 16 kHz / 10 ms)."""
        return int(round(self.sample_rate * self.frame_shift_ms / 1000.0))

    @property
    def n_fft(self) -> int:
        """FFT size: the window length rounded up to a power of two (512)."""
        return 1 << (self.window_length - 1).bit_length()

    def num_frames(self, num_samples: int) -> int:
        """Frames produced by ``num_samples`` samples (snip_edges framing)."""
        if num_samples < self.window_length:
            return 0
        return 1 + (num_samples - self.window_length) // self.hop_length


# --------------------------------------------------------------------------------------------- kernel


class _FbankKernel:
    """Precomputed window and mel matrix; maps windowed frames ``[F, win]`` to features ``[F, n_mels]``."""

    def __init__(self, config: FbankConfig, device: torch.device) -> None:
        self.config = config
        win = config.window_length
        if config.window == "povey":
            window = torch.hann_window(win, periodic=False, dtype=torch.float64).pow(0.85)
        elif config.window == "hann":
            window = torch.hann_window(win, periodic=False, dtype=torch.float64)
        else:
            window = torch.hamming_window(win, periodic=False, dtype=torch.float64)
        mel, _ = _kaldi.get_mel_banks(
            config.n_mels,
            config.n_fft,
            float(config.sample_rate),
            config.low_freq,
            config.high_freq,
            100.0,
            -500.0,
            1.0,  # VTLN off (warp factor 1)
        )  # [n_mels, n_fft // 2]
        # Kaldi's banks skip the Nyquist bin: add a zero column -> [n_mels, n_fft / 2 + 1]
        mel = torch.nn.functional.pad(mel.to(torch.float64), (0, 1))
        self.window = window.to(device)  # [win]
        self.mel_t = mel.t().contiguous().to(device)  # [n_fft/2+1, n_mels]

    def __call__(
        self, frames: torch.Tensor | Sequence[torch.Tensor], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``frames [F, win]`` raw samples in [-1, 1), or several such blocks (one per stream, concatenated
        here) -> log-mel ``[F, n_mels]`` float32.

        Works in place on two float64 buffers: the frames (scaled, DC removed), then the FFT input (pre-
        emphasised, windowed, zero-padded to n_fft), so a batch of streams costs a few passes over its frames.
        """
        cfg = self.config
        blocks = [frames] if isinstance(frames, torch.Tensor) else list(frames)
        total = sum(b.shape[0] for b in blocks)
        win = cfg.window_length
        x = torch.empty(total, win, dtype=torch.float64, device=self.window.device)  # [F, win]
        row = 0
        for block in blocks:
            x[row : row + block.shape[0]].copy_(block)  # float32 -> float64 is exact
            row += block.shape[0]
        x.mul_(cfg.input_scale)
        if cfg.dither > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
            x.add_(cfg.dither * noise.to(x.device))
        if cfg.remove_dc_offset:
            x.sub_(x.mean(dim=1, keepdim=True))
        padded = torch.empty(total, cfg.n_fft, dtype=torch.float64, device=x.device)  # [F, n_fft]
        padded[:, win:].zero_()
        y = padded[:, :win]
        if cfg.preemphasis != 0:  # y_t = x_t - p x_{t-1}, with x_{-1} := x_0 as Kaldi does
            torch.mul(x[:, :-1], cfg.preemphasis, out=y[:, 1:])
            torch.sub(x[:, 1:], y[:, 1:], out=y[:, 1:])
            torch.sub(x[:, :1], cfg.preemphasis * x[:, :1], out=y[:, :1])
        else:
            y.copy_(x)
        y.mul_(self.window)
        spec = torch.fft.rfft(padded, dim=1)  # [F, n_fft/2+1]
        squares = torch.view_as_real(spec).square_()  # [F, n_fft/2+1, 2] (re^2, im^2): one contiguous pass
        power = torch.add(squares[..., 0], squares[..., 1])  # re^2 + im^2
        mel = power @ self.mel_t  # [F, n_mels]
        return mel.clamp_min_(cfg.log_floor).log_().to(torch.float32)


@functools.lru_cache(maxsize=16)
def _kernel(config: FbankConfig, device: torch.device) -> _FbankKernel:
    return _FbankKernel(config, device)


def _frame(samples: torch.Tensor, config: FbankConfig) -> torch.Tensor:
    """``[N]`` -> ``[F, win]`` strided view of whole frames."""
    win, hop = config.window_length, config.hop_length
    if samples.shape[0] < win:
        return samples.new_zeros((0, win))
    return samples.unfold(0, win, hop)


def _check_samples(samples: torch.Tensor, what: str = "samples") -> None:
    if not isinstance(samples, torch.Tensor) or samples.ndim != 1 or not samples.is_floating_point():
        desc = (
            f"{samples.dtype} tensor of shape {tuple(samples.shape)}"
            if isinstance(samples, torch.Tensor)
            else type(samples).__name__
        )
        raise ValueError(f"{what} must be a 1-D float tensor [N] in [-1, 1) (see asr.audio), got {desc}")


# --------------------------------------------------------------------------------------------- offline


def compute_fbank(
    samples: torch.Tensor, config: FbankConfig | None = None, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Log-mel filterbank of mono samples ``[N]`` -> ``[T, n_mels]`` float32, ``T = config.num_frames(N)``.

    ``generator`` seeds the dither (only used when ``config.dither > 0``).
    """
    config = config or FbankConfig()
    _check_samples(samples)
    frames = _frame(samples.to(torch.float32), config)  # [T, win]; float32 input, as the streaming path sees
    if frames.shape[0] == 0:
        return torch.zeros((0, config.n_mels), dtype=torch.float32, device=samples.device)
    return _kernel(config, samples.device)(frames, generator)


# --------------------------------------------------------------------------------------------- streaming


class FbankState(NamedTuple):
    """State of one stream in :class:`StreamingFbank`."""

    pending: torch.Tensor  # [P] float32, P < window_length: samples from the next frame's start onwards
    num_samples: int  # samples received so far
    num_frames: int  # frames emitted so far (the next frame starts at sample num_frames * hop_length)


class StreamingFbank:
    """Chunk-by-chunk filterbank whose output equals :func:`compute_fbank` of the whole signal, bit for bit.

    ``step`` is pure: it returns new features and a new state and leaves the given state untouched. Each
    call costs O(len(chunk) + window_length): old audio is never reprocessed. Samples left in the state at
    the end of a stream (fewer than one window) make no frame, exactly as in the offline extractor.
    """

    def __init__(self, config: FbankConfig | None = None) -> None:
        config = config or FbankConfig()
        if config.dither != 0:
            raise ValueError(
                f"streaming features need dither=0 (got {config.dither}): dither breaks exactness"
            )
        self.config = config

    def init_state(self, *, device: torch.device | str = "cpu") -> FbankState:
        return FbankState(
            pending=torch.zeros(0, dtype=torch.float32, device=device), num_samples=0, num_frames=0
        )

    def step(self, samples: torch.Tensor, state: FbankState) -> tuple[torch.Tensor, FbankState]:
        """Feed ``samples [N]`` (any N >= 0); return the newly complete frames ``[F, n_mels]``, new state."""
        frames, states = self.step_batch([samples], [state])
        return frames[0], states[0]

    def step_batch(
        self, samples: Sequence[torch.Tensor], states: Sequence[FbankState]
    ) -> tuple[list[torch.Tensor], list[FbankState]]:
        """:meth:`step` for many streams at once: one kernel call for all their new frames.

        Returns per-stream features ``[F_b, n_mels]`` and new states, in input order.
        """
        if len(samples) != len(states):
            raise ValueError(f"got {len(samples)} sample chunks for {len(states)} states")
        cfg = self.config
        hop = cfg.hop_length
        new_states: list[FbankState] = []
        windows: list[torch.Tensor] = []
        counts: list[int] = []
        for b, (chunk, state) in enumerate(zip(samples, states)):
            _check_samples(chunk, what=f"chunk {b}")
            buffer = torch.cat([state.pending, chunk.to(state.pending.dtype)])  # [P + N], new storage
            n = cfg.num_frames(buffer.shape[0])
            windows.append(_frame(buffer, cfg))  # [n, win]
            counts.append(n)
            new_states.append(
                FbankState(
                    pending=buffer[n * hop :].clone(),  # < win samples; frees the chunk's storage
                    num_samples=state.num_samples + chunk.shape[0],
                    num_frames=state.num_frames + n,
                )
            )
        device = states[0].pending.device if states else torch.device("cpu")
        total = sum(counts)
        if total == 0:
            empty = torch.zeros((0, cfg.n_mels), dtype=torch.float32, device=device)
            return [empty] * len(counts), new_states
        feats = _kernel(cfg, device)(windows)
        return list(feats.split(counts)), new_states


# --------------------------------------------------------------------------------------------- CMVN


class CMVNAccumulator:
    """Running per-dimension count, mean and sum of squared deviations in float64 (Chan's parallel update)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.count = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.m2 = torch.zeros(dim, dtype=torch.float64)  # sum of squared deviations from the mean

    def add(self, features: torch.Tensor) -> None:
        """Accumulate ``features [T, dim]`` (or ``[..., T, dim]``)."""
        if features.ndim < 2 or features.shape[-1] != self.dim:
            raise ValueError(f"expected features [..., T, {self.dim}], got shape {tuple(features.shape)}")
        x = features.detach().reshape(-1, self.dim).to(device="cpu", dtype=torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        if not bool(torch.isfinite(x).all()):
            raise ValueError("features contain NaN/inf; refusing to accumulate CMVN statistics")
        batch_mean = x.mean(dim=0)
        batch_m2 = (x - batch_mean).square().sum(dim=0)
        self.merge_stats(n, batch_mean, batch_m2)

    def merge_stats(self, count: int, mean: torch.Tensor, m2: torch.Tensor) -> None:
        """Merge another accumulator's ``(count, mean, m2)`` (e.g. from another worker or rank)."""
        if count == 0:
            return
        total = self.count + count
        delta = mean.to(torch.float64) - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2.to(torch.float64) + delta.square() * (self.count * count / total)
        self.count = total

    def result(self, *, min_std: float = 1e-2) -> GlobalCMVN:
        if self.count == 0:
            raise ValueError("no feature frames were accumulated; cannot compute CMVN statistics")
        std = (self.m2 / self.count).sqrt().clamp_min(min_std)
        return GlobalCMVN(mean=self.mean.to(torch.float32), std=std.to(torch.float32), count=self.count)


@dataclass(frozen=True)
class GlobalCMVN:
    """Global mean/variance normalisation: ``(x - mean) / std`` per feature dimension."""

    mean: torch.Tensor  # [D] float32
    std: torch.Tensor  # [D] float32, floored (never 0)
    count: int  # frames the statistics were computed from

    def __post_init__(self) -> None:
        if self.mean.ndim != 1 or self.mean.shape != self.std.shape:
            raise ValueError(
                f"mean and std must be [D], got {tuple(self.mean.shape)}, {tuple(self.std.shape)}"
            )
        if not bool((self.std > 0).all()):
            raise ValueError("CMVN std must be > 0 in every dimension")

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def fit(cls, features: Iterable[torch.Tensor], *, min_std: float = 1e-2) -> GlobalCMVN:
        """Statistics over an iterable of ``[T, D]`` feature tensors (float64 running sums)."""
        acc: CMVNAccumulator | None = None
        for feats in features:
            if acc is None:
                acc = CMVNAccumulator(feats.shape[-1])
            acc.add(feats)
        if acc is None:
            raise ValueError("GlobalCMVN.fit got no feature tensors")
        return acc.result(min_std=min_std)

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        """Normalise ``[..., T, D]`` features (a pure per-frame map, so streaming stays exact)."""
        if features.shape[-1] != self.dim:
            raise ValueError(f"features have dim {features.shape[-1]}, CMVN statistics have dim {self.dim}")
        mean = self.mean.to(device=features.device, dtype=features.dtype)
        std = self.std.to(device=features.device, dtype=features.dtype)
        return (features - mean) / std

    def to_dict(self, prefix: str = "cmvn.") -> dict[str, torch.Tensor]:
        """Tensors for a safetensors checkpoint: ``{prefix}mean``, ``{prefix}std``, ``{prefix}count``."""
        return {
            f"{prefix}mean": self.mean.detach().cpu().contiguous(),
            f"{prefix}std": self.std.detach().cpu().contiguous(),
            f"{prefix}count": torch.tensor([self.count], dtype=torch.int64),
        }

    @classmethod
    def from_dict(cls, tensors: Mapping[str, torch.Tensor], prefix: str = "cmvn.") -> GlobalCMVN:
        missing = [k for k in ("mean", "std", "count") if f"{prefix}{k}" not in tensors]
        if missing:
            raise ValueError(f"CMVN tensors {[prefix + k for k in missing]} missing (have {sorted(tensors)})")
        return cls(
            mean=tensors[f"{prefix}mean"].to(torch.float32),
            std=tensors[f"{prefix}std"].to(torch.float32),
            count=int(tensors[f"{prefix}count"].reshape(-1)[0]),
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics to a safetensors file."""
        from safetensors.torch import save_file

        save_file(self.to_dict(), os.fspath(path), metadata={"kind": "global_cmvn"})

    @classmethod
    def load(cls, path: str | os.PathLike) -> GlobalCMVN:
        from safetensors.torch import load_file

        return cls.from_dict(load_file(os.fspath(path)))


def compute_cmvn_stats(
    sources: Iterable[str | os.PathLike | Mapping[str, object]],
    *,
    config: FbankConfig | None = None,
    max_utterances: int | None = None,
    min_std: float = 1e-2,
    progress: bool = True,
) -> GlobalCMVN:
    """Global CMVN over the fbank features of audio sources, with a tqdm progress bar.

    Each source is an audio path or Kaldi ``wav.scp`` spec (see :func:`asr.audio.load_audio_source`), or a
    manifest record: a mapping with ``"audio"`` (or ``"path"``) and optional ``"offset"``/``"duration"``
    seconds. ``max_utterances`` stops after that many sources (statistics from a subset, like Kaldi recipes).
    """
    from tqdm import tqdm

    from asr.audio import load_audio_source

    config = config or FbankConfig()
    acc = CMVNAccumulator(config.n_mels)
    total = None
    if max_utterances is not None:
        total = max_utterances
    elif hasattr(sources, "__len__"):
        total = len(sources)  # type: ignore[arg-type]
    bar = tqdm(total=total, desc="cmvn", unit="utt", disable=not progress)
    for i, source in enumerate(sources):
        if max_utterances is not None and i >= max_utterances:
            break
        spec, offset, duration = _source_fields(source)
        samples = load_audio_source(spec, offset=offset, duration=duration, target_sr=config.sample_rate)
        acc.add(compute_fbank(samples, config))
        bar.update(1)
    bar.close()
    cmvn = acc.result(min_std=min_std)
    logger.info(
        "CMVN statistics from %d frames (%.2f h)", cmvn.count, cmvn.count * config.frame_shift_ms / 3.6e6
    )
    return cmvn


def _source_fields(source: str | os.PathLike | Mapping[str, object]) -> tuple[str, float, float | None]:
    if isinstance(source, Mapping):
        spec = source.get("audio", source.get("path"))
        if spec is None:
            raise ValueError(f"manifest record has no 'audio' or 'path' field: {dict(source)}")
        offset = float(source.get("offset") or 0.0)  # type: ignore[arg-type]
        duration = source.get("duration")
        # A whole file's "duration" is informational; only cut when an offset says the record is a segment.
        cut = duration is not None and "offset" in source and source.get("offset") is not None
        return os.fspath(spec), offset, float(duration) if cut else None  # type: ignore[arg-type]
    return os.fspath(source), 0.0, None


__all__ = [
    "CMVNAccumulator",
    "FbankConfig",
    "FbankState",
    "GlobalCMVN",
    "StreamingFbank",
    "compute_cmvn_stats",
    "compute_fbank",
]
