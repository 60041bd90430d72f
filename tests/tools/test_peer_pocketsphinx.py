"""tools/peer_pocketsphinx.py on two real recordings of pocketsphinx-testdata (a few seconds of decoding)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf

from asr.text.normalize import normalize_text
from tests.tools import load_tool
from tests.tools._peers import keep_torch_threads, read_jsonl, run_peer, write_jsonl  # noqa: F401

peer = load_tool("peer_pocketsphinx")

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
# Headerless 16 kHz int16 recordings and their words (the same pairs asr/data/realspeech.py knows).
RECORDINGS = {
    "goforward": ("goforward.raw", "go forward ten meters"),
    "tidigits-dhd.2934z": ("tidigits/dhd.2934z.raw", "two nine three four zero"),
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("peer_ps_data")
    lines = []
    for utt_id, (raw, text) in RECORDINGS.items():
        pcm = np.fromfile(TESTDATA / raw, dtype="<i2")
        wav = folder / f"{utt_id}.wav"
        sf.write(wav, pcm, 16000, subtype="PCM_16")
        row = {"id": utt_id, "audio": str(wav), "duration": len(pcm) / 16000, "text": text, "speaker": utt_id}
        lines.append(row)
    return write_jsonl(folder / "tiny.jsonl", lines)


@pytest.fixture(scope="module")
def run_dir(manifest, tmp_path_factory) -> Path:
    return run_peer(peer, manifest, tmp_path_factory.mktemp("peer_ps_out"))


def test_wer_and_cer_are_what_jiwer_gives_for_the_recorded_pairs(run_dir):
    summary = json.loads((run_dir / "peer_pocketsphinx.json").read_text())["sets"]["tiny"]
    rows = read_jsonl(run_dir / "tiny" / "utterances.jsonl")
    assert [r["id"] for r in rows] == list(RECORDINGS)
    refs, hyps = [r["ref"] for r in rows], [r["hyp"] for r in rows]
    assert refs == [normalize_text(text) for _, text in RECORDINGS.values()]
    assert all(h and normalize_text(h) == h for h in hyps)  # decoded, and normalised like the references
    assert all(normalize_text(r["raw_hyp"]) == r["hyp"] for r in rows)
    assert summary["wer"] == pytest.approx(jiwer.wer(refs, hyps))
    assert summary["cer"] == pytest.approx(jiwer.cer(refs, hyps))
    c = summary["counts"]
    assert c["ref_len"] == sum(len(r.split()) for r in refs)
    assert summary["wer"] == pytest.approx((c["substitutions"] + c["deletions"] + c["insertions"]) / c["ref_len"])
    # These two recordings are pocketsphinx's own test cases: it gets most of their words right.
    assert summary["wer"] < 0.5


def test_report_has_the_fields_and_timing_adds_up(run_dir, manifest):
    report = json.loads((run_dir / "peer_pocketsphinx.json").read_text())
    for key in ("command", "pocketsphinx_version", "settings", "decoder_config", "sets"):
        assert key in report
    assert report["pocketsphinx_version"].startswith("5.")
    assert report["settings"]["chunk_ms"] == 0 and report["settings"]["reset_cmn"] is True
    assert report["decoder_config"]["hmm"] == "en-us" and report["decoder_config"]["samprate"] == 16000
    assert str(manifest) in report["command"]
    s = report["sets"]["tiny"]
    for key in ("n_utts", "audio_seconds", "wer", "cer", "rtf", "wall_rtf", "counts", "char_counts", "source"):
        assert key in s
    assert s["n_utts"] == len(RECORDINGS) and s["n_failed"] == 0
    seconds = sum(np.fromfile(TESTDATA / raw, dtype="<i2").size / 16000 for raw, _ in RECORDINGS.values())
    assert s["audio_seconds"] == pytest.approx(seconds, abs=1e-3)
    rows = read_jsonl(run_dir / "tiny" / "utterances.jsonl")
    assert s["cpu_seconds"] == pytest.approx(sum(r["cpu_seconds"] for r in rows), abs=1e-2)
    assert 0 < s["rtf"] == pytest.approx(s["cpu_seconds"] / s["audio_seconds"], rel=1e-3)
    assert json.loads((run_dir / "tiny" / "summary.json").read_text())["wer"] == s["wer"]


def test_a_finished_set_is_skipped_unless_forced(run_dir, manifest, monkeypatch):
    before = (run_dir / "tiny" / "utterances.jsonl").read_text()

    def must_not_decode(*args, **kwargs):
        raise AssertionError("a finished set was decoded again")

    monkeypatch.setattr(peer, "decode_pcm", must_not_decode)
    assert peer.main(["--data", f"tiny={manifest}", "--out", str(run_dir), "--no-progress"]) == 0
    assert (run_dir / "tiny" / "utterances.jsonl").read_text() == before
    with pytest.raises(AssertionError, match="decoded again"):
        peer.main(["--data", f"tiny={manifest}", "--out", str(run_dir), "--no-progress", "--force"])
    # Other settings than the finished set's: an error, not a silent mix.
    with pytest.raises(SystemExit, match="--force"):
        peer.main(["--data", f"tiny={manifest}", "--out", str(run_dir), "--no-progress", "--chunk-ms", "160"])


def test_chunked_feeding_also_decodes_the_recordings(manifest, tmp_path):
    assert peer.main(["--data", f"tiny={manifest}", "--out", str(tmp_path), "--no-progress", "--chunk-ms", "160"]) == 0
    rows = read_jsonl(tmp_path / "tiny" / "utterances.jsonl")
    assert json.loads((tmp_path / "peer_pocketsphinx.json").read_text())["settings"]["chunk_ms"] == 160
    assert jiwer.wer([r["ref"] for r in rows], [r["hyp"] for r in rows]) < 0.5


def test_missing_data_is_a_clear_error_before_any_decoding(tmp_path):
    with pytest.raises(SystemExit, match="nowhere.jsonl"):
        peer.main(["--data", f"x={tmp_path / 'nowhere.jsonl'}", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_missing_pocketsphinx_says_how_to_install_it(manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # import pocketsphinx -> ImportError
    with pytest.raises(SystemExit, match="pip install"):
        peer.main(["--data", f"tiny={manifest}", "--out", str(tmp_path)])


def test_fillers_and_pronunciation_variants_are_not_words():
    assert (
        peer.clean_hypothesis("<s> go forward(2) [NOISE] ten <sil> ++BREATH++ meters </s>") == "go forward ten meters"
    )
