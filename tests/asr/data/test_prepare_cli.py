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
    assert main(["prepare", "kaldi", str(data), "--out", str(out), "--name", "k"]) == 0
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
