"""Streams the caller misuses or forgets (issue 15): the same stream twice in one step, a stream of another
recognizer, streams dropped without ``close_stream`` and finished streams: a clear error or a freed stream,
never a corrupted result or a stream kept forever."""

import gc
import weakref

import pytest
import torch

from asr.streaming import EndpointConfig, Recognizer, RecognizerConfig
from tests.asr.streaming.conftest import make_bundle

NO_ENDPOINT = EndpointConfig(enabled=False)


def _rec(bundle, **cfg):
    return Recognizer(bundle, device="cpu", config=RecognizerConfig(endpoint=NO_ENDPOINT, **cfg))


def _feed_all(rec, stream, samples, chunk=2560):
    for start in range(0, samples.numel(), chunk):
        stream.accept_waveform(samples[start : start + chunk], 16000)
        rec.decode([stream])
    stream.input_finished()
    rec.decode([stream])
    return stream.result


def test_the_same_stream_twice_in_one_step_is_refused_and_nothing_changes(bundle, audio):
    rec = _rec(bundle, keep_log_probs=True)
    reference = _feed_all(rec, rec.create_stream(), audio)
    s = rec.create_stream()
    s.accept_waveform(audio[:16000], 16000)
    rec.decode([s])
    before = (s.result, len(s.log_probs))
    s.accept_waveform(audio[16000:32000], 16000)
    with pytest.raises(ValueError, match=rf"stream {s.id} .*twice"):
        rec.decode([s, s])
    assert (s.result, len(s.log_probs)) == before  # nothing stepped
    s.accept_waveform(audio[32000:], 16000)
    s.input_finished()
    rec.decode([s])
    assert s.result == reference  # the stream goes on as if the bad call had never happened


def test_a_stream_of_another_recognizer_is_a_clear_error(audio):
    small, other = make_bundle(), make_bundle(d_model=48, num_heads=3)
    rec_a, rec_b = _rec(small), _rec(other)
    foreign = rec_b.create_stream()
    own = rec_a.create_stream()
    foreign.accept_waveform(audio[:8000], 16000)
    own.accept_waveform(audio[:8000], 16000)
    with pytest.raises(ValueError, match=rf"stream {foreign.id} belongs to another Recognizer"):
        rec_a.decode([own, foreign])
    assert rec_a.decode([own]) == [own]  # the recognizer still works for its own streams
    # the same model in two recognizers: still refused (each recognizer owns its streams' states)
    with pytest.raises(ValueError, match="another Recognizer"):
        _rec(small).decode([own])


def test_streams_dropped_without_close_are_released(bundle, audio):
    rec = _rec(bundle)
    refs = []
    for i in range(30):
        s = rec.create_stream()
        s.accept_waveform(audio[: 4000 + 800 * i], 16000)
        rec.decode([s])
        refs.append(weakref.ref(s))
        del s
    batch = [rec.create_stream() for _ in range(5)]
    for s in batch:
        s.accept_waveform(audio[:16000], 16000)
    rec.decode(batch)  # one batch state shared by five rows
    refs += [weakref.ref(s) for s in batch]
    del batch, s
    gc.collect()
    assert [r for r in refs if r() is not None] == []
    assert len(rec.streams) == 0
    kept = rec.create_stream()
    assert list(rec.streams) == [kept.id]  # a stream the caller holds stays registered


def test_finished_streams_are_released_and_keep_their_result(bundle, audio):
    rec = _rec(bundle)
    streams = [rec.create_stream() for _ in range(3)]
    for s in streams:
        s.accept_waveform(audio, 16000)
    rec.decode(streams)
    streams[0].input_finished()
    rec.decode()  # every registered stream; only the first is done
    done = streams[0]
    assert done.is_done and done.id not in rec.streams
    assert sorted(rec.streams) == sorted(s.id for s in streams[1:])
    assert not done.holds_state and done.batch_row is None  # its encoder state (or batch row) is freed
    with pytest.raises(ValueError, match="freed"):
        done.state  # noqa: B018
    text = done.result.text
    assert rec.decode([done]) == [] and done.result.text == text  # decoding it again is harmless
    with pytest.raises(ValueError, match="input_finished"):
        done.accept_waveform(audio[:100], 16000)
    rec.close_stream(done)  # closing a released stream is fine too
    for s in streams[1:]:
        s.input_finished()
    rec.decode(streams[1:])
    assert len(rec.streams) == 0


def test_a_dropped_stream_frees_its_memory(bundle, audio):
    """Memory held by a recognizer stays flat while streams come and go without close_stream."""
    rec = _rec(bundle)

    def churn(n):
        for _ in range(n):
            s = rec.create_stream()
            s.accept_waveform(audio[:8000], 16000)
            rec.decode([s])

    churn(5)
    gc.collect()
    tensors_before = sum(1 for o in gc.get_objects() if type(o) is torch.Tensor)
    churn(50)
    gc.collect()
    tensors_after = sum(1 for o in gc.get_objects() if type(o) is torch.Tensor)
    assert tensors_after - tensors_before < 10
