"""The page at ``/`` in a real browser: headless Chromium whose fake microphone plays a WAV file of band-noise
"words" (the band model of tests/asr/live/conftest.py decodes each burst to one letter, robustly against
Chromium's resampling to its device rate and the capture's start offset). The page's finals must be the finals
``asr transcribe --stream`` prints for the same file, repeated as the fake device loops it, at times that
differ from the file's by one constant offset per loop (so no audio was lost or doubled on the way)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.pipeline import save_asr_model
from asr.serve.browser import open_page, wait_until
from tests.asr.live.conftest import SAMPLE_RATE, burst_speech
from tests.asr.serve.conftest import running_server

REPO = Path(__file__).resolve().parents[3]
WORDS = ["CAB", "DAD", "ACDC"]


@pytest.mark.slow
def test_the_page_transcribes_the_microphone_like_transcribe_stream(band_model, tmp_path):
    ckpt = save_asr_model(tmp_path / "band.safetensors", band_model)
    audio = burst_speech(WORDS, seed=5, lead_s=1.5)  # the capture starts late by up to ~1 s: silence there
    wav = tmp_path / "words.wav"
    sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
    period = len(audio) / SAMPLE_RATE
    cli = subprocess.run(
        [sys.executable, "-m", "asr.cli", "transcribe", "--stream", "--no-lm", "--json", "--model", str(ckpt),
         str(wav)], capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    expected = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [f["text"] for f in expected] == WORDS

    with running_server(band_model) as server, open_page(server.url, wav) as page:
        page.click("#start")
        # a full loop of the file and the first final of the next one
        wait_until(page, lambda s: len(s["finals"]) > len(WORDS) and s["partial"] == "", timeout=period * 2 + 10)
        page.screenshot(path=str(tmp_path / "page.png"))  # kept with the test's files when it fails
        mics = page.eval_on_selector_all("#mic option", "options => options.map(o => o.textContent)")
        readout = page.inner_text("#latency")
        page.click("#stop")
        state = wait_until(page, lambda s: s["closeCode"] is not None, timeout=15)
        assert server.wait_idle() == 0 and not server.engine.recognizer.streams
    assert state["errors"] == [] and state["closeCode"] == 1000 and state["done"]["reason"] == "stop"
    # Chromium runs the capture at the model's rate (it resamples the microphone), so the page sends whole chunks
    assert state["sampleRate"] == SAMPLE_RATE and state["messageMs"] == 160, (state["sampleRate"], state["messageMs"])
    heard = [f for f in state["finals"] if f["endpoint"] == "silence_after_speech"]  # not the one Stop cut short
    assert len(heard) > len(WORDS)
    first = WORDS.index(heard[0]["text"])  # the capture may begin mid-file only within the lead silence
    assert first == 0, [f["text"] for f in heard]
    for i, final in enumerate(heard):
        assert final["text"] == expected[i % len(WORDS)]["text"], [f["text"] for f in heard]
    # each word sits where the file has it, shifted by one constant capture offset and by the loops: first token
    # times within 2 model frames (the offset is not a whole frame); endpoints fire after a step, so within a chunk
    offsets, end_offsets = [], []
    for i, final in enumerate(heard):
        shift = (i // len(WORDS)) * period
        want = expected[i % len(WORDS)]
        offsets.append(final["token_times"][0] - want["token_times"][0] - shift)
        end_offsets.append(final["end"] - want["end"] - shift)
    assert max(offsets) - min(offsets) <= 0.08 + 1e-6, offsets
    assert max(end_offsets) - min(end_offsets) <= 0.2 + 1e-6 and abs(np.mean(end_offsets) - np.mean(offsets)) < 0.2
    assert -1.5 < np.mean(offsets) < 0.5, offsets
    assert state["latencies"] and 0 < np.median(state["latencies"]) < 1500 and readout.endswith(" ms")
    assert state["peakDb"] > -30  # the level meter saw the bursts
    assert any("Fake" in m for m in mics), mics  # the microphone list names the (fake) devices
