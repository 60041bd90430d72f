"""Whole-utterance decoding of any length (issue 15): audio under one model frame decodes as streaming does, long
audio runs in bounded pieces with the same numbers, a bidirectional model refuses what it cannot hold; the tail
padding adds frames after the audio only; and the device is checked before a model is read."""

import pytest
import torch

from asr.decoding import beam_search, greedy_search
from asr.pipeline import TAIL_PADDING_SECONDS, load_asr_model, resolve_device, save_asr_model
from asr.streaming import EndpointConfig, Recognizer
from tests.asr.streaming import conftest as _streaming
from tests.asr.streaming.conftest import make_bundle

bundle, audio = _streaming.bundle, _streaming.audio  # the streaming tests' fixtures


@pytest.mark.parametrize("n", [0, 1, 160, 399, 400, 560, 880])  # 0-3 feature frames; 880 samples = 4 frames
def test_audio_under_one_model_frame_decodes_like_streaming(bundle, n):
    """However short the audio, the tail padding (TAIL_PADDING_SECONDS of silence) follows it in both forms."""
    samples = 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(n)) if n else torch.zeros(0)
    lp = bundle.utterance_log_probs(samples)
    frames = bundle.features.num_frames(n + int(TAIL_PADDING_SECONDS * 16000)) // 4
    assert lp.shape == (frames, bundle.tokenizer.vocab_size)
    if n:  # (validate_waveform refuses 0 samples before they get here in the commands)
        text, hyp = bundle.transcribe(samples)
        rec = Recognizer(bundle, device="cpu", endpoint=EndpointConfig(enabled=False))
        s = rec.create_stream()
        s.accept_waveform(samples, 16000)
        s.input_finished()
        rec.decode([s])
        assert s.result.text == text  # the same as streaming


def test_a_batch_of_only_short_clips_has_no_frames(bundle):
    feats = torch.zeros(3, 2, 80)
    lp, n = bundle.log_probs(feats, torch.tensor([0, 1, 2]))
    assert lp.shape == (3, 0, bundle.tokenizer.vocab_size) and n.tolist() == [0, 0, 0]
    empty = torch.zeros(0, bundle.tokenizer.vocab_size)
    assert greedy_search(empty).tokens == () and beam_search(empty, beam=4).tokens == ()


def test_long_audio_runs_in_pieces_with_the_forward_numbers(bundle, audio):
    whole = bundle.utterance_log_probs(audio)  # 3 s in one forward
    for piece in (0.5, 1.01, 2.0):
        stepped = bundle.utterance_log_probs(audio, long_seconds=piece)
        assert stepped.shape == whole.shape
        assert (stepped - whole).abs().max() <= 1e-4


def test_a_bidirectional_model_refuses_audio_it_cannot_hold(audio):
    bundle = make_bundle(causal=False)
    assert bundle.utterance_log_probs(audio, long_seconds=1.0).shape[0] > 0  # no stepping without causality
    with pytest.raises(ValueError, match="too long for this bidirectional model.*split the file"):
        bundle.utterance_log_probs(audio, long_seconds=1.0, max_bidirectional_seconds=2.0)


def test_devices_are_checked_before_the_file_is_read(tmp_path, monkeypatch):
    path = save_asr_model(tmp_path / "m.safetensors", make_bundle())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name, message in [("cuda", "CUDA is not available"), ("cuda:1", "CUDA is not available"),
                          ("gpu", "unknown device 'gpu'"), ("meta", "only cpu and cuda")]:
        with pytest.raises(ValueError, match=message):
            resolve_device(name)
        with pytest.raises(ValueError, match=message):
            load_asr_model(tmp_path / "never-read.safetensors", device=name)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert load_asr_model(path, device="auto").device == torch.device("cpu")


def test_transcribe_reads_and_decodes_a_long_file_in_blocks(tmp_path, monkeypatch, capsys):
    """asr transcribe: a file longer than LONG_SECONDS is read block by block (memory bounded by the block: a
    60-minute file measured 0.92 GB peak RSS against 6.6 GB before) with the text of the whole-file path."""
    import soundfile as sf

    import asr.audio
    import asr.pipeline
    from asr.cli import main
    from tests.asr.live.conftest import SAMPLE_RATE, burst_speech, make_band_model

    model = save_asr_model(tmp_path / "band.safetensors", make_band_model())
    wav = tmp_path / "words.wav"
    sf.write(wav, burst_speech(["CAB", "DAD", "ACDC"], seed=2), SAMPLE_RATE)
    assert main(["transcribe", "--model", str(model), str(wav)]) == 0
    whole = capsys.readouterr().out
    blocks = []
    original = asr.audio.read_audio_blocks

    def counted(*args, **kwargs):
        for block in original(*args, **kwargs):
            blocks.append(block.shape[0])
            yield block

    monkeypatch.setattr(asr.audio, "read_audio_blocks", counted)
    monkeypatch.setattr(asr.pipeline, "LONG_SECONDS", 1.0)
    assert main(["transcribe", "--model", str(model), str(wav)]) == 0
    assert capsys.readouterr().out == whole == "CABDADACDC\n" and len(blocks) > 3


def test_tail_padding_only_adds_frames_after_the_audio(bundle, audio):
    """A causal model's full-utterance output with the tail padding begins with its output without it, frame for
    frame: the padding adds frames after the audio (where a last phone still comes out) and changes none before."""
    assert bundle.model.config.causal
    feats = bundle.featurize(audio)
    plain, n = bundle.log_probs(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
    plain = plain[0, : int(n[0])].float()
    padded = bundle.utterance_log_probs(audio)
    extra = bundle.features.num_frames(audio.numel() + int(TAIL_PADDING_SECONDS * 16000)) // 4 - plain.shape[0]
    assert extra >= 4 and padded.shape[0] == plain.shape[0] + extra  # 0.2 s: 5 model frames of 40 ms
    torch.testing.assert_close(padded[: plain.shape[0]], plain, rtol=1e-5, atol=1e-5)
    a, b = greedy_search(plain).tokens, greedy_search(padded).tokens
    assert b[: len(a)] == a  # greedy text can only grow at its end
