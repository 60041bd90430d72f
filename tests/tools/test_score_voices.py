"""tools/score_voices.py: sampling per engine/voice/rate setting, pooled WER, the drop rule, the filtered manifest,
the resumable cache (a fake transcriber), and the Whisper adapter on a bundled real clip."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.data.manifest import read_manifest
from asr.synth.generate import PLAN_FILE, utterance_path
from tests.tools import load_tool

score_voices = load_tool("score_voices")

REAL = Path(__file__).resolve().parents[2] / "asr/assets/audio/real"

# setting -> (engine, voice, rate, what the fake listener hears)
SETTINGS = {
    "good": ("flite", "slt", 1.0, lambda ref: ref),  # WER 0
    "bad": ("espeak-ng", "en-sc+m3", 1.21, lambda ref: ""),  # WER 1: dropped
    "half": ("festival", "kal_diphone", 0.85, lambda ref: ref.split()[0]),  # WER 0.5 on two-word refs: kept
}
TEXTS = ["GO HOME", "OPEN IT", "TURN LEFT", "STOP NOW", "CALL MOM"]


def _voice(engine, voice, rate, pitch):
    return {"engine": engine, "voice": voice, "rate": rate, "pitch_cents": pitch, "engine_pitch": -1,
            "noise_scale": -1.0, "group": ""}


@pytest.fixture()
def corpus(tmp_path):
    """A corpus in asr synth's layout: per setting two speakers (pitches pooled), five utterances each, plus a
    setting whose audio does not exist yet; every file is distinct noise the fake listener recognises."""
    root = tmp_path / "corpus"
    speakers, utterances, heard = [], [], {}
    rng = np.random.default_rng(0)
    spk, chapter = 100, 1000
    for engine, voice, rate, listen in SETTINGS.values():
        for pitch, split in ((0, "train"), (150, "dev")):
            v = _voice(engine, voice, rate, pitch)
            speakers.append({"id": spk, "split": split, "key": f"{engine}:{voice}:{pitch}", "voice": v})
            for i, text in enumerate(TEXTS):
                utt = {"id": f"{spk}-{chapter}-{i:04d}", "split": split, "speaker": spk, "chapter": chapter,
                       "text": text, "engine": engine}
                utterances.append(utt)
                path = utterance_path(root, utt)
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, 0.1 * rng.standard_normal(8000 + 1600 * i), 16000, format="FLAC", subtype="PCM_16")
                heard[_key(load_audio(path).numpy())] = listen(text)
            spk, chapter = spk + 1, chapter + 1
    unborn = _voice("pico", "en-US", 1.0, 0)
    speakers.append({"id": spk, "split": "train", "key": "pico:en-US", "voice": unborn})
    utterances.append({"id": f"{spk}-{chapter}-0000", "split": "train", "speaker": spk, "chapter": chapter,
                       "text": "NOT YET", "engine": "pico"})
    (root / PLAN_FILE).write_text(json.dumps({"speakers": speakers, "utterances": utterances}), encoding="utf-8")
    return root, heard


def _key(samples: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


class FakeListener:
    def __init__(self, heard):
        self.heard, self.calls = heard, 0

    def __call__(self, samples):
        self.calls += 1
        return score_voices.Heard(hyp=self.heard[_key(samples)], raw="fake", cpu_seconds=0.01)


def test_scores_drop_rule_manifest_and_exclusions(corpus, tmp_path):
    root, heard = corpus
    out = tmp_path / "out"
    listener = FakeListener(heard)
    scored = score_voices.score_corpus(root, out, transcriber=listener, transcriber_id="fake-1", k=4, progress=False)
    by = {s.setting: s for s in scored.scores}
    good, bad, half = "flite:slt:rate1.00", "espeak-ng:en-sc+m3:rate1.21", "festival:kal_diphone:rate0.85"
    assert set(by) == {good, bad, half, "pico:en-US:rate1.00"}
    assert listener.calls == 12  # k=4 of the 10 files of each setting with audio (two speakers pooled)
    assert (by[good].wer, by[bad].wer, by[half].wer) == (0.0, 1.0, 0.5)
    assert by[good].kept and by[half].kept and not by[bad].kept  # the rule is WER > 0.5
    assert by[bad].deletions == 8 and by[bad].ref_words == 8 and by[bad].available == 10
    unborn = by["pico:en-US:rate1.00"]
    assert unborn.wer is None and unborn.utterances == 0 and unborn.kept
    # train hours: five files of 0.5 .. 0.9 s per setting
    assert by[good].train_hours == pytest.approx(3.5 / 3600, abs=1e-4)

    report = json.loads((out / score_voices.REPORT).read_text())
    assert report["dropped"] == [bad]
    assert report["train_hours_by_engine"]["espeak-ng"] == {"kept": 0.0, "dropped": pytest.approx(3.5 / 3600, abs=1e-4)}
    assert report["train_hours_by_engine"]["flite"]["kept"] == pytest.approx(3.5 / 3600, abs=1e-4)
    assert (out / score_voices.EXCLUDED).read_text() == f"{bad}\n"
    manifest = read_manifest(out / score_voices.MANIFEST)
    assert {u.extra["setting"] for u in manifest} == {good, half}  # train split only, dropped setting gone
    assert len(manifest) == 10 and all(Path(u.audio).is_file() for u in manifest)
    assert sorted(u.duration for u in manifest if u.extra["setting"] == good) == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert report["train_hours_kept"] == pytest.approx(7.0 / 3600, abs=1e-4)

    table = score_voices.format_table(scored.scores, 0.5)
    assert f"{bad:<34}" in table and "DROP (> 0.5)" in table and "unscored" in table
    summary = score_voices.engine_summary(scored.scores, scored.rows, scored.samples)
    assert "espeak-ng" in summary and "1.000" in summary


def test_a_repetition_loop_counts_at_most_its_words_in_the_clipped_wer(corpus):
    rows = {
        "a": {"ref": "GO HOME", "hyp": "GO HOME"},
        "b": {"ref": "OPEN IT", "hyp": "TO BE ABLE TO BE ABLE TO BE ABLE TO BE ABLE"},
        "c": {"ref": "TURN LEFT NOW", "hyp": "TURN RIGHT NOW"},
    }
    pooled = score_voices.pooled_counts([{"id": i} for i in "abc"], rows)
    assert pooled.n == 3 and pooled.counts.ref_len == 7
    assert pooled.counts.rate == pytest.approx(13 / 7)  # 12 errors from the loop, 1 substitution
    assert pooled.wer_clipped == pytest.approx(3 / 7)  # the loop counts 2 (its words)
    root, heard = corpus
    plan = score_voices.load_plan(root)
    samples, available = score_voices.sample_utterances(plan, root, k=2, seed=0)
    # Per setting: the first sampled utterance heard as a loop (its two words six times), the second as said.
    heard = {}
    for utts in samples.values():
        for i, u in enumerate(utts):
            heard[_key(load_audio(utterance_path(root, u)).numpy())] = (u["text"] + " ") * (6 if i == 0 else 1)
    rows = score_voices.transcribe_samples(samples, root, transcriber=FakeListener(heard), transcriber_id="loop",
                                           cache=root / "cache.jsonl", progress=False)
    by_wer = score_voices.aggregate(plan, samples, available, rows, max_wer=0.5, train_hours={})
    by_clip = score_voices.aggregate(plan, samples, available, rows, max_wer=0.5, train_hours={}, rule="clipped")
    scored = [s for s in by_wer if s.wer is not None]
    assert len(scored) == 3 and all(s.wer == 2.5 and s.wer_clipped == 0.5 and not s.kept for s in scored)
    assert all(s.kept for s in by_clip)
    with pytest.raises(ValueError, match="rule must be"):
        score_voices.aggregate(plan, samples, available, rows, max_wer=0.5, train_hours={}, rule="median")


def test_sample_is_deterministic_and_differs_by_seed(corpus):
    root, _ = corpus
    plan = score_voices.load_plan(root)
    a, available = score_voices.sample_utterances(plan, root, k=3, seed=0)
    b, _ = score_voices.sample_utterances(plan, root, k=3, seed=0)
    c, _ = score_voices.sample_utterances(plan, root, k=3, seed=1)
    assert a == b and a != c
    assert all(len(v) == 3 for k, v in a.items() if not k.startswith("pico"))
    assert available["pico:en-US:rate1.00"] == 0
    with pytest.raises(ValueError, match="k must be"):
        score_voices.sample_utterances(plan, root, k=0, seed=0)


def test_reruns_resume_from_the_cache(corpus, tmp_path):
    root, heard = corpus
    out = tmp_path / "out"
    first = FakeListener(heard)
    score_voices.score_corpus(root, out, transcriber=first, transcriber_id="fake-1", k=2, progress=False)
    assert first.calls == 6
    again = FakeListener(heard)
    score_voices.score_corpus(root, out, transcriber=again, transcriber_id="fake-1", k=2, progress=False)
    assert again.calls == 0  # everything came from transcripts.jsonl
    cache = out / score_voices.CACHE
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # a run killed mid-line
    killed = FakeListener(heard)
    score_voices.score_corpus(root, out, transcriber=killed, transcriber_id="fake-1", k=2, progress=False)
    assert killed.calls == 1
    other = FakeListener(heard)
    score_voices.score_corpus(root, out, transcriber=other, transcriber_id="fake-2", k=2, progress=False)
    assert other.calls == 6  # another transcriber's lines are not reused
    cache.write_text("not json\n" + cache.read_text())
    with pytest.raises(ValueError, match="transcripts.jsonl:1: not a JSON line"):
        score_voices.score_corpus(root, out, transcriber=other, transcriber_id="fake-2", k=2, progress=False)


def test_a_folder_without_a_plan_is_refused(tmp_path):
    with pytest.raises(ValueError, match="synth_plan.json not found"):
        score_voices.load_plan(tmp_path)


def test_whisper_adapter_on_a_bundled_real_clip():
    transcribe, ident = score_voices.whisper_transcriber(threads=1)
    heard = transcribe(load_audio(REAL / "goforward.flac").numpy())
    assert heard.hyp == "GO FORWARD TEN METERS" and "10" in heard.raw
    assert heard.cpu_seconds > 0 and heard.avg_logprob < 0 and 0 <= heard.no_speech_prob < 0.5
    info = json.loads(ident)
    assert info["whisper"] == "tiny.en" and info["beam_size"] == 5 and "faster-whisper" in info
