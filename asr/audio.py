"""Audio input: read any file soundfile reads (or a Kaldi pipe command), mix to mono, resample.

Every loader returns a float32 tensor of samples ``[N]`` in [-1, 1) at ``target_sr`` (16 kHz by default).
Formats: whatever libsndfile reads (WAV, FLAC, OGG/Vorbis/Opus, MP3, NIST SPHERE with PCM/u-law/a-law,
AIFF, ...). NIST SPHERE files compressed with shorten (WSJ ``.wv1``/``.wv2``) are decoded through the
``sph2pipe`` program when it is on PATH (Debian does not package it: Kaldi builds it in
``tools/sph2pipe_v2.5``); without it they raise an AudioError saying so. Other formats fall back to
audioread, as librosa does (it needs FFmpeg for e.g. m4a).

Sources in Kaldi ``wav.scp`` form are handled by :func:`load_audio_source`: a plain path, or a shell command
ending in ``|`` (``sph2pipe -f wav X.wv1 |``, ``flac -c -d -s X.flac |``) whose standard output is a WAV file.
Such a command comes from a data file that may have been downloaded, so it is run only with an explicit opt-in:
``--allow-pipes`` (asr prepare kaldi, asr eval), ``data.allow_pipes=true`` (asr train), or the environment variable
``ASR_ALLOW_PIPES=1`` that they set (:func:`allowing_pipes`; worker processes inherit it).

Any unreadable, corrupt, empty or zero-length input, and any NaN/inf sample, raises :class:`AudioError`
(a ``ValueError``) that names the file or command.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 16000

# A Kaldi segment may end a little past the end of its recording (rounding in the segments file); like
# Kaldi's extract-segments we truncate such overshoots up to this many seconds and reject longer ones.
MAX_SEGMENT_OVERSHOOT_S = 0.5

#: Set to "1" to run Kaldi pipe commands ("cmd |") found in data files (see allowing_pipes).
ALLOW_PIPES_ENV = "ASR_ALLOW_PIPES"

# More channels than this in a [N, C] array almost surely means the caller passed [C, N].
_MAX_CHANNELS = 32

# Extensions libsndfile reads natively; only other extensions fall back to audioread.
_SOUNDFILE_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".sph",
        ".nist",
        ".wv1",
        ".wv2",
        ".aif",
        ".aiff",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".rf64",
        ".raw",
    }
)


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, corrupt, empty, non-finite or of the wrong form."""


# --------------------------------------------------------------------------------------------- public API


def pipes_allowed() -> bool:
    """Whether Kaldi pipe commands from data files may run (``ASR_ALLOW_PIPES=1``)."""
    return os.environ.get(ALLOW_PIPES_ENV, "") == "1"


@contextlib.contextmanager
def allowing_pipes(enabled: bool = True):
    """Within the block, pipe commands may run when ``enabled`` (the environment variable is set, so processes
    started inside inherit it); the previous setting comes back after. ``enabled=False`` changes nothing."""
    previous = os.environ.get(ALLOW_PIPES_ENV)
    if enabled:
        os.environ[ALLOW_PIPES_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ALLOW_PIPES_ENV, None)
        else:
            os.environ[ALLOW_PIPES_ENV] = previous



def load_audio(
    path: str | os.PathLike,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    target_sr: int = DEFAULT_SAMPLE_RATE,
) -> torch.Tensor:
    """Read ``duration`` seconds (to the end if None) from ``offset`` seconds of an audio file.

    Returns float32 samples ``[N]``, mono (channels averaged), resampled to ``target_sr``.
    """
    samples, sr = read_audio(path, offset=offset, duration=duration)
    return resample(samples, orig_sr=sr, target_sr=target_sr)


def load_audio_source(
    spec: str | os.PathLike,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    target_sr: int = DEFAULT_SAMPLE_RATE,
) -> torch.Tensor:
    """Like :func:`load_audio` for a Kaldi ``wav.scp`` value: a path, or a shell command ending in ``|``."""
    samples, sr = read_audio_source(spec, offset=offset, duration=duration)
    return resample(samples, orig_sr=sr, target_sr=target_sr)


def read_audio_source(
    spec: str | os.PathLike, *, offset: float = 0.0, duration: float | None = None
) -> tuple[torch.Tensor, int]:
    """Like :func:`read_audio` (the source's own rate) for a Kaldi ``wav.scp`` value: a path or a command."""
    command = _pipe_command(spec)
    if command is None:
        return read_audio(spec, offset=offset, duration=duration)
    data, sr = _decode_bytes(_run_pipe(command), name=f"output of command {command!r}")
    data = _segment(data, sr, offset=offset, duration=duration, name=f"command {command!r}")
    return _finish(data, name=f"output of command {command!r}"), sr


def read_audio(
    path: str | os.PathLike, *, offset: float = 0.0, duration: float | None = None
) -> tuple[torch.Tensor, int]:
    """Read a file at its own sample rate: ``(samples [N] float32 mono, sample_rate)``."""
    name = os.fspath(path)
    _check_segment_args(offset, duration, name=name)
    p = Path(name)
    if not p.exists():
        raise AudioError(f"audio file {name!r} does not exist")
    if not p.is_file():
        raise AudioError(f"audio path {name!r} is not a regular file")
    if p.stat().st_size == 0:
        raise AudioError(f"audio file {name!r} is empty (0 bytes)")

    header = _read_sphere_header(p)
    if header is not None and "shorten" in header.get("sample_coding", ""):
        data, sr = _decode_bytes(_sph2pipe(p), name=f"{name!r} (decoded by sph2pipe)")
        data = _segment(data, sr, offset=offset, duration=duration, name=name)
    else:
        data, sr = _read_file(p, offset=offset, duration=duration, sphere_header=header)
    return _finish(data, name=repr(name)), sr


def read_audio_blocks(
    path: str | os.PathLike, *, block_seconds: float = 60.0, target_sr: int = DEFAULT_SAMPLE_RATE
) -> Iterator[torch.Tensor]:
    """A (long) file in consecutive blocks of about ``block_seconds``: float32 mono ``[n]`` at ``target_sr``, in
    memory bounded by the block whatever the file's length. Resampled, where the rates differ, by soxr's streaming
    resampler (the one :meth:`asr.streaming.Stream.accept_waveform` uses). Checked as :func:`read_audio` checks a
    whole file (unreadable, empty, truncated, NaN/inf: :class:`AudioError` naming the file and the time); for
    files libsndfile reads."""
    name = os.fspath(path)
    p = Path(name)
    if not p.is_file():
        raise AudioError(f"audio file {name!r} does not exist or is not a regular file")
    try:
        f = sf.SoundFile(name)
    except Exception as e:  # libsndfile raises several types
        raise AudioError(f"cannot read audio file {name!r}: {e}") from e
    with f:
        sr, total = int(f.samplerate), int(f.frames)
        if sr <= 0 or total <= 0:
            raise AudioError(f"audio file {name!r} contains no samples")
        problem = _truncation(f.extra_info, total, None)
        if problem:
            raise AudioError(f"audio file {name!r} is truncated or corrupt: {problem}")
        _check_rate(target_sr, "target_sr")
        resampler = None
        if sr != target_sr:
            import soxr

            resampler = soxr.ResampleStream(sr, int(target_sr), 1, dtype="float32", quality="HQ")
        block, done = max(1, int(block_seconds * sr)), 0
        while done < total:
            try:
                data = f.read(frames=block, dtype="float32", always_2d=True)
            except Exception as e:
                raise AudioError(f"cannot decode audio file {name!r} at {done / sr:.1f} s: {e}") from e
            if data.shape[0] == 0:
                break
            x = _finish(data, name=f"{name!r} (at {done / sr:.1f} s)")
            done += data.shape[0]
            if resampler is not None:
                x = torch.from_numpy(resampler.resample_chunk(x.numpy(), last=False).copy())
            yield x
        if resampler is not None:  # the resampler's last samples
            yield torch.from_numpy(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True).copy())
    if done < total - max(2048, total // 100):
        raise AudioError(
            f"audio file {name!r} is truncated or corrupt: decoded {done} of the {total} samples its header announces"
        )


def audio_duration(spec: str | os.PathLike) -> float:
    """Duration in seconds, cheaply: from the header where possible (soundfile, sphere), else by decoding."""
    command = _pipe_command(spec)
    if command is not None:
        data, sr = _decode_bytes(_run_pipe(command), name=f"output of command {command!r}")
        return data.shape[0] / sr
    name = os.fspath(spec)
    p = Path(name)
    if not p.is_file():
        raise AudioError(f"audio file {name!r} does not exist or is not a regular file")
    header = _read_sphere_header(p)
    if header is not None and "shorten" in header.get("sample_coding", ""):
        try:
            return int(header["sample_count"]) / int(header["sample_rate"])
        except (KeyError, ValueError, ZeroDivisionError) as e:
            raise AudioError(f"sphere file {name!r} lacks a usable sample_count/sample_rate: {e}") from e
    try:
        info = sf.info(name)
    except Exception as e:  # libsndfile raises several types
        if p.suffix.lower() in _SOUNDFILE_EXTENSIONS:
            raise AudioError(f"cannot read audio file {name!r}: {e}") from e
        data, sr = _read_with_audioread(p, offset=0.0, duration=None, first_error=e)
        return data.shape[0] / sr
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"audio file {name!r} contains no samples")
    problem = _truncation(info.extra_info, info.frames, header)
    if problem:
        raise AudioError(f"audio file {name!r} is truncated or corrupt: {problem}")
    return info.frames / info.samplerate


def resample(samples: torch.Tensor, *, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Band-limited resampling of float32 ``[..., N]`` samples by soxr (HQ); identity when the rates match.

    soxr is the resampler of every streaming path (``Stream.accept_waveform``, :func:`read_audio_blocks`), and its
    streaming output, in chunks of any size, equals this one-shot output sample for sample. So a file decoded whole
    (``asr transcribe``, ``asr eval --mode full``) and the same file streamed give the model the same samples at any
    rate, and the same transcript with an LM too (torchaudio's sinc resampler, used here before, differed from
    soxr by enough to change a word of the LM-decoded legacy set). The length is ``round(N * target_sr /
    orig_sr)``."""
    _check_rate(orig_sr, "orig_sr")
    _check_rate(target_sr, "target_sr")
    if orig_sr == target_sr:
        return samples
    import soxr

    x = samples.detach().to(device="cpu", dtype=torch.float32).numpy()
    frames = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)  # soxr takes [N, channels], frames first
    y = soxr.resample(frames, int(orig_sr), int(target_sr), quality="HQ").T.reshape(*x.shape[:-1], -1)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))


def validate_waveform(
    samples: np.ndarray | torch.Tensor,
    sample_rate: int | None,
    *,
    expected_sr: int | None = None,
    channels_first: bool = False,
    name: str = "waveform",
) -> torch.Tensor:
    """Check and normalise caller-supplied samples (microphone blocks, sockets, arrays) to float32 ``[N]``.

    ``samples`` may be 1-D ``[N]`` or 2-D; 2-D input is ``[N, C]`` (frames first: the soundfile and
    sounddevice layout) unless ``channels_first=True``, which reads it as ``[C, N]`` (the torchaudio layout).
    Channels are averaged to mono. Integer input is scaled to [-1, 1): int16 by 1/32768, int32 by 1/2**31,
    uint8 as offset-binary 8-bit PCM. Float input is kept as is (cast to float32).
    Raises ValueError for a missing or non-positive rate, a rate other than ``expected_sr`` (if given),
    empty input, more than 2 dimensions, an implausible channel count, unsupported dtypes and NaN/inf.
    """
    if sample_rate is None:
        raise ValueError(f"{name}: sample_rate is required (got None)")
    _check_rate(sample_rate, f"{name} sample_rate")
    if expected_sr is not None and int(sample_rate) != int(expected_sr):
        raise ValueError(
            f"{name}: sample rate {sample_rate} Hz, expected {expected_sr} Hz "
            "(resample first with asr.audio.resample)"
        )
    x = torch.from_numpy(np.ascontiguousarray(samples)) if isinstance(samples, np.ndarray) else samples
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a numpy array or torch tensor, got {type(samples).__name__}")
    x = _to_float(x, name=name)
    if x.ndim == 2:
        x = x if channels_first else x.transpose(0, 1)  # -> [C, N]
        if x.shape[0] > _MAX_CHANNELS:
            layout = "[C, N]" if channels_first else "[N, C]"
            raise ValueError(
                f"{name}: {x.shape[0]} channels in a {tuple(samples.shape)} array read as {layout}; "
                f"pass channels_first={not channels_first} if the layout is the other one"
            )
        x = x.mean(dim=0)
    elif x.ndim != 1:
        raise ValueError(f"{name}: expected [N] or 2-D samples, got shape {tuple(samples.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name}: no samples (shape {tuple(samples.shape)})")
    _check_finite(x, name=name)
    return x.contiguous()


# --------------------------------------------------------------------------------------------- helpers


def _check_rate(rate: object, what: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"{what} must be a positive integer number of Hz, got {rate!r}")


def _check_segment_args(offset: float, duration: float | None, *, name: str) -> None:
    if not math.isfinite(offset) or offset < 0:
        raise AudioError(f"{name!r}: offset must be a finite number of seconds >= 0, got {offset!r}")
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        raise AudioError(f"{name!r}: duration must be a finite number of seconds > 0, got {duration!r}")


def _segment_bounds(
    total: int, sr: int, *, offset: float, duration: float | None, name: str
) -> tuple[int, int]:
    """Sample range [start, stop) of a segment in a recording of ``total`` samples (negative: unknown)."""
    start = int(round(offset * sr))
    if duration is None:
        return start, total
    stop = start + int(round(duration * sr))
    if total >= 0 and stop > total:
        overshoot = (stop - total) / sr
        if overshoot > MAX_SEGMENT_OVERSHOOT_S:
            raise AudioError(
                f"{name}: segment {offset:.3f}+{duration:.3f} s ends {overshoot:.3f} s past the end of the "
                f"recording ({total / sr:.3f} s)"
            )
        stop = total
    return start, stop


def _segment(data: np.ndarray, sr: int, *, offset: float, duration: float | None, name: str) -> np.ndarray:
    """Cut ``[N, C]`` decoded audio to a segment (used where the source cannot seek)."""
    _check_segment_args(offset, duration, name=name)
    if offset == 0.0 and duration is None:
        return data
    start, stop = _segment_bounds(data.shape[0], sr, offset=offset, duration=duration, name=name)
    if start >= data.shape[0]:
        raise AudioError(
            f"{name}: offset {offset:.3f} s is past the end of the recording ({data.shape[0] / sr:.3f} s)"
        )
    return data[start:stop]


def _read_file(
    path: Path, *, offset: float, duration: float | None, sphere_header: dict[str, str] | None = None
) -> tuple[np.ndarray, int]:
    """Decode a file with libsndfile (seeking to the segment), else audioread: ``([N, C] float32, sr)``."""
    name = str(path)
    try:
        f = sf.SoundFile(name)
    except Exception as e:  # libsndfile raises several types
        if path.suffix.lower() in _SOUNDFILE_EXTENSIONS:
            raise AudioError(f"cannot read audio file {name!r}: {e}") from e
        return _read_with_audioread(path, offset=offset, duration=duration, first_error=e)
    with f:
        sr = int(f.samplerate)
        total = int(f.frames)
        if sr <= 0:
            raise AudioError(f"audio file {name!r} declares sample rate {sr}")
        if total <= 0:
            raise AudioError(f"audio file {name!r} contains no samples")
        problem = _truncation(f.extra_info, total, sphere_header)
        if problem:
            raise AudioError(f"audio file {name!r} is truncated or corrupt: {problem}")
        start, stop = _segment_bounds(total, sr, offset=offset, duration=duration, name=repr(name))
        if start >= total:
            raise AudioError(
                f"audio file {name!r}: offset {offset:.3f} s is past its end ({total / sr:.3f} s)"
            )
        try:
            if start > 0:
                f.seek(start)
            data = f.read(frames=stop - start, dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(f"cannot decode audio file {name!r}: {e}") from e
    # Compressed formats (MP3) only estimate their length: a file cut short decodes to fewer samples.
    wanted = stop - start
    if data.shape[0] < wanted - max(2048, wanted // 100):
        raise AudioError(
            f"audio file {name!r} is truncated or corrupt: decoded {data.shape[0]} of the {wanted} samples "
            "its header announces"
        )
    return data, sr


# WAV data sizes that mean "unknown length" (streams written to pipes), not a truncated file.
_UNKNOWN_WAV_SIZES = frozenset({0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 8, 0x7FFFFFFF - 8})


def _truncation(extra_info: str, frames: int, sphere_header: dict[str, str] | None) -> str | None:
    """Why a file holds less audio than its header declares (WAV data size, SPHERE sample_count), or None."""
    m = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", extra_info, flags=re.MULTILINE)
    if m:
        declared, actual = int(m.group(1)), int(m.group(2))
        if declared > actual + 1 and declared not in _UNKNOWN_WAV_SIZES:
            return f"header declares {declared} bytes of audio data, the file holds {actual}"
    if sphere_header is not None and "sample_count" in sphere_header:
        try:
            declared = int(sphere_header["sample_count"])
        except ValueError:
            return f"unreadable SPHERE sample_count {sphere_header['sample_count']!r}"
        if declared > frames:
            return f"SPHERE header declares {declared} samples, the file holds {frames}"
    return None


def _read_with_audioread(
    path: Path, *, offset: float, duration: float | None, first_error: Exception
) -> tuple[np.ndarray, int]:
    """Formats libsndfile does not know (m4a, wma, ...) through audioread, as librosa does (needs FFmpeg)."""
    import warnings

    import audioread

    name = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # its raw backend imports deprecated sunau
            with audioread.audio_open(name) as f:
                sr, channels = int(f.samplerate), int(f.channels)
                pcm = b"".join(bytes(block) for block in f)  # 16-bit signed little-endian, interleaved
    except Exception as e:
        raise AudioError(
            f"cannot read audio file {name!r}: soundfile: {first_error}; audioread: {type(e).__name__}: {e} "
            "(install ffmpeg for compressed formats libsndfile lacks)"
        ) from e
    if sr <= 0 or channels <= 0 or not pcm:
        raise AudioError(f"audio file {name!r} contains no samples (audioread: {sr} Hz, {channels} channels)")
    data = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    data = data[: len(data) - len(data) % channels].reshape(-1, channels)  # [N, C]
    return _segment(data, sr, offset=offset, duration=duration, name=repr(name)), sr


def _read_sphere_header(path: Path) -> dict[str, str] | None:
    """Fields of a NIST SPHERE header (``sample_coding`` etc.), or None if the file is not SPHERE."""
    with path.open("rb") as f:
        head = f.read(1024)
    if not head.startswith(b"NIST_1A"):
        return None
    fields: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines()[2:]:
        if line.strip() == "end_head":
            break
        parts = line.split(None, 2)
        if len(parts) == 3:
            fields[parts[0]] = parts[2].strip()
    return fields


def _sph2pipe(path: Path) -> bytes:
    exe = shutil.which("sph2pipe")
    if exe is None:
        raise AudioError(
            f"{str(path)!r} is a shorten-compressed NIST SPHERE file, which needs the 'sph2pipe' program on "
            "PATH (Debian does not package it; Kaldi builds it in tools/sph2pipe_v2.5, or use the "
            "sph2pipe pipe commands of a Kaldi wav.scp)"
        )
    proc = subprocess.run([exe, "-f", "wav", str(path)], capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip()[-500:]
        raise AudioError(f"sph2pipe failed on {str(path)!r} (exit code {proc.returncode}): {err}")
    return proc.stdout


def _pipe_command(spec: str | os.PathLike) -> str | None:
    """The shell command of a Kaldi ``cmd args |`` spec, or None for a plain path."""
    if not isinstance(spec, str):
        return None
    text = spec.strip()
    if not text.endswith("|"):
        return None
    command = text[:-1].strip()
    if not command:
        raise AudioError(f"empty pipe command in audio spec {spec!r}")
    return command


def _run_pipe(command: str) -> bytes:
    if not pipes_allowed():
        raise AudioError(
            f"audio {command + ' |'!r} is a shell command (the Kaldi 'cmd |' form) from a data file: it is run only "
            f"when allowed: --allow-pipes (asr prepare kaldi, asr eval), data.allow_pipes=true (asr train) or "
            f"{ALLOW_PIPES_ENV}=1; check the commands first"
        )
    proc = subprocess.run(command, shell=True, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-500:]
        hint = " (program not found: is it installed and on PATH?)" if proc.returncode == 127 else ""
        raise AudioError(f"audio command {command!r} failed with exit code {proc.returncode}{hint}: {err}")
    if not proc.stdout:
        raise AudioError(f"audio command {command!r} wrote nothing to its standard output")
    return proc.stdout


def _decode_bytes(data: bytes, *, name: str) -> tuple[np.ndarray, int]:
    """Decode an in-memory audio file (WAV from a pipe): ``([N, C] float32, sr)``."""
    try:
        samples, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"cannot decode the {name}: {e}") from e
    if samples.shape[0] == 0:
        raise AudioError(f"the {name} contains no samples")
    return samples, int(sr)


def _finish(data: np.ndarray, *, name: str) -> torch.Tensor:
    """``[N, C]`` decoded audio -> float32 mono ``[N]``, rejecting empty and non-finite audio."""
    if data.shape[0] == 0:
        raise AudioError(f"audio {name} contains no samples in the requested range")
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    x = x[:, 0] if x.shape[1] == 1 else x.mean(dim=1)
    _check_finite(x, name=f"audio {name}", error=AudioError)
    return x.contiguous()


def _check_finite(x: torch.Tensor, *, name: str, error: type[ValueError] = ValueError) -> None:
    # One reduction in the usual case: a float64 sum of float32 samples is finite exactly when every sample
    # is (it cannot overflow), ~3x cheaper than isfinite + all for a 160 ms chunk (a live stream's every call)
    if x.dtype != torch.float64 and math.isfinite(float(x.sum(dtype=torch.float64))):
        return
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        raise error(f"{name} has {bad.shape[0]} NaN/inf samples (first at sample {int(bad[0, 0])})")


def _to_float(x: torch.Tensor, *, name: str) -> torch.Tensor:
    if x.dtype == torch.int16:
        return x.to(torch.float32) / 32768.0
    if x.dtype == torch.int32:
        return (x.to(torch.float64) / 2147483648.0).to(torch.float32)
    if x.dtype == torch.uint8:
        return (x.to(torch.float32) - 128.0) / 128.0
    if x.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return x.to(torch.float32, copy=True)  # never alias the caller's (often reused) buffer
    raise ValueError(f"{name}: unsupported sample dtype {x.dtype} (use int16, int32, uint8 or float)")
