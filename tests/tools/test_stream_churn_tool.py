"""tools/stream_churn.py on a tiny model and a few dozen streams (the 1,000-stream run is not a test)."""

from __future__ import annotations

import json

import soundfile as sf
import torch

from asr.pipeline import save_asr_model
from tests.asr.live.conftest import SAMPLE_RATE, burst_speech, make_band_model
from tests.tools import load_tool

tool = load_tool("stream_churn")


def test_dropped_streams_leave_memory_flat(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # main() would set the session's thread count
    model = save_asr_model(tmp_path / "band.safetensors", make_band_model())
    audio = tmp_path / "words.wav"
    sf.write(audio, burst_speech(["CAB"], seed=0, lead_s=0.1, pause_s=0.2), SAMPLE_RATE)
    out = tmp_path / "churn"
    argv = ["--model", str(model), "--audio", str(audio), "--seconds", "0.6", "--streams", "40", "--concurrent", "4",
            "--sample-every", "8", "--warmup", "8", "--max-growth-mib", "30", "--out", str(out), "--no-progress"]
    assert tool.main(argv) == 0
    report = json.loads((out / "stream_churn.json").read_text())
    assert report["verdict"]["flat"] and report["verdict"]["max_registered"] == 0
    assert [r["streams_done"] for r in report["samples"]] == [8, 16, 24, 32, 40]


def test_the_verdict_catches_streams_left_registered_or_memory_growing():
    def rows(rss_mib, registered):
        return [{"streams_done": 10 * (k + 1), "rss_bytes": int(m * 2**20), "tensors": 100, "registered": n}
                for k, (m, n) in enumerate(zip(rss_mib, registered))]

    assert tool.verdict(rows([100, 101, 101], [0, 0, 0]), warmup=10, max_growth_mib=5, concurrent=4)["flat"]
    assert not tool.verdict(rows([100, 150, 200], [0, 0, 0]), warmup=10, max_growth_mib=5, concurrent=4)["flat"]
    assert not tool.verdict(rows([100, 100, 100], [10, 20, 30]), warmup=10, max_growth_mib=5, concurrent=4)["flat"]
