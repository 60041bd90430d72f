"""tools/peer_hama.py: hama's IPA phones mapped onto CMUdict's, scored as a phone model's PER."""

from __future__ import annotations

import json
from collections import Counter

from asr.peers.hama import IPA_TO_ARPABET, NOT_PHONES, load_hama, to_arpabet
from asr.pipeline import BUNDLED_MODEL_DIR
from asr.text.phones import PHONES
from tests.tools import load_tool

REAL = BUNDLED_MODEL_DIR.parent / "audio" / "real.jsonl"
# hama's tokens for Korean and Chinese sounds and symbols: left unmapped (counted when heard)
FOREIGN = {"ja", "je", "jo", "ju", "jʌ", "k͈", "p͈", "s͈", "t͈", "t͡ɕʰ", "t͡ɕ͈", "wa", "we", "wi", "wʌ", "ɓ", "ɗ", "ɯi", "ʙ",
           "ẑ", "一", "不"}  # fmt: skip


def test_every_hama_token_is_a_phone_a_mark_or_a_known_foreign_symbol():
    tokens = set(load_hama().decoder_tokens)
    assert {p for v in IPA_TO_ARPABET.values() for p in v} <= set(PHONES)
    assert tokens - set(IPA_TO_ARPABET) - NOT_PHONES == FOREIGN  # a new hama vocabulary fails here
    unmapped: Counter = Counter()
    assert to_arpabet(["h", "ɛ", "ˈ", "l", "oʊ", "ː", "<wb>", "一"], unmapped) == ["HH", "EH", "L", "OW"]
    assert unmapped == {"ˈ": 1, "一": 1}  # not in hama's vocabulary, and foreign: counted, not guessed


def test_the_peer_reads_the_bundled_real_clips_and_reuses_its_summary(tmp_path, capsys):
    tool = load_tool("peer_hama")
    out = tmp_path / "peer"
    assert tool.main(["--data", f"real={REAL}", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "real" / "summary.json").read_text())
    assert summary["n_utts"] == 12 and summary["hama_version"] == "1.7.0"
    rows = [json.loads(line) for line in (out / "real" / "utterances.jsonl").read_text().splitlines()]
    go = next(r for r in rows if r["id"] == "goforward")
    assert go["ref"] == "G OW F AO R W ER D T EH N M IY T ER Z" and go["ipa"]
    errors = sum(r["substitutions"] + r["deletions"] + r["insertions"] for r in rows)
    assert abs(summary["per"] - errors / summary["counts"]["ref_len"]) < 1e-12
    assert summary["per"] < 0.3  # measured 15.5% (session 23): hama reads real speech
    assert "PER %" in capsys.readouterr().out
    assert tool.main(["--data", f"real={REAL}", "--out", str(out), "--no-progress"]) == 0
    assert "done before" in capsys.readouterr().out
