"""Plan and build the synthetic corpus in LibriSpeech layout.

    DIR/{train,dev,test}/<speaker>/<chapter>/<speaker>-<chapter>-<idx:04d>.flac
    DIR/{train,dev,test}/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    DIR/SPEAKERS.TXT, DIR/synth_plan.json, DIR/synth_summary.json

The *plan* (every speaker, sentence and effect parameter) is a pure function of the config, the seed and
the engines found; it is written first, and a rerun with the same settings resumes it: finished FLAC files
are kept, each new one is written to a temporary name and renamed, and a chapter's transcript is written
from the plan once all its audio exists. Chapters are synthesised in parallel worker processes, the speakers'
chapters in turn (a run stopped part way has some of every voice).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import multiprocessing
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from asr.synth.effects import SAMPLE_RATE, AugmentConfig, EffectParams, apply_effects, draw_effects
from asr.synth.engine_base import Engine, Request, SpeakerVoice
from asr.synth.engines import ENGINE_WEIGHTS, available_engines
from asr.synth.text import OMIT_AT_DEFAULT, SPLITS, TextConfig, load_sentences

logger = logging.getLogger(__name__)

PLAN_FILE = "synth_plan.json"
SUMMARY_FILE = "synth_summary.json"
_PLAN_VERSION = 1
# Speech duration of a normalised sentence at rate 1, seconds = a + b * characters: a least-squares fit
# over 113 utterances of all four free engines (residual spread ~10%). The plan aims _PLAN_MARGIN over
# the target so that the real total reaches it.
_EST_BASE_S = 0.44
_EST_PER_CHAR_S = 0.051
_PLAN_MARGIN = 1.03


@dataclass(frozen=True)
class SynthConfig:
    """What corpus to build. The plan is a pure function of this config and the engines found."""

    hours: float = 5.0  # target audio, all splits together (an estimate; the summary has the real figure)
    seed: int = 0  # seed of every random choice (speakers, sentences, effects)
    split_shares: tuple[float, float, float] = (0.9, 0.05, 0.05)  # train, dev, test share of the hours
    engine_weights: dict[str, float] = field(default_factory=lambda: dict(ENGINE_WEIGHTS))  # audio share
    engines: tuple[str, ...] = ()  # engines to use; empty = every engine found
    utts_per_speaker: int = 40  # utterances per speaker, roughly (decides how many speakers)
    chapter_size: int = 20  # utterances per chapter folder (one chapter is one worker task)
    text: TextConfig = field(default_factory=TextConfig)  # sentence sources and split
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # per-utterance effect ranges
    # engine/voice/rate settings never planned: setting_key() values or fnmatch patterns ("espeak-ng:en-sc*"),
    # e.g. those tools/score_voices.py finds Whisper cannot read (its excluded_settings.txt)
    excluded_settings: tuple[str, ...] = field(default=(), metadata=OMIT_AT_DEFAULT)

    def __post_init__(self) -> None:
        if not self.hours > 0:
            raise ValueError(f"hours must be positive, got {self.hours}")
        if len(self.split_shares) != 3 or min(self.split_shares) <= 0:
            raise ValueError(f"split_shares must be three positive shares, got {self.split_shares}")
        object.__setattr__(self, "excluded_settings", tuple(self.excluded_settings))  # YAML/JSON give lists
        if self.utts_per_speaker < 1 or self.chapter_size < 1:
            raise ValueError(
                f"utts_per_speaker and chapter_size must be >= 1, got {self.utts_per_speaker} and {self.chapter_size}"
            )


PRESETS: dict[str, dict] = {
    # About a minute of audio over all splits and engines: for tests.
    "tiny": {
        "hours": 1.0 / 60.0,
        "utts_per_speaker": 2,
        "chapter_size": 2,
        "text": TextConfig(min_words=4, max_words=8),
    },
    # Clean speech for training with on-the-fly augmentation (rooms, noise, codecs are applied per epoch by
    # the trainer, asr/augment.py): engine, voice, rate, pitch and level vary here, nothing else. Short phrases
    # (two words and up) are kept, since people say them.
    "clean": {
        "utts_per_speaker": 60,
        "split_shares": (0.94, 0.03, 0.03),
        "augment": AugmentConfig(reverb_prob=0.0, noise_prob=0.0),
        "text": TextConfig(min_words=2, max_words=16),
    },
    # A second clean corpus with varied text: about 40% book sentences (fortunes, WordNet, the King James
    # bible, the Jargon File, GCIDE's quotations, WordNet's definitions, questions from those books) and 60%
    # what people say to machines (commands, questions, numbers, digit strings, times, dates, spelled letters,
    # short phrases, single words); the real-speech reference sentences are kept out of train.
    "varied": {
        "utts_per_speaker": 60,
        "split_shares": (0.94, 0.03, 0.03),
        "augment": AugmentConfig(reverb_prob=0.0, noise_prob=0.0),
        "text": TextConfig(
            min_words=2,
            max_words=16,
            use_fortunes=False,
            use_wordnet=False,
            extra_sources=(
                ("fortunes", 8000),
                ("wordnet", 6000),
                ("bible", 3000),
                ("jargon", 1500),
                ("gcide", 3000),
                ("glosses", 3000),
                ("text_questions", 1500),
                ("commands", 7000),
                ("questions", 5000),
                ("numbers", 4000),
                ("digits", 3500),
                ("times", 3000),
                ("dates", 3000),
                ("letters", 3000),
                ("phrases", 3000),
                ("words", 3000),
            ),
            exclude_references=True,
        ),
    },
}


def estimate_seconds(text: str, *, speed: float) -> float:
    """Estimated duration of ``text`` spoken ``speed`` times faster than the engine's default."""
    return (_EST_BASE_S + _EST_PER_CHAR_S * len(text)) / speed


# ------------------------------------------------------------------------------------------------ plan


def _config_dict(config: SynthConfig) -> dict:
    """The config as JSON values; fields marked OMIT_AT_DEFAULT are left out while at their default, so a
    corpus planned before such a field existed still resumes."""
    return json.loads(json.dumps(_fields_dict(config)))


def _fields_dict(obj):
    if not dataclasses.is_dataclass(obj):
        return obj
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("plan") == OMIT_AT_DEFAULT["plan"] and value == _default_of(f):
            continue
        out[f.name] = _fields_dict(value)  # a plain value as it is: json.dumps makes tuples lists
    return out


def _default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def setting_key(voice: SpeakerVoice | dict) -> str:
    """A speaker's engine/voice/rate setting (the unit tools/score_voices.py scores): ``flite:slt:rate1.15``."""
    v = voice if isinstance(voice, dict) else dataclasses.asdict(voice)
    return f"{v['engine']}:{v['voice']}:rate{v['rate']:.2f}"


def _excluded(voice: SpeakerVoice, patterns: tuple[str, ...]) -> bool:
    key = setting_key(voice)
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _allocate_speakers(
    engine: Engine, counts: dict[str, int], rng: random.Random, excluded: tuple[str, ...] = ()
) -> dict[str, list[SpeakerVoice]]:
    """Pick ``counts[split]`` speakers per split with no split group shared between splits, leaving out the
    speakers whose setting matches ``excluded``."""
    groups: dict[str, list[SpeakerVoice]] = defaultdict(list)
    for sp in engine.speakers(rng):
        if not _excluded(sp, excluded):
            groups[sp.split_group].append(sp)
    order = sorted(groups)
    rng.shuffle(order)
    if len(order) < len(SPLITS):
        raise ValueError(
            f"engine {engine.name} has {len(order)} speaker groups left (excluded settings: {list(excluded)}); "
            "need one per split"
        )
    # Test and dev first (at least one each, leaving one for each later split); train gets the rest.
    out: dict[str, list[SpeakerVoice]] = {}
    start = 0
    for later, split in enumerate(("test", "dev", "train")):
        room = len(order) - start - (2 - later)
        take = max(1, min(counts[split], room))
        out[split] = [rng.choice(groups[g]) for g in order[start : start + take]]
        start += take
    return out


def _plan_split(
    *,
    engine: Engine,
    voices: list[SpeakerVoice],
    target_s: float,
    sentences: list[str],
    cursor: int,
    rng: random.Random,
    config: SynthConfig,
) -> tuple[list[list[dict]], int]:
    """Utterances of one engine in one split, round robin over ``voices`` until ``target_s`` (estimated)
    is reached and every voice has spoken. Returns one list per voice and the new sentence cursor."""
    per_voice: list[list[dict]] = [[] for _ in voices]
    spent, k = 0.0, 0
    while spent < target_s or k < len(voices):
        sp = voices[k % len(voices)]
        text = sentences[cursor % len(sentences)]
        cursor += 1
        native = engine.native_rate(sp.voice)  # else sox's tempo carries the speaker's rate
        fx = draw_effects(
            random.Random(rng.getrandbits(63)),  # the utterance's own seed
            config=config.augment,
            base_pitch_cents=sp.pitch_cents,
            extra_tempo=1.0 if native else sp.rate,
        )
        est = estimate_seconds(text, speed=fx.tempo * (sp.rate if native else 1.0))
        per_voice[k % len(voices)].append(
            {"text": text, "engine": engine.name, "effects": fx.to_dict(), "est_seconds": round(est, 2)}
        )
        spent += est
        k += 1
    return per_voice, cursor


def make_plan(config: SynthConfig, engines: dict[str, Engine], pools: dict[str, list[str]]) -> dict:
    """The corpus plan: speakers, chapters and utterances with every effect parameter.

    A pure function of its arguments: the same config, engines and sentence pools give the same plan.
    """
    weights = {name: config.engine_weights.get(name, 0.0) for name in engines}
    for name, engine in engines.items() if config.excluded_settings else ():
        candidates = engine.speakers(random.Random(f"{config.seed}:engine:{name}"))  # what the plan draws from
        if all(_excluded(sp, config.excluded_settings) for sp in candidates):
            logger.warning("engine %s: every setting is excluded; its share goes to the other engines", name)
            weights[name] = 0.0
    if sum(weights.values()) <= 0:
        raise ValueError(f"engine_weights {config.engine_weights} give no share to the engines {list(engines)}")
    total_w = sum(weights.values())
    shares = dict(zip(SPLITS, config.split_shares, strict=True))
    share_total = sum(shares.values())
    sentences = {}
    for split in SPLITS:
        order = list(pools[split])
        random.Random(f"{config.seed}:sentences:{split}").shuffle(order)
        sentences[split] = order
    cursor = dict.fromkeys(SPLITS, 0)  # sentences are used in order, shared by the engines of a split

    speakers: list[dict] = []
    utterances: list[dict] = []
    next_speaker, next_chapter = 100, 1000
    mean_s = estimate_seconds("X" * 50, speed=1.0)
    for name, engine in engines.items():
        if weights[name] <= 0:
            continue
        rng = random.Random(f"{config.seed}:engine:{name}")
        hours = {s: _PLAN_MARGIN * config.hours * shares[s] / share_total * weights[name] / total_w for s in SPLITS}
        counts = {s: max(1, round(hours[s] * 3600.0 / mean_s / config.utts_per_speaker)) for s in SPLITS}
        chosen = _allocate_speakers(engine, counts, rng, config.excluded_settings)
        for split in SPLITS:
            per_voice, cursor[split] = _plan_split(
                engine=engine,
                voices=chosen[split],
                target_s=hours[split] * 3600.0,
                sentences=sentences[split],
                cursor=cursor[split],
                rng=rng,
                config=config,
            )
            for sp, items in zip(chosen[split], per_voice, strict=True):
                spk = next_speaker
                next_speaker += 1
                speakers.append({"id": spk, "split": split, "key": sp.key, "voice": dataclasses.asdict(sp)})
                for c0 in range(0, len(items), config.chapter_size):
                    chapter = next_chapter
                    next_chapter += 1
                    for i, item in enumerate(items[c0 : c0 + config.chapter_size]):
                        uid = f"{spk}-{chapter}-{i:04d}"
                        utterances.append({"id": uid, "split": split, "speaker": spk, "chapter": chapter, **item})
    return {
        "version": _PLAN_VERSION,
        "config": _config_dict(config),
        "engines": sorted(engines),
        "speakers": speakers,
        "utterances": utterances,
    }


# ------------------------------------------------------------------------------------------- execution

_WORKER_ENGINES: dict[str, Engine] = {}  # per worker process: engines probed once, piper's model loaded once


def _init_worker(engines: dict[str, Engine]) -> None:
    # Called in the parent before forking: the workers inherit the probed engines.
    _WORKER_ENGINES.clear()
    _WORKER_ENGINES.update(engines)


def utterance_path(out: Path, utt: dict) -> Path:
    return out / utt["split"] / str(utt["speaker"]) / str(utt["chapter"]) / f"{utt['id']}.flac"


def _write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _chapter_task(task: tuple[str, list[dict], dict[int, dict]]) -> dict:
    """Synthesise a chapter's missing files, then write its transcript. Runs in a worker."""
    out_s, utts, voices = task
    out = Path(out_s)
    folder = utterance_path(out, utts[0]).parent
    folder.mkdir(parents=True, exist_ok=True)
    for stray in folder.glob(".*.partial"):
        stray.unlink()
    pending = [u for u in utts if not utterance_path(out, u).is_file()]
    failures: list[str] = []
    done_seconds = 0.0
    started = time.perf_counter()
    by_engine: dict[str, list[dict]] = defaultdict(list)
    for u in pending:
        by_engine[u["engine"]].append(u)
    with tempfile.TemporaryDirectory(prefix="synth-", dir=out / ".synth_tmp") as tmp:
        for name, items in by_engine.items():
            requests = [
                Request(
                    text=u["text"],
                    wav_path=Path(tmp) / f"{u['id']}.wav",
                    speaker=SpeakerVoice(**voices[u["speaker"]]),
                )
                for u in items
            ]
            try:
                _WORKER_ENGINES[name].synthesize(requests)
            except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as err:
                failures += [f"{u['id']}: {err}" for u in items]
                continue
            for u, req in zip(items, requests, strict=True):
                try:
                    audio = apply_effects(req.wav_path, EffectParams.from_dict(u["effects"]))
                except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as err:
                    failures.append(f"{u['id']}: {err}")
                    continue
                final = utterance_path(out, u)
                partial = final.with_name(f".{final.name}.partial")
                sf.write(partial, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
                os.replace(partial, final)
                done_seconds += len(audio) / SAMPLE_RATE
    if not failures:
        trans = folder / f"{utts[0]['speaker']}-{utts[0]['chapter']}.trans.txt"
        _write_atomic_text(trans, "".join(f"{u['id']} {u['text']}\n" for u in utts))
    return {
        "written": len(pending) - len(failures),
        "seconds": done_seconds,
        "failures": failures,
        "cpu_s": time.perf_counter() - started,
    }


def _tasks(out: Path, plan: dict) -> list[tuple[str, list[dict], dict[int, dict]]]:
    voices = {s["id"]: s["voice"] for s in plan["speakers"]}
    chapters: dict[int, list[dict]] = defaultdict(list)
    for u in plan["utterances"]:
        chapters[u["chapter"]].append(u)
    by_speaker: dict[int, list[tuple]] = defaultdict(list)
    for utts in chapters.values():
        trans = utterance_path(out, utts[0]).parent / f"{utts[0]['speaker']}-{utts[0]['chapter']}.trans.txt"
        if trans.is_file() and all(utterance_path(out, u).is_file() for u in utts):
            continue
        by_speaker[utts[0]["speaker"]].append((str(out), utts, {utts[0]["speaker"]: voices[utts[0]["speaker"]]}))
    # Speakers in turn (every speaker's first chapter, then every second one, ...): a run stopped part way leaves
    # every voice partly done, so a partial corpus is already a usable one (train on it, finish it later).
    queues = list(by_speaker.values())
    tasks = [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]
    # Slow engines first so the pool ends together (a stable sort: the turns survive within each group).
    slow = {"piper": 0, "festival": 1}
    tasks.sort(key=lambda t: slow.get(t[1][0]["engine"], 2))
    return tasks


def _load_or_write_plan(out: Path, plan: dict) -> bool:
    """Write the plan, or check that the one in ``out`` is the same. Returns True when resuming."""
    path = out / PLAN_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != plan:
            diffs = [k for k in plan if old.get(k) != plan[k]]
            raise ValueError(
                f"{out} holds a corpus planned with other settings (differs in {diffs}; old engines "
                f"{old.get('engines')}, new {plan['engines']}): use another --out, or delete {path} to replan"
            )
        return True
    _write_atomic_text(path, json.dumps(plan, indent=1) + "\n")
    return False


def _sox_version() -> str:
    proc = subprocess.run(["sox", "--version"], capture_output=True, text=True, timeout=30, check=False)
    return (proc.stdout + proc.stderr).strip().replace("sox:", "").strip() or "unknown"


def _summary(out: Path, plan: dict, engines: dict[str, Engine], run_info: dict) -> dict:
    seconds: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0.0))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    missing = 0
    per_speaker: dict[int, float] = defaultdict(float)
    for u in plan["utterances"]:
        path = utterance_path(out, u)
        if not path.is_file():
            missing += 1
            continue
        info = sf.info(str(path))
        seconds[u["engine"]][u["split"]] += info.frames / info.samplerate
        counts[u["engine"]][u["split"]] += 1
        per_speaker[u["speaker"]] += info.frames / info.samplerate
    hours = {e: {s: round(v / 3600.0, 4) for s, v in d.items()} for e, d in seconds.items()}
    n_speakers = {s: sum(1 for sp in plan["speakers"] if sp["split"] == s) for s in SPLITS}
    lines = [";ID  |SUBSET|MINUTES| NAME (engine:voice:settings)"]
    for sp in plan["speakers"]:
        lines.append(f"{sp['id']:<5}| {sp['split']:<5}| {per_speaker[sp['id']] / 60.0:6.2f}| {sp['key']}")
    _write_atomic_text(out / "SPEAKERS.TXT", "\n".join(lines) + "\n")
    return {
        "seed": plan["config"]["seed"],
        "settings": plan["config"],
        "hours_total": round(sum(sum(d.values()) for d in seconds.values()) / 3600.0, 4),
        "hours_per_engine_per_split": hours,
        "hours_per_engine": {e: round(sum(d.values()) / 3600.0, 4) for e, d in seconds.items()},
        "hours_per_split": {s: round(sum(d[s] for d in seconds.values()) / 3600.0, 4) for s in SPLITS},
        "utterances_per_engine_per_split": counts,
        "utterances_planned": len(plan["utterances"]),
        "utterances_missing": missing,
        "speakers_per_split": n_speakers,
        "sample_rate": SAMPLE_RATE,
        "engines": {
            name: {
                "version": e.version(),
                "licence": e.licence,
                "deterministic": e.deterministic,
                "voices": list(e.voice_names),
            }
            for name, e in engines.items()
        },
        "sox": _sox_version(),
        "run": run_info,
    }


def synthesize_corpus(out: Path, *, config: SynthConfig, jobs: int | None = None, progress: bool = True) -> dict:
    """Plan (or resume) and build the corpus in ``out``; returns the summary also written to DIR.

    Raises ValueError when no engine is available or ``out`` holds a different plan, RuntimeError when some
    utterances could not be synthesised (the others are kept; a rerun retries the missing ones).
    """
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if shutil.which("sox") is None:
        raise ValueError("sox is not installed (Debian package sox): the effects stage needs it")
    started = time.perf_counter()
    engines = available_engines(list(config.engines) or None)
    logger.info("engines used: %s", ", ".join(f"{n} ({e.version()})" for n, e in engines.items()))
    pools = load_sentences(config=config.text)
    plan = make_plan(config, engines, pools)
    out.mkdir(parents=True, exist_ok=True)
    resumed = _load_or_write_plan(out, plan)
    shutil.rmtree(out / ".synth_tmp", ignore_errors=True)
    (out / ".synth_tmp").mkdir()
    tasks = _tasks(out, plan)
    todo = sum(1 for t in tasks for u in t[1] if not utterance_path(out, u).is_file())
    logger.info(
        "%s %s: %d utterances planned, %d to synthesise in %d chapters, %d workers",
        "resuming" if resumed else "building",
        out,
        len(plan["utterances"]),
        todo,
        len(tasks),
        jobs,
    )
    written, audio_s, failures = 0, 0.0, []
    bar = tqdm(total=todo, unit="utt", disable=not progress, desc="synth")
    _init_worker(engines)
    pool = None
    try:
        if jobs == 1 or len(tasks) <= 1:
            results = map(_chapter_task, tasks)
        else:
            pool = multiprocessing.get_context("fork").Pool(min(jobs, len(tasks)))
            results = pool.imap_unordered(_chapter_task, tasks, chunksize=1)
        for r in results:
            written, audio_s = written + r["written"], audio_s + r["seconds"]
            failures += r["failures"]
            bar.update(r["written"] + len(r["failures"]))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    shutil.rmtree(out / ".synth_tmp", ignore_errors=True)
    wall = time.perf_counter() - started
    run_info = {
        "wall_seconds": round(wall, 1),
        "jobs": jobs,
        "resumed": resumed,
        "written_this_run": written,
        "audio_seconds_this_run": round(audio_s, 1),
        "failures": failures[:50],
        "failure_count": len(failures),
    }
    summary = _summary(out, plan, engines, run_info)
    summary["runs"] = _previous_runs(out / SUMMARY_FILE) + [run_info]  # every run that built this plan
    _write_atomic_text(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    logger.info(
        "wrote %d utterances (%.2f h) in %.0f s; corpus: %.3f h %s",
        written,
        audio_s / 3600.0,
        wall,
        summary["hours_total"],
        summary["hours_per_engine"],
    )
    if failures:
        raise RuntimeError(f"{len(failures)} utterance(s) failed, e.g. {failures[:3]}; rerun to retry them")
    return summary


def _previous_runs(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("could not read the previous summary %s: starting a new run history", path)
        return []
    return list(previous.get("runs", [previous["run"]] if "run" in previous else []))


def config_with_preset(preset: str | None, **overrides) -> SynthConfig:
    """A SynthConfig from a preset name (or None) and explicit overrides (None values are ignored)."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    values = dict(PRESETS.get(preset, {})) if preset else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SynthConfig(**values)
