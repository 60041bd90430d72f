"""End to end: ``asr synth --preset tiny`` killed part way, resumed, checked file by file."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.data.librispeech import find_librispeech_subsets, read_librispeech_subset
from asr.data.manifest import PrepareReport
from asr.synth.generate import PLAN_FILE, SUMMARY_FILE, config_with_preset, make_plan, synthesize_corpus
from asr.synth.text import SPLITS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _flacs(out: Path) -> dict[Path, tuple[int, int]]:
    """(inode, mtime) of every finished FLAC (only the split folders: the temp folder comes and goes)."""
    files = [p for split in SPLITS for p in (out / split).glob("*/*/*.flac")]
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny corpus whose first run was killed (SIGKILL) after a few files, then resumed in-process."""
    out = tmp_path_factory.mktemp("synth") / "corpus"
    cmd = [
        sys.executable,
        "-m",
        "asr.cli",
        "synth",
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--seed",
        "5",
        "--jobs",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(_flacs(out)) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the first run ended before it could be killed"
    before = _flacs(out)
    assert len(before) >= 4
    summary = synthesize_corpus(out, config=config_with_preset("tiny", seed=5), jobs=2, progress=False)
    return out, before, summary


def test_resume_keeps_finished_files_and_completes_the_plan(corpus):
    out, before, summary = corpus
    plan = json.loads((out / PLAN_FILE).read_text())
    after = _flacs(out)
    assert len(after) == len(plan["utterances"]) == summary["utterances_planned"]
    assert all(after[p] == stamp for p, stamp in before.items())  # not rewritten
    assert summary["run"]["resumed"] is True
    assert summary["run"]["written_this_run"] == len(after) - len(before)
    assert summary["utterances_missing"] == 0 and summary["run"]["failure_count"] == 0
    assert not list(out.rglob("*.partial")) and not (out / ".synth_tmp").exists()


def test_layout_audio_and_transcripts(corpus):
    out, _, _ = corpus
    plan = json.loads((out / PLAN_FILE).read_text())
    texts = {u["id"]: u["text"] for u in plan["utterances"]}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(SPLITS)
    chapters = [c for split in SPLITS for c in (out / split).glob("*/*") if c.is_dir()]
    assert chapters
    for chapter in chapters:
        speaker = chapter.parent.name
        trans = chapter / f"{speaker}-{chapter.name}.trans.txt"
        lines = trans.read_text(encoding="utf-8").splitlines()
        flac_ids = sorted(p.stem for p in chapter.glob("*.flac"))
        assert [ln.split(" ", 1)[0] for ln in lines] == flac_ids
        for line in lines:
            uid, text = line.split(" ", 1)
            assert re.fullmatch(rf"{speaker}-{chapter.name}-\d{{4}}", uid)
            assert text == texts[uid] and re.fullmatch(r"[A-Z']+( [A-Z']+)*", text)
            info = sf.info(str(chapter / f"{uid}.flac"))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            assert 0.5 < info.duration < 12.0
    audio, _ = sf.read(str(next(out.rglob("*.flac"))), dtype="float32")
    assert 0.05 < np.max(np.abs(audio)) < 1.0


def test_splits_are_disjoint_and_every_engine_is_in_every_split(corpus):
    out, _, summary = corpus
    plan = json.loads((out / PLAN_FILE).read_text())
    speaker_dirs = {s: {p.name for p in (out / s).iterdir()} for s in SPLITS}
    texts = defaultdict(set)
    for u in plan["utterances"]:
        texts[u["split"]].add(u["text"])
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert speaker_dirs[a].isdisjoint(speaker_dirs[b])
            assert texts[a].isdisjoint(texts[b])
    for engine, hours in summary["hours_per_engine_per_split"].items():
        assert all(hours[s] > 0 for s in SPLITS), (engine, hours)
    assert 0.5 / 60 < summary["hours_total"] < 2.5 / 60  # "about a minute"
    on_disk = json.loads((out / SUMMARY_FILE).read_text())
    assert on_disk["hours_total"] == summary["hours_total"] and on_disk["seed"] == 5
    assert set(on_disk["engines"]) == set(plan["engines"])
    assert all(e["version"] and e["licence"] for e in on_disk["engines"].values())


def test_the_librispeech_reader_serves_the_corpus(corpus):
    out, _, summary = corpus
    subsets = find_librispeech_subsets(out)
    assert [s.name for s in subsets] == sorted(SPLITS)
    total = 0.0
    for subset in subsets:
        report = PrepareReport(name=subset.name, corpus="librispeech", source=str(subset))
        utts = read_librispeech_subset(subset, report, jobs=1)
        assert utts and not report.skipped and not report.flagged, report.skipped[:3] + report.flagged[:3]
        total += sum(u.duration for u in utts)
    assert total / 3600 == pytest.approx(summary["hours_total"], abs=1e-3)


def test_same_seed_regenerates_identical_plan_and_audio(corpus, synth_engines, tiny_pools):
    out, before, _ = corpus
    plan = json.loads((out / PLAN_FILE).read_text())
    assert make_plan(config_with_preset("tiny", seed=5), synth_engines, tiny_pools) == plan
    # Delete one file of each deterministic engine and one transcript; a rerun must bring back the same audio.
    victims = {}
    for u in plan["utterances"]:
        if synth_engines[u["engine"]].deterministic and u["engine"] not in {v[1] for v in victims.values()}:
            path = out / u["split"] / str(u["speaker"]) / str(u["chapter"]) / f"{u['id']}.flac"
            victims[path] = (sf.read(str(path), dtype="int16")[0], u["engine"])
    assert {e for _, e in victims.values()} == {n for n, e in synth_engines.items() if e.deterministic}
    for path in victims:
        path.unlink()
    trans = next(iter(victims)).parent
    trans = trans / f"{trans.parent.name}-{trans.name}.trans.txt"
    trans.unlink()
    summary = synthesize_corpus(out, config=config_with_preset("tiny", seed=5), jobs=1, progress=False)
    assert summary["run"]["written_this_run"] == len(victims)
    for path, (samples, engine) in victims.items():
        assert np.array_equal(sf.read(str(path), dtype="int16")[0], samples), engine
    assert trans.is_file()
    # Nothing left to do: a rerun writes nothing; other settings in the same folder are refused.
    again = synthesize_corpus(out, config=config_with_preset("tiny", seed=5), progress=False)
    assert again["run"]["written_this_run"] == 0 and again["utterances_missing"] == 0
    # The summary keeps every run (the killed one never got to write one): resume, regenerate, this one.
    assert [r["written_this_run"] for r in again["runs"]] == [len(plan["utterances"]) - len(before), len(victims), 0]
    with pytest.raises(ValueError, match="other settings"):
        synthesize_corpus(out, config=config_with_preset("tiny", seed=6), progress=False)
