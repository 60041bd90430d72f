"""tools/compare_decoders.py on the bundled phone model: the decoders without a lexicon are scored in phones (PER
against the references' CMUdict phones, as asr eval scores them), the lexicon decoders in words; streaming equals
full-utterance decoding for each."""

from __future__ import annotations

import json

import jiwer

from asr.pipeline import BUNDLED_MODEL_DIR, load_asr_model, resolve_model_path
from tests.tools import load_tool

AUDIO = BUNDLED_MODEL_DIR.parent / "audio"


def test_phone_model_rows_are_scored_in_phones_then_words(tmp_path):
    bundle = load_asr_model(resolve_model_path(None))
    assert bundle.tokenizer.kind == "phone", "this test is about a phone bundle"
    rows = [json.loads(line) for line in (AUDIO / "real.jsonl").read_text().splitlines()[:3]]
    for r in rows:
        r["audio"] = str(AUDIO / r["audio"])
    (tmp_path / "real3.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tool = load_tool("compare_decoders")
    out = tmp_path / "compare.json"
    assert tool.main(["--set", f"real3={tmp_path / 'real3.jsonl'}", "--prefix-beam", "4", "--out", str(out)]) == 0
    got = {r["decoder"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(got) == ["greedy", "prefix beam 4", "lexicon, no LM", "lexicon + LM"]
    assert [got[d]["unit"] for d in got] == ["phone", "phone", "word", "word"]
    for d in ("greedy", "prefix beam 4", "lexicon + LM"):
        assert got[d]["stream_equals_full"] == 3 and got[d]["stream_wer"] == got[d]["full_wer"]
    # (the lexicon without an LM is left out: a phone lexicon's homophones tie exactly without LM scores, and the
    # chunked and whole-utterance encoder outputs differ in their last bits, so it may break ties either way:
    # docs/results.md section 3)
    # the greedy PER is jiwer's over phone strings: the reference's CMUdict phones
    from asr.data.sources import load_utterances
    from asr.evaluate import evaluate_batch, phone_reference

    utts = load_utterances(tmp_path / "real3.jsonl")
    full = evaluate_batch(bundle, utts, mode="full", progress=False, beam=1, lm=None)
    refs = [phone_reference(bundle.tokenizer, u.text) for u in utts]
    hyps = [p.hyp for p in full.per_utterance]
    assert all(h and set(h.split()) <= set(bundle.tokenizer.tokens) for h in hyps)  # phones, not words
    assert abs(got["greedy"]["full_wer"] - round(jiwer.wer(refs, hyps), 4)) < 1e-9
    assert got["greedy"]["stream_cer"] != got["greedy"]["stream_cer"]  # NaN: no characters in phone strings
    assert 0.0 <= got["lexicon + LM"]["stream_cer"] <= got["lexicon + LM"]["stream_wer"] + 1.0
    # partial latency per phone (each phone a unit, timed from its own end): never before the phone's end, and
    # within a chunk plus the encoder's few frames of delay (the words' latency is larger: a word waits for its
    # last phone and the lexicon)
    n_phones = sum(len(h.split()) for h in hyps)
    assert got["greedy"]["partial_first_seen"]["words"] == n_phones
    assert 0 <= got["greedy"]["partial_first_seen"]["median_ms"] <= 160 + 200


def test_decoders_stream_each_utterance_in_turn(monkeypatch):
    """The real-time factors are measured side by side: every utterance goes through every decoder before the next
    utterance starts, the first decoder rotating, so no decoder always runs first (cold caches) or last."""
    from asr.data.sources import load_utterances

    bundle = load_asr_model(resolve_model_path(None))
    tool = load_tool("compare_decoders")
    calls = []
    monkeypatch.setattr(tool, "_stream_one", lambda rec, b, samples, utt_id, *a, **k: calls.append((utt_id, rec)))
    utts = load_utterances(AUDIO / "real.jsonl")[:4]
    decoders = {"a": dict(beam=1, lm=None), "b": dict(beam=2, lm=None), "c": dict(beam=3, lm=None, step="packed_by_op")}
    tool._stream_side_by_side(bundle, utts, decoders, chunk_ms=160, phones=dict.fromkeys(decoders, True))
    beams = [(utt_id, rec.config.beam) for utt_id, rec in calls]
    expected = [1, 2, 3, 2, 3, 1, 3, 1, 2, 1, 2, 3]
    assert beams == [(u.id, b) for u, b in zip((u for u in utts for _ in range(3)), expected)]
    # --by-op's decoder: the same model stepping every block op by op
    forms = {rec.config.beam: rec.config.step for _, rec in calls}
    assert forms == {1: "packed", 2: "packed", 3: "packed_by_op"}
    assert all(b.fused is None for _, rec in calls if rec.config.beam == 3 for b in rec.packed_step.blocks)
    assert all(b.fused is not None for _, rec in calls if rec.config.beam == 1 for b in rec.packed_step.blocks)
