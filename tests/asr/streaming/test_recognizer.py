"""The streaming recognizer against the full-utterance forward, from raw samples."""

import numpy as np
import pytest
import torch

from asr.streaming import EndpointConfig, Recognizer, RecognizerConfig
from tests.asr.streaming.conftest import make_bundle

NO_ENDPOINT = EndpointConfig(enabled=False)


def _full_log_probs(bundle, samples):
    feats = bundle.featurize_utterance(samples)  # the whole utterance, its tail padding included
    lp, n = bundle.log_probs(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
    return lp[0, : int(n[0])]


def _stream(bundle, samples, sizes, rate=16000, **cfg):
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(keep_log_probs=True, endpoint=NO_ENDPOINT, **cfg))
    s = rec.create_stream()
    start, i = 0, 0
    while start < samples.numel():
        n = sizes[i % len(sizes)]
        s.accept_waveform(samples[start : start + n], rate)
        rec.decode([s])
        start += n
        i += 1
    s.input_finished()
    rec.decode([s])
    return s


@pytest.mark.parametrize(
    "sizes",
    [[160], [593], [32000], [1, 7, 1000, 4000, 333, 160, 24000]],
    ids=["10ms", "37ms", "2s", "irregular"],
)
def test_streaming_logits_equal_full_forward(bundle, audio, sizes):
    full = _full_log_probs(bundle, audio)
    s = _stream(bundle, audio, sizes)
    streamed = torch.cat(s.log_probs)
    assert streamed.shape == full.shape
    assert (streamed - full).abs().max() <= 1e-4
    from asr.decoding import greedy_search

    assert s.result.text == bundle.tokenizer.decode(greedy_search(full).tokens)


@pytest.mark.parametrize(
    "step",
    [dict(), dict(step="packed_by_op"), dict(step="packed_torch"), dict(step="module")],
    ids=["c", "c_by_op", "torch", "module"],
)
@pytest.mark.parametrize("overrides", [dict(decay="per_head", output_norm="rms"), dict(decay="gated")])
def test_streaming_exact_for_decay_variants(audio, overrides, step):
    """Each way of stepping (the C kernels, a block in one call where it can; the same op by op; PackedStep on
    PyTorch ops; the module step)."""
    bundle = make_bundle(**overrides)
    full = _full_log_probs(bundle, audio)
    s = _stream(bundle, audio, [1234, 160, 5000], **step)
    rec = s.recognizer
    form = step.get("step", "packed")
    kernel = {"packed": "c", "packed_by_op": "c", "packed_torch": "torch", "module": None}[form]
    assert rec.packed_step is None if kernel is None else rec.packed_step.kernel == kernel
    if kernel is not None:  # one call a block: the C kernels, a block kernels.block has a form for (not gated)
        expect = form == "packed" and overrides.get("decay") != "gated"
        assert all((b.fused is not None) == expect for b in rec.packed_step.blocks)
    assert (torch.cat(s.log_probs) - full).abs().max() <= 1e-4


def test_recognizer_config_names_a_bad_step():
    with pytest.raises(ValueError, match="step must be one of"):
        RecognizerConfig(step="gpu")


def test_softmax_baseline_streams_exactly(audio):
    bundle = make_bundle(attention="softmax")
    full = _full_log_probs(bundle, audio)
    s = _stream(bundle, audio, [2000, 777])
    assert (torch.cat(s.log_probs) - full).abs().max() <= 1e-4


def test_batched_step_equals_single_streams(bundle, audio):
    g = torch.Generator().manual_seed(1)
    clips = [
        audio[: 16000 * 2],
        0.5 * audio.flip(0),
        audio[8000:] + 0.01 * torch.randn(audio.shape[0] - 8000, generator=g),
    ]
    singles = [torch.cat(_stream(bundle, c, [480]).log_probs) for c in clips]
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(keep_log_probs=True, endpoint=NO_ENDPOINT))
    streams = [rec.create_stream() for _ in clips]
    pos = [0] * len(clips)
    sizes = [480, 1600, 700]  # each stream its own chunking; decode() batches those with a full chunk
    while any(p < c.numel() for p, c in zip(pos, clips)):
        for i, (s, c) in enumerate(zip(streams, clips)):
            if pos[i] < c.numel():
                s.accept_waveform(c[pos[i] : pos[i] + sizes[i]], 16000)
                pos[i] += sizes[i]
        rec.decode(streams)
    for s in streams:
        s.input_finished()
    rec.decode(streams)
    for s, ref in zip(streams, singles):
        assert (torch.cat(s.log_probs) - ref).abs().max() <= 1e-5


def test_streams_join_and_leave(bundle, audio):
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(endpoint=NO_ENDPOINT))
    a = rec.create_stream()
    a.accept_waveform(audio[:16000], 16000)
    rec.decode()
    b = rec.create_stream()
    b.accept_waveform(audio, 16000)
    rec.decode()
    rec.close_stream(a)
    assert list(rec.streams) == [b.id]
    with pytest.raises(ValueError, match="closed"):
        a.accept_waveform(audio[:10], 16000)
    b.input_finished()
    rec.decode()
    assert b.is_done


@pytest.mark.parametrize("beam", [1, 4])
def test_partial_is_the_text_of_the_result(bundle, audio, beam):
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(beam=beam, endpoint=NO_ENDPOINT))
    s = rec.create_stream()
    seen = []
    for start in range(0, audio.numel(), 2560):
        s.accept_waveform(audio[start : start + 2560], 16000)
        rec.decode([s])
        assert s.partial == s.result.partial
        seen.append(s.partial)
    assert any(seen)  # not a comparison of empty strings only


def test_bad_input_keeps_text_so_far(bundle, audio):
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(endpoint=NO_ENDPOINT))
    s = rec.create_stream()
    s.accept_waveform(audio[:24000], 16000)
    rec.decode([s])
    before = (s.result, s.state)
    bad = audio[:1600].clone()
    bad[5] = float("nan")
    with pytest.raises(ValueError, match="NaN|finite"):
        s.accept_waveform(bad, 16000)
    with pytest.raises(ValueError, match="sample_rate is required"):
        s.accept_waveform(audio[:1600], None)
    with pytest.raises(ValueError, match="no samples"):
        s.accept_waveform(audio[:0], 16000)
    with pytest.raises(ValueError, match="changed"):
        s.accept_waveform(audio[:1600], 48000)
    with pytest.raises(ValueError, match="exceeds"):
        s.accept_waveform(np.zeros(16000 * 601, dtype=np.float32), 16000)
    assert (s.result, s.state) == before
    # int16 and stereo input are accepted
    s.accept_waveform((audio[24000:25600].numpy() * 32767).astype(np.int16), 16000)
    s.accept_waveform(np.stack([audio[25600:27200].numpy()] * 2, axis=1), 16000)
    rec.decode([s])


def test_other_sample_rates_are_resampled(bundle, audio):
    import soxr

    at48 = torch.from_numpy(soxr.resample(audio.numpy(), 16000, 48000).astype(np.float32))
    s = _stream(bundle, at48.clamp(-1, 1), [4800, 1323], rate=48000)
    # resampled chunk by chunk vs the 16 kHz original: the same frames, logits close (different resamplers)
    full = _full_log_probs(bundle, audio)
    streamed = torch.cat(s.log_probs)
    assert streamed.shape == full.shape
    assert (streamed - full).abs().max() < 0.05


def test_endpoint_rules_produce_finals(bundle, audio):
    # Force the CTC head: blank everywhere -> rule 1 (no final); a letter everywhere -> rule 3 (max length).
    head = bundle.model.head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[bundle.tokenizer.blank_id] = 10.0
    ep = EndpointConfig(silence_without_speech=1.0, silence_after_speech=0.5, max_utterance=1.0)
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(endpoint=ep))
    s = rec.create_stream()
    s.accept_waveform(audio, 16000)
    rec.decode([s])
    assert s.result.finals == () and s.state.segment_start > 0
    with torch.no_grad():
        head.bias.fill_(-10.0)
        head.bias[5] = 10.0
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(endpoint=ep))  # it steps a snapshot of the weights
    s2 = rec.create_stream()
    s2.accept_waveform(audio, 16000)
    rec.decode([s2])
    assert len(s2.result.finals) >= 2
    assert all(f.endpoint == "max_utterance" for f in s2.result.finals)
    assert s2.result.finals[1].start == pytest.approx(s2.result.finals[0].end)


def test_bidirectional_model_refuses_to_stream():
    with pytest.raises(ValueError, match="cannot stream"):
        Recognizer(make_bundle(causal=False), device="cpu")


def _leaves(state):
    if isinstance(state, torch.Tensor):
        return [state]
    if state is None:
        return []
    return [leaf for part in state for leaf in _leaves(part)]


@pytest.mark.parametrize("overrides", [{}, {"attention": "softmax"}], ids=["linear", "softmax-kv"])
def test_batch_rows_equal_unstack_state(overrides):
    """The recognizer's per-stream views of a batched state (StreamBatch rows) hold what ``unstack_state`` copies
    out, and stack then unstack gives back each stream's state bit for bit."""
    from asr.model.encoder import unstack_state
    from asr.streaming.batch import StreamBatch

    model = make_bundle(**overrides).model
    g = torch.Generator().manual_seed(2)
    states = []
    with torch.inference_mode():
        for history in (1, 3, 2):  # different histories: the softmax caches have different lengths
            state = model.init_state(1)
            for _ in range(history):
                _, state = model.step(torch.randn(1, 8, 80, generator=g), state)
            states.append(state)
    batch = StreamBatch.stack(states)
    views, copies = batch.unstack(), unstack_state(batch.state)
    assert len(views) == 3 and batch.size == 3
    assert all(type(batch.row(b)) is type(views[b]) for b in range(3))
    for view, copy, original in zip(views, copies, states):
        assert type(view) is type(copy)
        for a, b, c in zip(_leaves(view), _leaves(copy), _leaves(original), strict=True):
            assert a.shape == b.shape == c.shape and torch.equal(a, b) and torch.equal(a, c)


def test_a_batch_kept_together_reuses_its_state_and_never_changes_a_state_read_out(bundle, audio):
    """Streams stepped together round after round continue one batch state (updated in place); reading a
    stream's ``state`` gives it its own views, which later steps never modify; results equal single streams."""
    clips = [audio[i * 4000 : i * 4000 + 16000 * 2] for i in range(4)]
    singles = [torch.cat(_stream(bundle, c, [2560]).log_probs) for c in clips]
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(keep_log_probs=True, endpoint=NO_ENDPOINT))
    streams = [rec.create_stream() for _ in clips]
    held = None
    for r, start in enumerate(range(0, clips[0].numel(), 2560)):
        for s, c in zip(streams, clips):
            s.accept_waveform(c[start : start + 2560], 16000)
        rec.decode(streams)
        if r == 2:
            assert streams[1].batch_row is not None and streams[1].batch_row[0] is streams[0].batch_row[0]  # one batch
        if r == 4:
            held = streams[1].state  # read out: this stream's own views from now on
            held_copy = [x.clone() for x in _leaves(held.encoder)]
    for s in streams:
        s.input_finished()
    rec.decode(streams)
    for s, ref in zip(streams, singles):
        assert (torch.cat(s.log_probs) - ref).abs().max() <= 1e-5
    assert all(torch.equal(a, b) for a, b in zip(_leaves(held.encoder), held_copy, strict=True))
