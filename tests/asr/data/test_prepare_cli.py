"""``asr prepare`` end to end on the fakes: manifests, summary.json/summary.txt, exit codes."""

import json

import pytest

from asr.cli import main
from asr.data.manifest import read_manifest

from ._corpus_fakes import kaldi_dir_plain, librispeech_subset, write_audio, wsj_tree


def _summary(out):
    return json.loads((out / "summary.json").read_text())["manifests"]


def test_prepare_librispeech_root_then_kaldi_into_the_same_folder(tmp_path, capsys):
    root = tmp_path / "LibriSpeech"
    good = librispeech_subset(root, "dev-clean")
    write_audio(root / "test-clean/61/70968/61-70968-0000.flac", 0.3)
    (root / "test-clean/61/70968/61-70968.trans.txt").write_text("61-70968-0000 HE BEGAN\n")
    out = tmp_path / "manifests"
    assert main(["prepare", "librispeech", str(root), "--out", str(out), "--jobs", "2"]) == 0
    assert sorted(u.id for u in read_manifest(out / "dev-clean.jsonl")) == sorted(good)
    assert [u.text for u in read_manifest(out / "test-clean.jsonl")] == ["HE BEGAN"]
    printed = capsys.readouterr().out
    assert "dev-clean" in printed and "skipped missing_audio: 1" in printed

    data, keep = kaldi_dir_plain(tmp_path / "kaldi")
    assert main(["prepare", "kaldi", str(data), "--out", str(out), "--name", "k", "--allow-pipes"]) == 0
    summary = _summary(out)
    assert sorted(summary) == ["dev-clean", "k", "test-clean"]  # merged, not overwritten
    dev = summary["dev-clean"]
    assert dev["utterances"] == len(good) and dev["speakers"] == 2 and dev["corpus"] == "librispeech"
    assert dev["skipped"]["by_reason"] == {
        "duplicate_id": 1,
        "empty_text": 1,
        "missing_audio": 1,
        "missing_transcript": 2,
        "unreadable_audio": 1,
    }
    assert dev["flagged"]["by_reason"] == {"out_of_alphabet": 1}
    assert dev["hours"] * 3600 == pytest.approx(sum(good.values()), abs=0.01)
    assert summary["k"]["skipped"]["by_reason"] == {"unreadable_audio": 1}
    assert (out / "summary.txt").read_text().count("==") == 3


def test_drop_out_of_alphabet_and_custom_alphabet(tmp_path):
    librispeech_subset(tmp_path, "dev-clean")
    out = tmp_path / "out"
    args = ["prepare", "librispeech", str(tmp_path / "dev-clean"), "--out", str(out)]
    assert main([*args, "--drop-out-of-alphabet"]) == 0
    ids = {u.id for u in read_manifest(out / "dev-clean.jsonl")}
    assert "26-495-0001" not in ids
    assert _summary(out)["dev-clean"]["skipped"]["by_reason"]["out_of_alphabet"] == 1
    out2 = tmp_path / "out2"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'0123456789"
    assert (
        main(
            [
                "prepare",
                "librispeech",
                str(tmp_path / "dev-clean"),
                "--out",
                str(out2),
                "--alphabet",
                alphabet,
            ]
        )
        == 0
    )
    assert _summary(out2)["dev-clean"]["flagged"]["count"] == 0


def test_prepare_wsj_and_an_empty_result(tmp_path):
    wsj_tree(tmp_path / "wsj")
    out = tmp_path / "out"
    assert main(["prepare", "wsj", str(tmp_path / "wsj"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["dev93.jsonl", "eval92.jsonl", "si284.jsonl"]
    assert len(read_manifest(out / "si284.jsonl")) == 4
    # A Kaldi dir whose only utterance cannot be used: no manifest, exit code 1, the reason in the summary.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "wav.scp").write_text("u1 /does/not/exist.wav\n")
    (bad / "text").write_text("u1 HELLO\n")
    assert main(["prepare", "kaldi", str(bad), "--out", str(out)]) == 1
    assert not (out / "bad.jsonl").exists()
    entry = _summary(out)["bad"]
    assert entry["manifest"] is None and entry["skipped"]["items"][0]["reason"] == "missing_audio"


def test_prepare_verifies_every_file_by_decoding_it(tmp_path):
    """(issue 15, defect 11) Headers can lie: a truncated or zeroed FLAC, a WAV with NaN samples and a 10 ms clip
    read fine from their headers. The decode pass (on by default) skips each with its reason, before training or
    evaluation can trip over it; --no-verify keeps the headers-only reading, and the summary says so."""
    import numpy as np
    import soundfile as sf

    sub = tmp_path / "dev-clean"
    good = {f"7-8-000{i}": write_audio(sub / f"7/8/7-8-000{i}.flac", 0.5, seed=i) for i in range(2)}
    flac = (sub / "7/8/7-8-0000.flac").read_bytes()
    (sub / "7/8/7-8-0002.flac").write_bytes(flac[: len(flac) // 2])  # truncated
    (sub / "7/8/7-8-0003.flac").write_bytes(flac[:200] + bytes(len(flac) - 200))  # frames zeroed
    nan = np.full(8000, 0.01, dtype=np.float32)
    nan[100] = np.nan
    sf.write(sub / "7/8/7-8-0004.wav", nan, 16000, subtype="FLOAT")
    write_audio(sub / "7/8/7-8-0005.flac", 0.01)  # 10 ms: no model frame
    (sub / "7/8/7-8.trans.txt").write_text("".join(f"7-8-000{i} WORD\n" for i in range(6)))

    out = tmp_path / "out"
    assert main(["prepare", "librispeech", str(sub), "--out", str(out)]) == 0
    assert sorted(u.id for u in read_manifest(out / "dev-clean.jsonl")) == sorted(good)
    entry = _summary(out)["dev-clean"]
    reasons = {i["item"]: i["reason"] for i in entry["skipped"]["items"]}
    assert reasons == {"7-8-0002": "unreadable_audio", "7-8-0003": "unreadable_audio",
                       "7-8-0004": "unreadable_audio", "7-8-0005": "too_short"}
    details = {i["item"]: i["detail"] for i in entry["skipped"]["items"]}
    assert "7-8-0002.flac" in details["7-8-0002"] and "NaN" in details["7-8-0004"]
    assert any("decoded" in n for n in entry["notes"])

    assert main(["prepare", "librispeech", str(sub), "--out", str(out), "--no-verify"]) == 0
    assert len(read_manifest(out / "dev-clean.jsonl")) == 6  # headers only: everything kept
    assert any("--no-verify" in n for n in _summary(out)["dev-clean"]["notes"])


def test_prepare_kaldi_refuses_pipes_without_the_opt_in(tmp_path, capsys, monkeypatch):
    """(issue 15) wav.scp pipes are shell commands from a file: prepare runs them only with --allow-pipes."""
    monkeypatch.delenv("ASR_ALLOW_PIPES", raising=False)
    data, _ = kaldi_dir_plain(tmp_path / "kaldi")
    out = tmp_path / "out"
    assert main(["prepare", "kaldi", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "wav.scp" in err and "pipe command" in err and "--allow-pipes" in err
    assert not out.exists()


def test_prepare_bad_jobs_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["prepare", "librispeech", str(tmp_path), "--out", str(tmp_path / "o"), "--jobs", "0"])
    assert e.value.code == 2 and "--jobs" in capsys.readouterr().err
