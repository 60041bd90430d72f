"""tools/long_stream.py on tiny models and a few generated utterances (the 30-minute run is not a test)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.data.sources import load_utterances
from asr.pipeline import save_asr_model
from tests.asr.live.conftest import SAMPLE_RATE, burst_speech, make_band_model
from tests.asr.streaming.conftest import make_bundle
from tests.tools import load_tool

tool = load_tool("long_stream")

# What each utterance says (band-burst letters, one word each) and its reference: two references differ
# from the audio, so the separate decodes of the band model have a non-zero WER.
WORDS = {"u0": ("AB", "AB"), "u1": ("CAD", "CA D"), "u2": ("BD", "BD"), "u3": ("DCBA", "DCBA X")}


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """main() sets torch's thread count: restore it for the rest of the session."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def manifest(tmp_path):
    rows = []
    for i, (uid, (word, ref)) in enumerate(WORDS.items()):
        audio = burst_speech([word], seed=i, lead_s=0.2, pause_s=0.3)
        path = tmp_path / f"{uid}.wav"
        sf.write(path, audio, SAMPLE_RATE)
        rows.append({"id": uid, "audio": str(path), "duration": len(audio) / SAMPLE_RATE, "text": ref,
                     "speaker": "s"})  # fmt: skip
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path, name, model, manifest, *extra):
    out = tmp_path / name
    rc = tool.main(["--model", str(model), "--data", str(manifest), "--out", str(out), "--no-progress",
                    "--sample-every-s", "2", "--replay-rounds", "5", *extra])  # fmt: skip
    assert rc == 0
    return out, json.loads((out / "long_stream.json").read_text())


def test_random_model_stream_has_fixed_state_all_chunks_and_is_deterministic(tmp_path, manifest):
    model = save_asr_model(tmp_path / "random.safetensors", make_bundle())
    args = ("--minutes", "0.3", "--pause-s", "0.3-0.8", "--pause-noise", "0.001", "--seed", "3")
    out, a = _run(tmp_path, "a", model, manifest, *args)
    _, b = _run(tmp_path, "b", model, manifest, *args)
    keys = {"command", "settings", "machine", "stream", "wer", "memory", "latency", "timeline", "transcript"}
    assert keys <= set(a)
    assert {"separate", "stream", "relative_difference", "within_5pct_relative"} <= set(a["wer"])
    assert {"first_median_s", "last_median_s", "ratio_last_first"} <= set(a["latency"])
    replay = a["latency"]["replay"]
    assert replay["rounds"] == 5 and replay["first_cpu_median_s"] > 0 and replay["end_cpu_median_s"] > 0
    st, mem, lat = a["stream"], a["memory"], a["latency"]
    assert st["duration_s"] >= 18.0 and st["cycles"] > 1  # 4 short utterances: the set is cycled through
    assert st["samples"] == round(st["duration_s"] * SAMPLE_RATE)
    assert lat["chunks"] == math.ceil(st["samples"] / a["settings"]["chunk_samples"])
    assert a["settings"]["chunk_samples"] == 2560  # 160 ms at 16 kHz
    # fixed-size state: the same bytes at every sample, start (after the first window) and end
    assert mem["encoder_state_start_bytes"] == mem["encoder_state_end_bytes"] > 0
    assert {s["encoder_state_bytes"] for s in a["timeline"]} == {mem["encoder_state_end_bytes"]}
    assert mem["encoder_state_constant"]
    assert mem["end_t_s"] == pytest.approx(st["duration_s"], abs=1e-3) and mem["rss_start_bytes"] > 0
    assert len(a["timeline"]) >= st["duration_s"] // 2
    # determinism: the same settings give the same stream and the same transcript
    assert a["transcript"] == b["transcript"] and a["wer"] == b["wer"] and a["stream"] == b["stream"]
    assert (out / "long_stream.png").stat().st_size > 0
    assert len((out / "utterances.jsonl").read_text().splitlines()) == st["occurrences"]
    assert len((out / "segments.jsonl").read_text().splitlines()) == st["segments"]


def test_band_model_stream_transcript_equals_the_separate_decodes(tmp_path, manifest, capsys):
    """A model whose text depends only on the bursts: with pauses longer than the endpoint, every utterance
    becomes one final segment and the stream must say exactly what the separate decodes say."""
    model = save_asr_model(tmp_path / "band.safetensors", make_band_model())
    out, res = _run(tmp_path, "band", model, manifest, "--minutes", "0.4", "--pause-s", "1.2-1.6")
    wer, st = res["wer"], res["stream"]
    rows = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    assert [r["separate_hyp"] for r in rows] == [WORDS[r["id"]][0] for r in rows]  # the band model works
    assert res["transcript"] == " ".join(r["separate_hyp"] for r in rows)
    assert st["segments"] == st["occurrences"] == wer["identical_by_time"] == len(rows)
    assert wer["separate"] > 0 and wer["stream"] == wer["separate_joined"]
    assert wer["relative_difference_joined"] == 0.0 and wer["stream_by_time"] == wer["separate"]
    assert wer["within_5pct_relative"]
    assert "relative difference" in capsys.readouterr().out


def test_signal_is_seeded_cycles_and_places_every_utterance(manifest):
    utts = load_utterances(manifest)
    audio = {u.id: u.load_audio(target_sr=SAMPLE_RATE) for u in utts}
    kw = dict(seconds=20.0, pause_s=(0.5, 1.0), pause_noise=0.0, sample_rate=SAMPLE_RATE)
    sig = tool.build_signal(utts, seed=1, **kw)
    x = sig.samples
    assert x.numel() >= 20 * SAMPLE_RATE and sig.cycles >= 2 and len(sig.pauses_s) == len(sig.placements) + 1
    assert all(0.5 - 1e-4 <= p <= 1.0 + 1e-4 for p in sig.pauses_s)
    for p in sig.placements:
        assert torch.equal(x[p.start : p.end], audio[p.utt_id])
        assert p.region_start <= p.start < p.end <= p.region_end
    assert sig.placements[-1].region_end == x.numel() and sig.placements[0].region_start == 0
    gaps = np.concatenate([x[: sig.placements[0].start]] + [x[a.end : b.start] for a, b in
                          zip(sig.placements, sig.placements[1:])])  # fmt: skip
    assert not gaps.any()  # digital silence between utterances
    # each pass holds every utterance once
    first = [p.utt_id for p in sig.placements[: len(utts)]]
    assert sorted(first) == sorted(audio)
    again = tool.build_signal(utts, seed=1, **kw)
    assert torch.equal(again.samples, x) and again.placements == sig.placements
    other = tool.build_signal(utts, seed=2, **kw)
    assert [p.utt_id for p in other.placements] != [p.utt_id for p in sig.placements]
    noisy = tool.build_signal(utts, seed=1, **(kw | {"pause_noise": 0.01}))
    assert noisy.placements == sig.placements  # noise changes the pauses' samples only
    lead = noisy.samples[: noisy.placements[0].start]
    assert 0.005 < float(lead.std()) < 0.02


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--minutes", "0"], "--minutes must be > 0"),
        (["--minutes", "-2"], "--minutes must be > 0"),
        (["--pause-s", "2-1"], "--pause-s"),
        (["--chunk-ms", "100"], "--chunk-ms"),
        (["--data", "/nonexistent/test.jsonl"], "/nonexistent/test.jsonl"),
        (["--model", "/nonexistent/model.safetensors"], "/nonexistent/model.safetensors"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, manifest, capsys, extra, message):
    model = save_asr_model(tmp_path / "random.safetensors", make_bundle())
    argv = ["--model", str(model), "--data", str(manifest), "--out", str(tmp_path / "o"), "--no-progress"]
    rc = tool.main(argv + extra)
    assert rc == 2
    err = capsys.readouterr().err
    assert "long_stream: error:" in err and message in err
    assert not (tmp_path / "o" / "long_stream.json").exists()
