"""The corpus plan: deterministic from the seed, disjoint speakers and sentences, hours and shares."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from asr.synth.engines import ENGINE_WEIGHTS
from asr.synth.generate import config_with_preset, make_plan
from asr.synth.text import SPLITS


@pytest.fixture(scope="module")
def plan_2h(synth_engines, tiny_pools):
    config = config_with_preset("tiny", hours=2.0, chapter_size=20, utts_per_speaker=40)
    return make_plan(config, synth_engines, tiny_pools)


def test_same_seed_same_plan_other_seed_other_plan(synth_engines, tiny_pools):
    config = config_with_preset("tiny", seed=3)
    first = make_plan(config, synth_engines, tiny_pools)
    assert first == make_plan(config, synth_engines, tiny_pools)
    other = make_plan(config_with_preset("tiny", seed=4), synth_engines, tiny_pools)
    assert [u["text"] for u in other["utterances"]] != [u["text"] for u in first["utterances"]]
    assert [s["key"] for s in other["speakers"]] != [s["key"] for s in first["speakers"]]


def test_splits_share_no_speaker_voice_group_or_sentence(plan_2h):
    speakers = {s["id"]: s for s in plan_2h["speakers"]}
    keys, groups, texts = defaultdict(set), defaultdict(set), defaultdict(set)
    for s in plan_2h["speakers"]:
        keys[s["split"]].add(s["key"])
        groups[s["split"]].add(s["voice"]["group"] or s["key"])
    for u in plan_2h["utterances"]:
        assert speakers[u["speaker"]]["split"] == u["split"]
        texts[u["split"]].add(u["text"])
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert keys[a].isdisjoint(keys[b]), (a, b)
            assert groups[a].isdisjoint(groups[b]), (a, b)
            assert texts[a].isdisjoint(texts[b]), (a, b)
    # espeak-ng speakers are held out by voice: no accent+variant of test is heard in training.
    voices = defaultdict(set)
    for s in plan_2h["speakers"]:
        if s["voice"]["engine"] == "espeak-ng":
            voices[s["split"]].add(s["voice"]["voice"])
    assert voices["test"] and voices["test"].isdisjoint(voices["train"])


def test_layout_ids_and_chapters(plan_2h):
    ids = [u["id"] for u in plan_2h["utterances"]]
    assert len(ids) == len(set(ids))
    chapters = defaultdict(list)
    for u in plan_2h["utterances"]:
        assert re.fullmatch(rf"{u['speaker']}-{u['chapter']}-\d{{4}}", u["id"])
        chapters[u["chapter"]].append(u)
    for utts in chapters.values():
        assert len({u["speaker"] for u in utts}) == 1
        assert 1 <= len(utts) <= 20
        assert [int(u["id"][-4:]) for u in utts] == list(range(len(utts)))
    spoken = {u["speaker"] for u in plan_2h["utterances"]}
    assert spoken == {s["id"] for s in plan_2h["speakers"]}  # every speaker speaks


def test_hours_split_shares_and_engine_shares(plan_2h, synth_engines):
    est = defaultdict(float)
    for u in plan_2h["utterances"]:
        est[(u["engine"], u["split"])] += u["est_seconds"]
    total = sum(est.values())
    assert total / 3600 == pytest.approx(2.0 * 1.03, rel=0.02)
    for split, share in zip(SPLITS, (0.9, 0.05, 0.05)):
        assert sum(v for (e, s), v in est.items() if s == split) / total == pytest.approx(share, abs=0.01)
    weights = {e: ENGINE_WEIGHTS[e] for e in synth_engines}
    for engine, w in weights.items():
        share = sum(v for (e, s), v in est.items() if e == engine) / total
        assert share == pytest.approx(w / sum(weights.values()), abs=0.01), engine
        for split in SPLITS:
            assert est[(engine, split)] > 0, (engine, split)


def test_bad_settings_are_refused(synth_engines, tiny_pools):
    with pytest.raises(ValueError, match="hours"):
        config_with_preset(None, hours=0.0)
    with pytest.raises(ValueError, match="preset"):
        config_with_preset("huge")
    with pytest.raises(ValueError, match="engine_weights"):
        make_plan(config_with_preset("tiny", engine_weights={"sam": 1.0}), synth_engines, tiny_pools)


def test_synthesis_takes_the_speakers_chapters_in_turn(tmp_path):
    """Work order: every speaker's first chapter, then every second one, ... (a run stopped part way has some of
    every voice), slow engines first; finished chapters (audio and transcript written) are not redone."""
    from asr.synth.generate import _tasks, utterance_path

    chapters = {100: ("kokoro", [1000, 1001, 1002]), 101: ("kokoro", [1003]), 102: ("piper", [1004, 1005])}
    plan = {"speakers": [{"id": spk, "voice": {"engine": engine}} for spk, (engine, _) in chapters.items()],
            "utterances": [{"id": f"{spk}-{ch}-{i:04d}", "split": "train", "speaker": spk, "chapter": ch,
                            "engine": engine} for spk, (engine, chs) in chapters.items() for ch in chs
                           for i in range(2)]}  # fmt: skip
    order = [t[1][0]["chapter"] for t in _tasks(tmp_path, plan)]
    assert order == [1004, 1005, 1000, 1003, 1001, 1002]  # piper first, then the kokoro speakers in turn
    done = [u for u in plan["utterances"] if u["chapter"] == 1000]
    for u in done:
        path = utterance_path(tmp_path, u)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert 1000 in [t[1][0]["chapter"] for t in _tasks(tmp_path, plan)]  # audio without its transcript: redone
    (path.parent / "100-1000.trans.txt").write_text("")
    assert [t[1][0]["chapter"] for t in _tasks(tmp_path, plan)] == [1004, 1005, 1001, 1003, 1002]
