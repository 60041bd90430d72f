"""asr.features: fbank vs torchaudio's Kaldi fbank, streaming == offline for any chunking, global CMVN."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchaudio.compliance import kaldi

from asr import features as feats_mod
from asr.audio import load_audio, load_audio_source
from asr.features import (
    CMVNAccumulator,
    FbankConfig,
    FbankState,
    GlobalCMVN,
    StreamingFbank,
    compute_cmvn_stats,
    compute_fbank,
)

SR = 16000


def _speechlike(seconds: float, seed: int) -> torch.Tensor:
    """Noise bursts over harmonics with a varying level: [N] float32 in (-1, 1)."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SR)
    t = torch.arange(n, dtype=torch.float64) / SR
    f0 = 120 + 30 * torch.sin(2 * torch.pi * 0.7 * t)
    voiced = sum(torch.sin(2 * torch.pi * k * torch.cumsum(f0, 0) / SR) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * torch.sin(2 * torch.pi * 2.3 * t)
    x = 0.1 * envelope * voiced + 0.02 * torch.randn(n, generator=g, dtype=torch.float64)
    return x.clamp(-1, 1).to(torch.float32)


def _stream(fbank: StreamingFbank, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Feed ``x`` in chunks of the given sizes (cycled until x is used up); concatenated frames [T, D]."""
    state = fbank.init_state()
    out, pos, i = [], 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        frames, state = fbank.step(x[pos : pos + n], state)
        assert frames.shape[1] == fbank.config.n_mels
        assert len(state.pending) < fbank.config.window_length
        out.append(frames)
        pos += n
        i += 1
    assert state.num_samples == len(x)
    assert state.num_frames == sum(len(f) for f in out)
    return torch.cat(out) if out else torch.zeros(0, fbank.config.n_mels)


def test_matches_torchaudio_kaldi_fbank():
    x = _speechlike(2.0, seed=0)
    ours = compute_fbank(x)
    ref = kaldi.fbank(x[None] * 32768, num_mel_bins=80, dither=0.0, sample_frequency=SR)  # float32 reference
    assert ours.shape == ref.shape == (198, 80)
    assert ours.dtype == torch.float32
    assert (ours - ref).abs().max() < 1e-3


def test_matches_torchaudio_with_other_settings():
    cfg = FbankConfig(
        sample_rate=8000, n_mels=40, window="hamming", preemphasis=0.0, low_freq=64, high_freq=-200
    )
    x = _speechlike(1.0, seed=1)[:8000]
    ref = kaldi.fbank(
        x[None] * 32768,
        num_mel_bins=40,
        dither=0.0,
        sample_frequency=8000,
        window_type="hamming",
        preemphasis_coefficient=0.0,
        low_freq=64,
        high_freq=-200,
    )
    assert (compute_fbank(x, cfg) - ref).abs().max() < 1e-3


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 559, 560, 561, 16000, 16001])
def test_snip_edges_frame_count(n):
    expected = 0 if n < 400 else 1 + (n - 400) // 160
    assert FbankConfig().num_frames(n) == expected
    assert compute_fbank(torch.zeros(n)).shape == (expected, 80)


CHUNKINGS = {
    "1-sample": [1],
    "10ms": [160],
    "37ms": [592],
    "window-1": [399],
    "window": [400],
    "window+1": [401],
    "irregular": [1, 0, 7, 159, 160, 161, 0, 1000, 3, 399, 401, 2048, 37, 5],
    "whole": [10**9],
}


@pytest.mark.parametrize("name", list(CHUNKINGS))
def test_streaming_equals_offline_bit_for_bit(name):
    x = _speechlike(0.25 if name == "1-sample" else 2.3, seed=2)
    fbank = StreamingFbank()
    assert torch.equal(_stream(fbank, x, CHUNKINGS[name]), compute_fbank(x))


def test_streaming_random_chunkings_within_tolerance_and_exact():
    # Many seeded random chunkings of one signal: exact, and so trivially within the 1e-5 bound.
    x = _speechlike(2.0, seed=3)
    offline = compute_fbank(x)
    fbank = StreamingFbank()
    rng = np.random.default_rng(0)
    for _ in range(10):
        sizes = rng.integers(0, 2000, size=50).tolist()
        streamed = _stream(fbank, x, sizes)
        assert (streamed - offline).abs().max() <= 1e-5
        assert torch.equal(streamed, offline)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=4000),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_streaming_property_any_cut_points(n, cuts, seed):
    x = torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 0.1
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    fbank = StreamingFbank()
    state = fbank.init_state()
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        frames, state = fbank.step(x[a:b], state)
        out.append(frames)
    streamed = torch.cat(out) if out else torch.zeros(0, 80)
    assert torch.equal(streamed, compute_fbank(x))


def test_streaming_other_config_exact():
    cfg = FbankConfig(sample_rate=8000, n_mels=40, frame_length_ms=32, frame_shift_ms=8)  # win 256, hop 64
    x = _speechlike(1.0, seed=4)[:8000]
    assert torch.equal(_stream(StreamingFbank(cfg), x, [1, 63, 64, 65, 500]), compute_fbank(x, cfg))


def test_step_is_pure_and_does_no_rework(monkeypatch):
    fbank = StreamingFbank()
    x = _speechlike(1.0, seed=5)
    _, state = fbank.step(x[:1000], fbank.init_state())
    snapshot = FbankState(state.pending.clone(), state.num_samples, state.num_frames)
    a, state_a = fbank.step(x[1000:1700], state)
    b, state_b = fbank.step(x[1000:1700], state)  # the same old state again: same answer
    assert torch.equal(state.pending, snapshot.pending) and state[1:] == snapshot[1:]
    assert torch.equal(a, b) and torch.equal(state_a.pending, state_b.pending)

    # Every frame is computed exactly once: the kernel sees only new windows, never old audio.
    rows = []
    real_kernel = feats_mod._kernel

    def counting_kernel(config, device):
        k = real_kernel(config, device)
        def count(frames, generator=None):  # a [F, win] block, or one block per stream
            blocks = [frames] if isinstance(frames, torch.Tensor) else frames
            rows.append(sum(b.shape[0] for b in blocks))
            return k(frames, generator)

        return count

    monkeypatch.setattr(feats_mod, "_kernel", counting_kernel)
    _stream(fbank, x, [37, 160, 1, 592])
    assert sum(rows) == FbankConfig().num_frames(len(x))


def test_step_batch_many_streams_exact():
    fbank = StreamingFbank()
    signals = [_speechlike(s, seed=10 + i) for i, s in enumerate([0.3, 1.1, 0.7, 0.02])]
    chunk_sizes = [[160], [37, 1000], [1, 400, 401], [5]]
    states = [fbank.init_state() for _ in signals]
    pos = [0] * len(signals)
    outs: list[list[torch.Tensor]] = [[] for _ in signals]
    for step in range(400):
        chunks = []
        for b, x in enumerate(signals):
            n = chunk_sizes[b][step % len(chunk_sizes[b])]
            chunks.append(x[pos[b] : pos[b] + n])
            pos[b] += n
        frames, states = fbank.step_batch(chunks, states)
        for b, f in enumerate(frames):
            outs[b].append(f)
    for b, x in enumerate(signals):
        assert pos[b] >= len(x), "test must feed every signal to the end"
        assert torch.equal(torch.cat(outs[b]), compute_fbank(x))
    with pytest.raises(ValueError, match="2 sample chunks for 1 states"):
        fbank.step_batch([torch.zeros(1), torch.zeros(1)], [fbank.init_state()])


def test_step_rejects_bad_chunks():
    fbank = StreamingFbank()
    with pytest.raises(ValueError, match=r"chunk 0 must be a 1-D float tensor.*shape \(2, 10\)"):
        fbank.step(torch.zeros(2, 10), fbank.init_state())
    with pytest.raises(ValueError, match="torch.int16"):
        fbank.step(torch.zeros(10, dtype=torch.int16), fbank.init_state())


def test_dither_offline_only_and_seeded():
    cfg = FbankConfig(dither=1.0)
    x = torch.zeros(4000)  # digital silence: dither keeps the log away from the floor
    a = compute_fbank(x, cfg, generator=torch.Generator().manual_seed(1))
    b = compute_fbank(x, cfg, generator=torch.Generator().manual_seed(1))
    c = compute_fbank(x, cfg, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() > compute_fbank(x).min() + 5
    with pytest.raises(ValueError, match="dither=0"):
        StreamingFbank(cfg)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"frame_length_ms": 25.3}, "frame_length_ms=25.3"),
        ({"frame_shift_ms": 30.0}, "exceeds frame length"),
        ({"window": "blackman"}, "window must be one of"),
        ({"high_freq": 9000.0}, "high_freq"),
        ({"n_mels": 0}, "n_mels"),
        ({"dither": -1.0}, "dither"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FbankConfig(**kwargs)


# ------------------------------------------------------------------------------------------------- CMVN


def _feature_list(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(int(t), 80, generator=g) * 3 + 12 for t in torch.randint(1, 300, (7,), generator=g)]


def test_cmvn_fit_matches_direct_statistics(tmp_path):
    feats = _feature_list(0)
    cmvn = GlobalCMVN.fit(iter(feats))
    allf = torch.cat(feats).double()
    assert cmvn.count == allf.shape[0]
    assert torch.allclose(cmvn.mean.double(), allf.mean(0), atol=1e-5)
    assert torch.allclose(cmvn.std.double(), allf.std(0, unbiased=False), atol=1e-5)
    normed = cmvn.apply(torch.cat(feats))
    assert normed.mean(0).abs().max() < 1e-4
    assert (normed.std(0, unbiased=False) - 1).abs().max() < 1e-4
    # [B, T, D] broadcasts the same way.
    batch = torch.stack([feats[0][:1], feats[1][:1]])
    assert torch.equal(cmvn.apply(batch)[1], cmvn.apply(feats[1][:1]))


def test_cmvn_accumulators_merge_like_one_pass():
    feats = _feature_list(1)
    a, b = CMVNAccumulator(80), CMVNAccumulator(80)
    for f in feats[:3]:
        a.add(f)
    for f in feats[3:]:
        b.add(f)
    a.merge_stats(b.count, b.mean, b.m2)
    one = GlobalCMVN.fit(feats)
    merged = a.result()
    assert merged.count == one.count
    assert torch.allclose(merged.mean, one.mean, atol=1e-6) and torch.allclose(merged.std, one.std, atol=1e-6)


def test_cmvn_save_load_and_checkpoint_dict(tmp_path):
    cmvn = GlobalCMVN.fit(_feature_list(2))
    path = tmp_path / "cmvn.safetensors"
    cmvn.save(path)
    loaded = GlobalCMVN.load(path)
    assert torch.equal(loaded.mean, cmvn.mean) and torch.equal(loaded.std, cmvn.std)
    assert loaded.count == cmvn.count
    tensors = {"model.w": torch.zeros(1), **cmvn.to_dict(prefix="frontend.cmvn.")}
    again = GlobalCMVN.from_dict(tensors, prefix="frontend.cmvn.")
    assert torch.equal(again.mean, cmvn.mean)
    with pytest.raises(ValueError, match="cmvn.mean"):
        GlobalCMVN.from_dict({"model.w": torch.zeros(1)})


def test_cmvn_floors_constant_dims_and_rejects_bad_input():
    f = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    f[:, 2] = 5.0
    cmvn = GlobalCMVN.fit([f], min_std=0.01)
    assert float(cmvn.std[2]) == pytest.approx(0.01)
    assert torch.isfinite(cmvn.apply(f)).all()
    with pytest.raises(ValueError, match="no feature tensors"):
        GlobalCMVN.fit([])
    with pytest.raises(ValueError, match=r"\[..., T, 4\]"):
        GlobalCMVN.fit([f, torch.zeros(3, 5)])
    with pytest.raises(ValueError, match="dim 5"):
        cmvn.apply(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        GlobalCMVN.fit([torch.full((2, 4), float("nan"))])


def test_compute_cmvn_stats_over_manifest_like_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("ASR_ALLOW_PIPES", "1")  # the Kaldi pipe below (commands from data files need the opt-in)
    paths = []
    for i, seconds in enumerate([0.5, 0.8, 1.2]):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, _speechlike(seconds, seed=20 + i).numpy(), SR, subtype="FLOAT")
        paths.append(p)
    sources = [
        str(paths[0]),
        {"id": "u1", "audio": str(paths[1]), "duration": 0.8},  # whole file: duration is informational
        {"id": "u2-seg", "audio": str(paths[2]), "offset": 0.2, "duration": 0.5},  # a segment
        f"cat {paths[0]} |",  # Kaldi pipe
    ]
    cmvn = compute_cmvn_stats(sources, progress=True)
    direct = GlobalCMVN.fit(
        [
            compute_fbank(load_audio(paths[0])),
            compute_fbank(load_audio(paths[1])),
            compute_fbank(load_audio(paths[2], offset=0.2, duration=0.5)),
            compute_fbank(load_audio_source(f"cat {paths[0]} |")),
        ]
    )
    assert cmvn.count == direct.count == 48 + 78 + 48 + 48
    assert torch.allclose(cmvn.mean, direct.mean) and torch.allclose(cmvn.std, direct.std)
    subset = compute_cmvn_stats(sources, max_utterances=1, progress=False)
    assert subset.count == 48
