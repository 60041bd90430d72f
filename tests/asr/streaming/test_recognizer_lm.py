"""The recognizer with a lexicon + n-gram LM decoder: each stream's own search, equal to full-utterance decoding."""

import pytest
import torch

from asr.decoding.lm_decoder import LMDecoder, LMDecoderConfig, LMDecoderState
from asr.streaming import EndpointConfig, Recognizer, RecognizerConfig
from asr.text.phones import PhoneTokenizer
from tests.asr.lm._lm_fixtures import tiny_lm
from tests.asr.streaming.test_recognizer import NO_ENDPOINT, _full_log_probs


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from asr.text.chars import CharTokenizer

    arpa, lexicon = tiny_lm(tmp_path_factory.mktemp("lm"))
    # a random tiny model spells nothing in particular: a word bonus makes the search put words there
    config = LMDecoderConfig(lm=str(arpa), lexicon=str(lexicon), word_score=4.0, commit_every=7)
    return LMDecoder(config, CharTokenizer())


def _stream(bundle, lm, samples, sizes, endpoint=NO_ENDPOINT):
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(keep_log_probs=True, endpoint=endpoint), lm=lm)
    s = rec.create_stream()
    start, i = 0, 0
    while start < samples.numel():
        n = sizes[i % len(sizes)]
        s.accept_waveform(samples[start : start + n], 16000)
        rec.decode([s])
        start, i = start + n, i + 1
    s.input_finished()
    rec.decode([s])
    return rec, s


@pytest.mark.parametrize("sizes", [[160], [593], [32000], [1, 7, 1000, 4000, 333, 160, 24000]],
                         ids=["10ms", "37ms", "2s", "irregular"])
def test_streamed_lm_transcript_equals_full_utterance(bundle, audio, lm, sizes):
    full = lm.decode(_full_log_probs(bundle, audio).float())
    _, s = _stream(bundle, lm, audio, sizes)
    (segment,) = s.result.finals
    assert segment.words, "the test needs some words to compare"
    assert segment.text == full.text(lm.tokenizer)
    spf, end = bundle.seconds_per_frame, audio.numel() / 16000  # no time past the audio (the tail padding's frames)
    assert [(w.text, w.start, w.end) for w in segment.words] == [
        (w.text, round(min(w.start * spf, end), 3), round(min(w.end * spf, end), 3)) for w in full.words
    ]
    assert segment.end == round(end, 3) and max(w.end for w in segment.words) <= end
    # the stream's own log-probs, decoded in one go: the same hypothesis to the last confidence
    again = lm.decode(torch.cat(s.log_probs))
    assert segment.confidences == again.confidences
    assert [w.confidence for w in segment.words] == [round(w.confidence, 4) for w in again.words]


def test_partials_come_from_the_search_and_finals_reset_it(bundle, audio, lm):
    rec = Recognizer(
        bundle, device="cpu", lm=lm,
        config=RecognizerConfig(keep_log_probs=True, endpoint=EndpointConfig(max_utterance=1.0)),
    )
    s = rec.create_stream()
    partials = []
    for start in range(0, audio.numel(), 2560):
        s.accept_waveform(audio[start : start + 2560], 16000)
        rec.decode([s])
        partials.append(s.result.partial)
        assert s.partial == partials[-1]  # the text-only accessor the server reads
        decoder = s.state.decoder
        assert isinstance(decoder, LMDecoderState) and not decoder.finished
        assert decoder.start == s.state.segment_start  # a fresh search began at the last endpoint
    s.input_finished()
    rec.decode([s])
    finals = s.result.finals
    assert len(finals) >= 2 and {f.endpoint for f in finals[:-1]} == {"max_utterance"}
    assert any(partials)
    lp = torch.cat(s.log_probs)
    spf = bundle.seconds_per_frame
    assert finals[-1].end == round(audio.numel() / 16000, 3)  # the last one ends where the audio does
    for seg in finals:  # each final = a fresh search over exactly its segment's frames
        a, b = round(seg.start / spf), round(seg.end / spf)
        if seg.endpoint == "input_finished":
            b = lp.shape[0]  # its frames run on into the tail padding
        hyp = lm.decode(lp[a:b])
        assert seg.text == hyp.text(lm.tokenizer)
        end = seg.end if seg.endpoint == "input_finished" else float("inf")  # no time past the audio's end
        assert [w.start for w in seg.words] == [round(min((w.start + a) * spf, end), 3) for w in hyp.words]


def test_batched_streams_each_run_their_own_search(bundle, audio, lm):
    clips = [audio[: 16000 * 2], 0.5 * audio.flip(0)]
    singles = [_stream(bundle, lm, c, [480])[1].result.text for c in clips]
    rec = Recognizer(bundle, device="cpu", config=RecognizerConfig(endpoint=NO_ENDPOINT), lm=lm)
    streams = [rec.create_stream() for _ in clips]
    for start in range(0, max(c.numel() for c in clips), 480):
        for s, c in zip(streams, clips):
            if start < c.numel():
                s.accept_waveform(c[start : start + 480], 16000)
        rec.decode(streams)
    for s in streams:
        s.input_finished()
    rec.decode(streams)
    assert [s.result.text for s in streams] == singles


def test_recognizer_refuses_a_mismatched_decoder(bundle, lm, tmp_path):
    with pytest.raises(ValueError, match="choose one decoder"):
        Recognizer(bundle, device="cpu", config=RecognizerConfig(beam=4), lm=lm)
    from asr.decoding.lexicon import spell_words, write_lexicon

    tok = PhoneTokenizer()
    write_lexicon(tmp_path / "p.lex", spell_words(["CAT"], tok)[0])
    with pytest.raises(ValueError, match="another tokenizer"):
        Recognizer(bundle, device="cpu", lm=LMDecoder(LMDecoderConfig(lexicon=str(tmp_path / "p.lex")), tok))
