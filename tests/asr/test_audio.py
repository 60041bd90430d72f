"""asr.audio: real files in every format, resampling, Kaldi pipes, and clear errors for bad input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr import audio
from asr.audio import (
    ALLOW_PIPES_ENV,
    AudioError,
    allowing_pipes,
    audio_duration,
    load_audio,
    load_audio_source,
    read_audio,
    read_audio_blocks,
    read_audio_source,
    resample,
    validate_waveform,
)

SR = 16000


def _tone(sr: int, seconds: float, freqs=(220.0, 440.0, 1000.0)) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.2).astype(np.float32)  # [N]


def _corr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def _raises_naming(path: Path | str, match: str = ""):
    """pytest.raises(AudioError) whose message names ``path`` (and matches ``match``)."""
    return pytest.raises(AudioError, match=f"(?s)(?=.*{re.escape(str(path))}).*{match}")


# (format, subtype, extension, minimum correlation with the source: lossy codecs reconstruct less exactly)
FORMATS = [
    ("WAV", "PCM_16", "wav", 0.9999),
    ("WAV", "FLOAT", "wav", 0.9999),
    ("FLAC", "PCM_24", "flac", 0.9999),
    ("OGG", "VORBIS", "ogg", 0.99),
    ("MP3", "MPEG_LAYER_III", "mp3", 0.99),
    ("NIST", "PCM_16", "sph", 0.9999),
]


@pytest.mark.parametrize("fmt,subtype,ext,min_corr", FORMATS, ids=[f"{f[0]}-{f[1]}" for f in FORMATS])
def test_reads_every_format(tmp_path, fmt, subtype, ext, min_corr):
    x = _tone(SR, 1.0)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, SR, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == torch.float32 and y.ndim == 1
    assert abs(len(y) - len(x)) <= 0.01 * len(x)
    assert _corr(y, x) > min_corr
    assert audio_duration(path) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_stereo_resampled_to_16k_mono(tmp_path, sr):
    left = _tone(sr, 1.0)
    right = _tone(sr, 1.0, freqs=(440.0,))
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], axis=1), sr)  # [N, 2]
    y = load_audio(path)
    assert len(y) == round(len(left) * SR / sr)
    expected = (_tone(SR, 1.0) + _tone(SR, 1.0, freqs=(440.0,))) / 2  # the mono mix, made at 16 kHz
    inner = slice(200, -200)  # resampling filters ramp at the edges
    assert _corr(y[inner], expected[inner]) > 0.999
    assert np.abs(y.numpy()[inner] - expected[inner]).max() < 0.02


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_a_file_read_whole_gives_the_samples_a_stream_gets(tmp_path, sr):
    """load_audio (asr transcribe, asr eval --mode full) and a stream fed the file in chunks (asr transcribe
    --stream, asr eval --mode stream, a microphone) resample alike, sample for sample: decoded whole or streamed,
    the model sees the same audio at any rate."""
    import soxr

    x = _tone(sr, 1.7) + 0.01 * np.random.default_rng(sr).standard_normal(int(1.7 * sr)).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    whole = load_audio(path).numpy()
    stream = soxr.ResampleStream(sr, SR, 1, dtype="float32", quality="HQ")  # what Stream.accept_waveform runs
    step = sr // 10 + 7
    pieces = [stream.resample_chunk(x[i : i + step], last=False) for i in range(0, len(x), step)]
    streamed = np.concatenate([*pieces, stream.resample_chunk(np.zeros(0, np.float32), last=True)])
    assert np.array_equal(whole, streamed)


def test_offset_and_duration_cut_the_same_samples(tmp_path):
    x = _tone(SR, 2.0)
    path = tmp_path / "a.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    full = load_audio(path)
    seg = load_audio(path, offset=0.25, duration=0.5)
    assert torch.equal(seg, full[4000:12000])
    assert torch.equal(load_audio(path, offset=1.5), full[24000:])
    # A segment ending a little past the end is truncated (Kaldi segments), far past it is an error.
    assert torch.equal(load_audio(path, offset=1.5, duration=0.8), full[24000:])
    with _raises_naming(path, "past the end"):
        load_audio(path, offset=1.5, duration=2.0)
    with _raises_naming(path, "past its end"):
        load_audio(path, offset=3.0)
    with _raises_naming(path, "offset"):
        load_audio(path, offset=-1.0)
    with _raises_naming(path, "duration"):
        load_audio(path, duration=0.0)


@pytest.fixture
def pipes(monkeypatch):
    """Kaldi pipe commands allowed, as --allow-pipes / data.allow_pipes=true do."""
    monkeypatch.setenv(ALLOW_PIPES_ENV, "1")


def test_pipes_run_only_with_an_explicit_opt_in(tmp_path, monkeypatch):
    """(issue 15) A 'cmd |' spec is a shell command from a data file that may have been downloaded: without the
    opt-in it is never run, and the error says how to allow it."""
    monkeypatch.delenv(ALLOW_PIPES_ENV, raising=False)
    path = tmp_path / "a.wav"
    sf.write(path, _tone(SR, 0.5), SR)
    marker = tmp_path / "ran"
    spec = f"touch '{marker}'; cat '{path}' |"
    for read in (load_audio_source, read_audio_source, audio_duration):
        with pytest.raises(AudioError, match="--allow-pipes.*data.allow_pipes") as e:
            read(spec)
        assert "touch" in str(e.value)
    assert not marker.exists()
    with allowing_pipes():
        assert torch.equal(load_audio_source(spec), load_audio(path))
    assert marker.exists() and ALLOW_PIPES_ENV not in os.environ  # the opt-in ends with the block
    with allowing_pipes(False):  # no opt-in: the commands stay refused
        with pytest.raises(AudioError, match="--allow-pipes"):
            load_audio_source(spec)


def test_pipe_command_reads_wav_from_stdout(tmp_path, pipes):
    x = _tone(SR, 1.0)
    path = tmp_path / "utt 1.wav"  # a space, quoted as Kaldi recipes do
    sf.write(path, x, SR)
    spec = f"cat '{path}' |"
    assert torch.equal(load_audio_source(spec), load_audio(path))
    assert torch.equal(load_audio_source(spec, offset=0.5, duration=0.25), load_audio(path)[8000:12000])
    assert audio_duration(spec) == pytest.approx(1.0)
    # A plain path goes through the same entry point.
    assert torch.equal(load_audio_source(str(path)), load_audio(path))


def test_pipe_command_failures_name_the_command(tmp_path, pipes):
    with pytest.raises(AudioError, match="exit code 3"):
        load_audio_source("echo oops >&2; exit 3 |")
    with pytest.raises(AudioError, match="no-such-program-xyz.*not found"):
        load_audio_source("no-such-program-xyz -f wav a.wv1 |")
    with pytest.raises(AudioError, match="wrote nothing"):
        load_audio_source("true |")
    with pytest.raises(AudioError, match="cannot decode the output of command 'echo hello'"):
        load_audio_source("echo hello |")


def test_missing_empty_and_garbage_files_raise_naming_the_file(tmp_path):
    with _raises_naming(tmp_path / "missing.wav", "does not exist"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with _raises_naming(empty, "empty"):
        load_audio(empty)
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"this is not audio " * 50)
    with _raises_naming(garbage):
        load_audio(garbage)
    with _raises_naming(garbage):
        audio_duration(garbage)
    with _raises_naming(tmp_path, "not a regular file"):
        load_audio(tmp_path)


def test_zero_length_audio_raises(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    with _raises_naming(path, "no samples"):
        load_audio(path)
    with _raises_naming(path, "no samples"):
        audio_duration(path)


@pytest.mark.parametrize(
    "ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("sph", "NIST"), ("mp3", "MP3")]
)
def test_truncated_files_raise(tmp_path, ext, fmt):
    full = tmp_path / f"full.{ext}"
    sf.write(full, _tone(SR, 1.0), SR, format=fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with _raises_naming(cut):
        load_audio(cut)


def test_truncated_wav_header_only(tmp_path):
    path = tmp_path / "header.wav"
    sf.write(path, _tone(SR, 0.1), SR)
    path.write_bytes(path.read_bytes()[:30])
    with _raises_naming(path):
        load_audio(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_samples_rejected(tmp_path, bad):
    x = _tone(SR, 0.5)
    x[1234] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with _raises_naming(path, "NaN/inf samples .first at sample 1234"):
        load_audio(path)


def _sphere_header(fields: dict[str, str]) -> bytes:
    text = "NIST_1A\n   1024\n" + "".join(f"{k} {v}\n" for k, v in fields.items()) + "end_head\n"
    return text.encode().ljust(1024, b" ")


def test_shorten_sphere_without_sph2pipe_names_file_and_remedy(tmp_path, monkeypatch):
    path = tmp_path / "440c0201.wv1"
    fields = {
        "sample_count": "-i 32000",
        "sample_rate": "-i 16000",
        "channel_count": "-i 1",
        "sample_coding": "-s26 pcm,embedded-shorten-v2.00",
    }
    path.write_bytes(_sphere_header(fields) + b"\x00" * 400)
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with _raises_naming(path, "sph2pipe"):
        load_audio(path)
    # The duration comes from the header, with no decoding.
    assert audio_duration(path) == pytest.approx(2.0)


def test_sphere_pcm_read_and_header_checked(tmp_path):
    x = _tone(SR, 0.5)
    path = tmp_path / "a.wv1"  # WSJ extension, plain PCM inside
    sf.write(path, x, SR, format="NIST", subtype="PCM_16")
    assert _corr(load_audio(path), x) > 0.9999


def test_shorten_sphere_decoded_through_sph2pipe(tmp_path, monkeypatch, pipes):
    # A stand-in sph2pipe on PATH (the real one is not packaged by Debian): it checks its arguments are
    # `-f wav FILE` and prints the WAV "decoded" from FILE, kept beside it.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "sph2pipe"
    fake.write_text('#!/bin/sh\n[ "$1" = "-f" ] && [ "$2" = "wav" ] || exit 2\nexec cat "$3.decoded.wav"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    x = _tone(SR, 1.0)
    path = tmp_path / "440c0201.wv1"
    fields = {
        "sample_count": "-i 16000",
        "sample_rate": "-i 16000",
        "sample_coding": "-s26 pcm,embedded-shorten-v2.00",
    }
    path.write_bytes(_sphere_header(fields) + b"\x00" * 400)
    sf.write(f"{path}.decoded.wav", x, SR, subtype="FLOAT")
    y = load_audio(path)
    assert torch.equal(y, torch.from_numpy(x))
    assert torch.equal(load_audio(path, offset=0.5, duration=0.25), y[8000:12000])
    # The Kaldi wav.scp form of the same file.
    assert torch.equal(load_audio_source(f"sph2pipe -f wav {path} |"), y)
    # A failing decoder is reported with the file name.
    bad = tmp_path / "bad.wv1"
    bad.write_bytes(_sphere_header(fields))
    with _raises_naming(bad, "sph2pipe failed"):
        load_audio(bad)


def test_unknown_format_falls_back_to_audioread_and_names_file(tmp_path):
    path = tmp_path / "clip.xyz"
    path.write_bytes(b"not audio at all" * 64)
    with _raises_naming(path, "audioread"):
        load_audio(path)


def test_audioread_fallback_decodes(tmp_path, monkeypatch):
    # Pretend libsndfile cannot read this file: audioread (its stdlib WAV backend here) decodes it instead.
    x = _tone(22050, 1.0)
    path = tmp_path / "clip.xyz"
    sf.write(path, np.stack([x, x], axis=1), 22050, format="WAV", subtype="PCM_16")
    expected = load_audio(path, offset=0.2, duration=0.5)

    def no_soundfile(*args, **kwargs):
        raise RuntimeError("Format not recognised.")

    monkeypatch.setattr(audio.sf, "SoundFile", no_soundfile)
    y = load_audio(path, offset=0.2, duration=0.5)
    assert len(y) == len(expected) == 8000
    assert (y - expected).abs().max() < 1e-6


# ------------------------------------------------------------------------------------- validate_waveform


def test_validate_int16_scaling_and_mono():
    x = np.array([-32768, 0, 16384, 32767], dtype=np.int16)
    y = validate_waveform(x, 16000)
    assert y.dtype == torch.float32
    assert y.tolist() == [-1.0, 0.0, 0.5, 32767 / 32768]


def test_validate_stereo_layouts():
    left = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    right = np.zeros(1000, dtype=np.float32)
    mix = torch.from_numpy((left + right) / 2)
    frames_first = np.stack([left, right], axis=1)  # [N, C]
    assert torch.allclose(validate_waveform(frames_first, 16000), mix)
    channels_first = frames_first.T.copy()  # [C, N]
    assert torch.allclose(
        validate_waveform(torch.from_numpy(channels_first), 16000, channels_first=True), mix
    )
    with pytest.raises(ValueError, match="1000 channels.*channels_first=True"):
        validate_waveform(channels_first, 16000)


def test_validate_float_input_is_copied_not_aliased():
    x = np.zeros(100, dtype=np.float32)
    y = validate_waveform(x, 16000)
    x[:] = 1.0  # e.g. a reused microphone buffer
    assert float(y.abs().sum()) == 0.0


@pytest.mark.parametrize(
    "samples,rate,kwargs,match",
    [
        (np.zeros(10, np.float32), None, {}, "sample_rate is required"),
        (np.zeros(10, np.float32), 0, {}, "positive integer"),
        (np.zeros(10, np.float32), 16000.0, {}, "positive integer"),
        (np.zeros(10, np.float32), 44100, {"expected_sr": 16000}, "44100 Hz, expected 16000 Hz"),
        (np.zeros(0, np.float32), 16000, {}, "no samples"),
        (np.zeros((2, 3, 4), np.float32), 16000, {}, r"shape \(2, 3, 4\)"),
        (np.array([0.0, np.nan, 0.0], np.float32), 16000, {}, "NaN/inf"),
        (np.array([0.0, np.inf], np.float64), 16000, {}, "NaN/inf"),
        (np.array([np.inf, 0.5, -np.inf], np.float32), 16000, {}, "NaN/inf"),  # +inf and -inf: a NaN sum
        (np.array([1e300, 0.0], np.float64), 16000, {}, "NaN/inf"),  # beyond float32: inf after conversion
        (np.array([True, False]), 16000, {}, "unsupported sample dtype"),
        ([0.0, 0.1], 16000, {}, "numpy array or torch tensor"),
    ],
)
def test_validate_rejects_bad_input(samples, rate, kwargs, match):
    with pytest.raises(ValueError, match=match):
        validate_waveform(samples, rate, name="mic", **kwargs)


def test_huge_but_finite_samples_are_not_mistaken_for_inf():
    """The finiteness check sums in float64: float32's largest values cannot overflow it."""
    x = np.full(100_000, np.finfo(np.float32).max, np.float32)
    out = validate_waveform(x, 16000, name="mic")
    assert torch.isfinite(out).all() and out.shape == (100_000,)


def test_resample_identity_and_rate_checks():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert resample(x, orig_sr=16000, target_sr=16000) is x
    assert resample(x, orig_sr=8000, target_sr=16000).shape == (2000,)
    with pytest.raises(ValueError, match="orig_sr"):
        resample(x, orig_sr=-1, target_sr=16000)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_read_audio_blocks_gives_the_whole_file_in_bounded_pieces(tmp_path, sr):
    """(issue 15, long files) Blocks of a file, read without holding the whole file: at 16 kHz exactly the samples
    of read_audio; at another rate soxr's streaming resampler's output (its one-shot output, bar rounding)."""
    import soxr

    x = _tone(sr, 3.3)
    path = tmp_path / "long.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    blocks = list(read_audio_blocks(path, block_seconds=1.0))
    whole, _ = read_audio(path)
    assert len(blocks) >= 4 and max(b.shape[0] for b in blocks) <= 1.1 * 16000  # about a second each
    joined = torch.cat(blocks)
    if sr == 16000:
        assert torch.equal(joined, whole)
    else:
        reference = soxr.resample(whole.numpy(), sr, 16000, quality="HQ")
        assert abs(joined.shape[0] - reference.shape[0]) <= 1
        n = min(joined.shape[0], reference.shape[0])
        assert np.abs(joined.numpy()[:n] - reference[:n]).max() < 1e-4


def test_read_audio_blocks_names_the_file_and_the_time_of_a_problem(tmp_path):
    x = _tone(SR, 3.0)
    x[int(2.5 * SR)] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav.*at 2.0 s.*NaN"):
        list(read_audio_blocks(path, block_seconds=1.0))
    with _raises_naming(tmp_path / "missing.wav", "does not exist"):
        list(read_audio_blocks(tmp_path / "missing.wav"))
