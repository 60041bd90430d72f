"""The bad-input matrix of the streaming API (issue 15): every misuse of ``Stream.accept_waveform`` and
``Recognizer.decode`` is a ValueError that names the problem, and the stream keeps everything it had (its text so
far, its state) and goes on to the same transcript as if the bad call had never been made. Odd rates, widths and
layouts give the 16 kHz file's words. The rows are also docs/reliability.md's (tests/asr/test_reliability_doc.py).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soxr
import torch

from asr.streaming import Recognizer
from asr.streaming.recognizer import MAX_CHUNK_SECONDS
from tests.asr._bad_inputs import Case
from tests.asr.live.conftest import SAMPLE_RATE, burst_speech, make_band_model
from tests.asr.streaming.conftest import make_bundle

WORDS = ["CAB", "BAC"]  # bands A-C: all under the 4 kHz of 8 kHz audio (D is above)
AREA = "streaming API"


def _nan(x):
    x = x.copy()
    x[7] = np.nan
    return x


def _inf(x):
    x = x.copy()
    x[-1] = -np.inf
    return x


# (case, the bad call on (recognizer, stream, a chunk of good samples), the message it must raise)
BAD_CALLS: list[tuple[Case, object, str]] = [
    (Case("nan", AREA, "a chunk with a NaN sample", "ValueError naming the NaN/inf samples; nothing changes"),
     lambda r, s, x: s.accept_waveform(_nan(x), SAMPLE_RATE), "NaN/inf"),
    (Case("inf", AREA, "a chunk with an inf sample", "ValueError; nothing changes"),
     lambda r, s, x: s.accept_waveform(_inf(x), SAMPLE_RATE), "NaN/inf"),
    (Case("empty", AREA, "an empty chunk", "ValueError 'no samples'; nothing changes"),
     lambda r, s, x: s.accept_waveform(x[:0], SAMPLE_RATE), "no samples"),
    (Case("3d", AREA, "a 3-D array", "ValueError naming the shape; nothing changes"),
     lambda r, s, x: s.accept_waveform(x.reshape(1, -1, 1), SAMPLE_RATE), "expected [N] or 2-D"),
    (Case("channels-swapped", AREA, "[C, N] stereo passed as [N, C]",
          "ValueError suggesting channels_first=True; nothing changes"),
     lambda r, s, x: s.accept_waveform(np.stack([x, x]), SAMPLE_RATE), "channels_first=True"),
    (Case("no-rate", AREA, "sample_rate None", "ValueError 'sample_rate is required'; nothing changes"),
     lambda r, s, x: s.accept_waveform(x, None), "sample_rate is required"),
    (Case("zero-rate", AREA, "sample_rate 0", "ValueError naming the rate; nothing changes"),
     lambda r, s, x: s.accept_waveform(x, 0), "positive integer"),
    (Case("float-rate", AREA, "sample_rate 16000.5", "ValueError naming the rate; nothing changes"),
     lambda r, s, x: s.accept_waveform(x, 16000.5), "positive integer"),
    (Case("rate-change", AREA, "the sample rate changed mid-stream", "ValueError naming both rates; nothing changes"),
     lambda r, s, x: s.accept_waveform(x, 48000), "changed from 16000 Hz to 48000 Hz"),
    (Case("dtype", AREA, "int64 samples", "ValueError naming the dtype; nothing changes"),
     lambda r, s, x: s.accept_waveform((x * 1000).astype(np.int64), SAMPLE_RATE), "unsupported sample dtype"),
    (Case("not-array", AREA, "a list instead of an array", "ValueError naming the type; nothing changes"),
     lambda r, s, x: s.accept_waveform(list(x), SAMPLE_RATE), "numpy array or torch tensor"),
    (Case("huge-chunk", AREA, f"one chunk over {MAX_CHUNK_SECONDS:.0f} s", "ValueError; nothing changes"),
     lambda r, s, x: s.accept_waveform(np.zeros(int(SAMPLE_RATE * (MAX_CHUNK_SECONDS + 1)), np.float32), SAMPLE_RATE),
     "exceeds"),
    (Case("twice", AREA, "the same stream twice in one decode()", "ValueError naming the stream; nothing stepped",
          issue="15.2"),
     lambda r, s, x: r.decode([s, s]), "passed twice"),
    (Case("foreign", AREA, "a stream of another Recognizer (another model) in decode()",
          "ValueError 'belongs to another Recognizer'; nothing stepped", issue="15.14"),
     lambda r, s, x: r.decode([s, Recognizer(make_bundle(), device="cpu").create_stream()]),
     "belongs to another Recognizer"),
    (Case("not-a-stream", AREA, "something else than a Stream in decode()", "ValueError naming its type"),
     lambda r, s, x: r.decode([s, "stream"]), "expected a Stream"),
]


band = pytest.fixture(scope="module", name="band")(lambda: make_band_model())  # the hand-set model
speech = pytest.fixture(scope="module", name="speech")(lambda: burst_speech(WORDS, seed=7))  # it hears WORDS


def _finish(rec, stream, samples, chunk=2560):
    for start in range(0, len(samples), chunk):
        stream.accept_waveform(samples[start : start + chunk], SAMPLE_RATE)
        rec.decode([stream])
    stream.input_finished()
    rec.decode([stream])
    return [seg.text for seg in stream.result.finals]


@pytest.mark.parametrize("case, call, message", BAD_CALLS, ids=[c.name for c, _, _ in BAD_CALLS])
def test_bad_call_is_refused_and_the_stream_goes_on(case, call, message, band, speech):
    rec = Recognizer(band, device="cpu")
    s = rec.create_stream()
    half = len(speech) // 2
    for start in range(0, half, 2560):  # the first word and a bit
        s.accept_waveform(speech[start : min(start + 2560, half)], SAMPLE_RATE)
        rec.decode([s])
    before = (s.result, s.samples_received, len(s.finals))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(rec, s, speech[half : half + 1600])
    assert (s.result, s.samples_received, len(s.finals)) == before  # nothing changed
    assert _finish(rec, s, speech[half:]) == WORDS  # and nothing was lost


ODD_INPUTS = [
    (Case("rate-8k", AREA, "8 kHz int16 chunks", "the 16 kHz file's words"),
     lambda x: ((soxr.resample(x, SAMPLE_RATE, 8000) * 32767).astype(np.int16), 8000)),
    (Case("rate-44k", AREA, "44.1 kHz float64 chunks", "the 16 kHz file's words"),
     lambda x: (soxr.resample(x, SAMPLE_RATE, 44100).astype(np.float64), 44100)),
    (Case("stereo", AREA, "[N, 2] stereo chunks", "the 16 kHz file's words"),
     lambda x: (np.stack([x, x], axis=1), SAMPLE_RATE)),
    (Case("uint8", AREA, "8-bit unsigned chunks", "the 16 kHz file's words"),
     lambda x: (np.clip(x * 128 + 128, 0, 255).astype(np.uint8), SAMPLE_RATE)),
    (Case("float16-tensor", AREA, "a float16 torch tensor", "the 16 kHz file's words"),
     lambda x: (torch.from_numpy(x).half(), SAMPLE_RATE)),
]


@pytest.mark.parametrize("case, make", ODD_INPUTS, ids=[c.name for c, _ in ODD_INPUTS])
def test_odd_rates_widths_and_layouts_give_the_same_words(case, make, band, speech):
    samples, rate = make(speech)
    rec = Recognizer(band, device="cpu")
    s = rec.create_stream()
    step = rate // 10
    for start in range(0, len(samples), step):
        s.accept_waveform(samples[start : start + step], rate)
        rec.decode([s])
    s.input_finished()
    rec.decode([s])
    assert [seg.text for seg in s.result.finals] == WORDS


SHORT = Case("short", AREA, "10 ms of audio, then input_finished()", "an empty result, as full decoding gives",
             issue="15.1")


def test_short_audio_gives_an_empty_result(band):
    rec = Recognizer(band, device="cpu")
    s = rec.create_stream()
    s.accept_waveform(np.full(160, 0.1, dtype=np.float32), SAMPLE_RATE)
    s.input_finished()
    rec.decode([s])
    assert s.result.text == "" and s.is_done


CLOSED = Case("closed", AREA, "feeding a closed or finished stream",
              "ValueError 'is closed' / 'input_finished() was called'; the result stays readable")


def test_closed_and_finished_streams_refuse_audio_and_keep_their_result(band, speech):
    rec = Recognizer(band, device="cpu")
    s = rec.create_stream()
    words = _finish(rec, s, speech)
    with pytest.raises(ValueError, match="input_finished"):
        s.accept_waveform(speech[:100], SAMPLE_RATE)
    rec.close_stream(s)
    with pytest.raises(ValueError, match="is closed"):
        s.accept_waveform(speech[:100], SAMPLE_RATE)
    with pytest.raises(ValueError, match="is closed"):
        rec.decode([s])
    assert [seg.text for seg in s.result.finals] == words == WORDS


_HERE = "tests/asr/streaming/test_stream_matrix.py"
_LIFECYCLE = "tests/asr/streaming/test_stream_lifecycle.py"
CASES: list[Case] = [
    *(replace(c, proof=f"{_HERE}::test_bad_call_is_refused_and_the_stream_goes_on[{c.name}]") for c, *_ in BAD_CALLS),
    *(replace(c, proof=f"{_HERE}::test_odd_rates_widths_and_layouts_give_the_same_words[{c.name}]")
      for c, _ in ODD_INPUTS),
    replace(SHORT, proof=f"{_HERE}::test_short_audio_gives_an_empty_result"),
    replace(CLOSED, proof=f"{_HERE}::test_closed_and_finished_streams_refuse_audio_and_keep_their_result"),
    Case("dropped", AREA, "streams dropped without close_stream", "freed with their state (weak references)",
         issue="15.3", proof=f"{_LIFECYCLE}::test_streams_dropped_without_close_are_released"),
    Case("finished", AREA, "finished streams never closed",
         "released from Recognizer.streams, encoder state freed; result readable", issue="15.3",
         proof=f"{_LIFECYCLE}::test_finished_streams_are_released_and_keep_their_result"),
]
