#!/usr/bin/env python
"""How intelligible each synthetic voice setting is: Whisper tiny.en's WER on a sample of its utterances.

For a corpus made by ``asr synth`` (its ``synth_plan.json`` names every speaker's engine, voice, rate and
pitch), the utterances are grouped by *setting*: engine, voice and rate (``flite:slt:rate1.15``,
:func:`asr.synth.generate.setting_key`; pitches of one setting are pooled). From each setting the ``--k``
utterances with the lowest hash of ``seed:id`` among those whose audio exists are transcribed by Whisper
tiny.en (:mod:`asr.peers.whisper`, one thread), references and hypotheses normalised the project's way
(``normalize_text``; Whisper's digits spelled out) and counted by :mod:`asr.scoring`. A setting whose WER is
above ``--max-wer`` (0.5: issue 13's rule) teaches noise and is dropped. The WER pools the sample's errors over
its reference words; the table also gives it with each utterance's errors capped at its length ("clipped"), since
one of Whisper's repetition loops ("to be able to be able ...") can outweigh seven clean utterances;
``--rule clipped`` drops by that figure instead.

Writes to ``--out`` (default ``runs/score_voices/<corpus folder name>``):

- ``transcripts.jsonl``: one line per transcribed utterance (the cache: a rerun transcribes only what is
  missing, so a killed run resumes; lines of another transcriber are redone);
- ``voice_scores.json``: per setting the sample, the counts and WER, kept or dropped, its train hours; per
  engine the hours kept and dropped; the dropped settings; the transcriber and the command line;
- ``train_filtered.jsonl``: a manifest of the corpus's train utterances whose setting is kept (the project's
  manifest format: ``asr train ... data.train=<it>``);
- ``excluded_settings.txt``: the dropped settings, one a line, for ``SynthConfig.excluded_settings`` (future
  plans skip them; espeak-ng draws a rate per voice and seed, so its keys match only plans of the same seed:
  use a pattern such as ``espeak-ng:en-sc*`` to drop a voice whatever its rate).

    nice python tools/score_voices.py data/synth_clean                 # K=8 per setting, table printed
    nice python tools/score_voices.py data/synth_clean --k 4 --max-wer 0.4 --out runs/me/score
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr.audio import load_audio
from asr.data.manifest import Utterance, write_manifest
from asr.scoring import ErrorCounts, score_utterance
from asr.synth.generate import PLAN_FILE, setting_key, utterance_path
from asr.text.normalize import normalize_text

logger = logging.getLogger("score_voices")

CACHE = "transcripts.jsonl"
REPORT = "voice_scores.json"
MANIFEST = "train_filtered.jsonl"
EXCLUDED = "excluded_settings.txt"
MAX_WER = 0.5  # issue 13: settings Whisper cannot read (WER above this) are dropped
RULES = ("wer", "clipped")  # which WER the drop rule reads


@dataclass(frozen=True)
class Heard:
    """What a transcriber made of one utterance."""

    hyp: str  # normalised hypothesis (normalize_text, numbers spelled out)
    raw: str = ""  # the transcriber's own text
    cpu_seconds: float = 0.0
    avg_logprob: float | None = None
    no_speech_prob: float | None = None


Transcriber = Callable[[np.ndarray], Heard]  # float32 [N] 16 kHz mono -> Heard


@dataclass(frozen=True)
class SettingScore:
    setting: str  # engine:voice:rateX.XX
    engine: str
    voice: str
    rate: float
    utterances: int  # transcribed (at most k)
    available: int  # utterances of this setting whose audio exists
    ref_words: int
    substitutions: int
    deletions: int
    insertions: int
    wer: float | None  # None when nothing was transcribed
    wer_clipped: float | None  # the same with each utterance's errors capped at its words (Whisper's loops)
    kept: bool  # the rule's WER <= max_wer (unscored settings are kept: nothing says they are bad)
    train_hours: float  # audio of this setting in the train split (files that exist)


# ------------------------------------------------------------------------------------------------ sampling


def load_plan(corpus: Path) -> dict:
    path = corpus / PLAN_FILE
    if not path.is_file():
        raise ValueError(f"{path} not found: {corpus} is not a corpus made by 'asr synth'")
    plan = json.loads(path.read_text(encoding="utf-8"))
    for key in ("speakers", "utterances"):
        if not isinstance(plan.get(key), list):
            raise ValueError(f"{path}: no '{key}' list: not an asr synth plan")
    return plan


def settings_of(plan: dict) -> dict[int, str]:
    """Speaker id -> setting key."""
    return {sp["id"]: setting_key(sp["voice"]) for sp in plan["speakers"]}


def sample_utterances(plan: dict, corpus: Path, *, k: int, seed: int) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Per setting, the ``k`` existing utterances with the lowest hash of ``seed:id``, and how many exist."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    setting = settings_of(plan)
    existing: dict[str, list[dict]] = defaultdict(list)
    for utt in plan["utterances"]:
        if utterance_path(corpus, utt).is_file():
            existing[setting[utt["speaker"]]].append(utt)
    chosen = {
        key: sorted(utts, key=lambda u: hashlib.sha1(f"{seed}:{u['id']}".encode()).digest())[:k]
        for key, utts in existing.items()
    }
    for key in set(setting.values()) - set(existing):
        chosen[key] = []
    return chosen, {key: len(existing.get(key, [])) for key in chosen}


# ------------------------------------------------------------------------------------------- transcription


def read_cache(path: Path, transcriber_id: str) -> dict[str, dict]:
    """Rows of earlier runs with this transcriber; a truncated last line (a killed run) is redone, said."""
    rows: dict[str, dict] = {}
    if not path.is_file():
        return rows
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            if lineno == len(lines):
                logger.warning("%s:%d: truncated last line (a killed run?): that utterance is redone", path, lineno)
                continue
            raise ValueError(f"{path}:{lineno}: not a JSON line ({err})") from err
        if row.get("transcriber") == transcriber_id:
            rows[row["id"]] = row
    return rows


def transcribe_samples(
    samples: dict[str, list[dict]],
    corpus: Path,
    *,
    transcriber: Transcriber,
    transcriber_id: str,
    cache: Path,
    progress: bool = True,
) -> dict[str, dict]:
    """Transcribe every sampled utterance not in ``cache``; each result is appended (and flushed) at once."""
    rows = read_cache(cache, transcriber_id)
    todo = [(key, u) for key, utts in sorted(samples.items()) for u in utts if u["id"] not in rows]
    logger.info("%d sampled utterances, %d in the cache, %d to transcribe", len(rows) + len(todo), len(rows), len(todo))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a", encoding="utf-8") as out:
        for key, utt in tqdm(todo, desc="transcribe", unit="utt", disable=not progress):
            path = utterance_path(corpus, utt)
            samples_16k = load_audio(path).numpy()
            heard = transcriber(samples_16k)
            row = {
                "id": utt["id"],
                "setting": key,
                "ref": normalize_text(utt["text"]),
                "hyp": heard.hyp,
                "raw": heard.raw,
                "audio_seconds": round(samples_16k.size / 16000, 3),
                "cpu_seconds": round(heard.cpu_seconds, 3),
                "avg_logprob": heard.avg_logprob,
                "no_speech_prob": heard.no_speech_prob,
                "transcriber": transcriber_id,
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            rows[utt["id"]] = row
    return rows


def whisper_transcriber(threads: int = 1) -> tuple[Transcriber, str]:
    """Whisper tiny.en (asr.peers.whisper) and an id naming its settings and package versions."""
    from asr.peers.whisper import WhisperConfig, WhisperTiny, whisper_versions

    config = WhisperConfig(cpu_threads=threads)
    whisper = WhisperTiny(config)

    def transcribe(samples: np.ndarray) -> Heard:
        r = whisper.transcribe(samples)
        lp = r.confidence()["avg_logprob"]
        return Heard(r.normalized, r.text, r.cpu_seconds, lp, round(r.no_speech_prob, 4))

    settings = {k: v for k, v in asdict(config).items() if k not in ("cpu_threads", "device")}
    ident = json.dumps({"whisper": "tiny.en", **settings, **whisper_versions()}, sort_keys=True)
    return transcribe, ident


# ---------------------------------------------------------------------------------------------- aggregation


def train_hours_by_setting(plan: dict, corpus: Path) -> dict[str, float]:
    """Audio hours per setting in the train split (existing files; durations from their headers)."""
    setting = settings_of(plan)
    seconds: dict[str, float] = defaultdict(float)
    for utt in plan["utterances"]:
        path = utterance_path(corpus, utt)
        if utt["split"] == "train" and path.is_file():
            info = sf.info(str(path))
            seconds[setting[utt["speaker"]]] += info.frames / info.samplerate
    return {key: s / 3600.0 for key, s in seconds.items()}


class Pooled(NamedTuple):
    counts: ErrorCounts  # summed over the utterances: WER = errors / reference words
    clipped_errors: int  # errors with each utterance's capped at its reference words
    n: int  # utterances

    @property
    def wer_clipped(self) -> float:
        return self.clipped_errors / self.counts.ref_len if self.counts.ref_len else float(self.clipped_errors)


def pooled_counts(utts: Iterable[dict], rows: dict[str, dict]) -> Pooled:
    """Word error counts of ``utts`` pooled, and the same with each utterance's errors capped at its length: one
    of Whisper's repetition loops ("to be able to be able ...") otherwise outweighs every other utterance."""
    counts, clipped, n = ErrorCounts(0, 0, 0, 0), 0, 0
    for utt in utts:
        row = rows.get(utt["id"])
        if row is None:
            raise ValueError(f"utterance {utt['id']} was sampled but has no transcript")
        c = score_utterance(utt["id"], row["ref"], row["hyp"]).counts
        counts, clipped, n = counts + c, clipped + min(c.errors, max(c.ref_len, 1)), n + 1
    return Pooled(counts, clipped, n)


def aggregate(
    plan: dict,
    samples: dict[str, list[dict]],
    available: dict[str, int],
    rows: dict[str, dict],
    *,
    max_wer: float,
    train_hours: dict[str, float],
    rule: str = "wer",
) -> list[SettingScore]:
    """One score per setting: the word errors of its sampled utterances pooled (errors / reference words)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    voices = {setting_key(sp["voice"]): sp["voice"] for sp in plan["speakers"]}
    scores = []
    for key in sorted(voices):
        pooled = pooled_counts(samples.get(key, []), rows)
        counts, n = pooled.counts, pooled.n
        wer = counts.rate if n else None
        judged = pooled.wer_clipped if rule == "clipped" else wer
        v = voices[key]
        scores.append(
            SettingScore(
                setting=key,
                engine=v["engine"],
                voice=v["voice"],
                rate=v["rate"],
                utterances=n,
                available=available.get(key, 0),
                ref_words=counts.ref_len,
                substitutions=counts.substitutions,
                deletions=counts.deletions,
                insertions=counts.insertions,
                wer=None if wer is None else round(wer, 4),
                wer_clipped=round(pooled.wer_clipped, 4) if n else None,
                kept=judged is None or judged <= max_wer,
                train_hours=round(train_hours.get(key, 0.0), 4),
            )
        )
    return scores


def hours_by_engine(scores: list[SettingScore]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"kept": 0.0, "dropped": 0.0})
    for s in scores:
        out[s.engine]["kept" if s.kept else "dropped"] += s.train_hours
    return {e: {k: round(v, 4) for k, v in d.items()} for e, d in sorted(out.items())}


def filtered_train_manifest(plan: dict, corpus: Path, dropped: set[str]) -> list[Utterance]:
    """The train utterances (existing files) whose setting is not dropped, as manifest entries."""
    setting = settings_of(plan)
    utts = []
    for utt in plan["utterances"]:
        path = utterance_path(corpus, utt)
        key = setting[utt["speaker"]]
        if utt["split"] != "train" or key in dropped or not path.is_file():
            continue
        info = sf.info(str(path))
        utts.append(
            Utterance(
                id=utt["id"],
                audio=str(path.resolve()),
                duration=round(info.frames / info.samplerate, 4),
                text=utt["text"],
                speaker=str(utt["speaker"]),
                extra={"chapter": str(utt["chapter"]), "engine": utt["engine"], "setting": key},
            )
        )
    return utts


def format_table(scores: list[SettingScore], max_wer: float) -> str:
    width = max([len("setting"), *(len(s.setting) for s in scores)]) + 2
    head = f"{'setting':<{width}}{'n':>4}{'words':>7}{'WER':>8}{'clipped':>9}{'train h':>9}  verdict"
    lines = [head, "-" * len(head)]
    for s in sorted(scores, key=lambda s: (s.engine, -1 if s.wer is None else s.wer, s.setting)):
        wer = "-" if s.wer is None else f"{s.wer:.3f}"
        clipped = "-" if s.wer_clipped is None else f"{s.wer_clipped:.3f}"
        verdict = "unscored" if s.wer is None else ("keep" if s.kept else f"DROP (> {max_wer})")
        lines.append(
            f"{s.setting:<{width}}{s.utterances:>4}{s.ref_words:>7}{wer:>8}{clipped:>9}{s.train_hours:>9.3f}  {verdict}"
        )
    return "\n".join(lines)


def engine_summary(scores: list[SettingScore], rows: dict[str, dict], samples: dict[str, list[dict]]) -> str:
    hours = hours_by_engine(scores)
    lines = [f"{'engine':<17}{'settings':>9}{'dropped':>8}{'WER':>8}{'train h kept':>14}{'dropped':>9}"]
    for engine, h in hours.items():
        mine = [s for s in scores if s.engine == engine]
        counts = pooled_counts((u for s in mine for u in samples.get(s.setting, [])), rows).counts
        wer = f"{counts.rate:.3f}" if counts.ref_len else "-"
        n_drop = sum(not s.kept for s in mine)
        lines.append(f"{engine:<17}{len(mine):>9}{n_drop:>8}{wer:>8}{h['kept']:>14.3f}{h['dropped']:>9.3f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ main


class Scored(NamedTuple):
    report: dict  # what voice_scores.json holds
    scores: list[SettingScore]
    rows: dict[str, dict]  # utterance id -> transcript row
    samples: dict[str, list[dict]]  # setting -> sampled plan utterances


def score_corpus(
    corpus: Path,
    out: Path,
    *,
    transcriber: Transcriber,
    transcriber_id: str,
    k: int = 8,
    seed: int = 0,
    max_wer: float = MAX_WER,
    rule: str = "wer",
    progress: bool = True,
) -> Scored:
    """Sample, transcribe (resumably), score, and write the report, the filtered manifest and the exclusions."""
    plan = load_plan(corpus)
    samples, available = sample_utterances(plan, corpus, k=k, seed=seed)
    started = time.perf_counter()
    rows = transcribe_samples(
        samples, corpus, transcriber=transcriber, transcriber_id=transcriber_id, cache=out / CACHE, progress=progress
    )
    train_hours = train_hours_by_setting(plan, corpus)
    scores = aggregate(plan, samples, available, rows, max_wer=max_wer, train_hours=train_hours, rule=rule)
    dropped = {s.setting for s in scores if not s.kept}
    manifest = filtered_train_manifest(plan, corpus, dropped)
    write_manifest(out / MANIFEST, manifest)
    (out / EXCLUDED).write_text("".join(f"{key}\n" for key in sorted(dropped)), encoding="utf-8")
    sampled = [rows[u["id"]] for utts in samples.values() for u in utts]
    report = {
        "corpus": str(corpus),
        "k": k,
        "seed": seed,
        "max_wer": max_wer,
        "rule": rule,
        "transcriber": json.loads(transcriber_id) if transcriber_id.startswith("{") else transcriber_id,
        "settings": [asdict(s) for s in scores],
        "dropped": sorted(dropped),
        "train_hours_by_engine": hours_by_engine(scores),
        "train_hours_kept": round(sum(u.duration for u in manifest) / 3600.0, 4),
        "train_utterances_kept": len(manifest),
        "sampled_audio_seconds": round(sum(r["audio_seconds"] for r in sampled), 1),
        "transcriber_cpu_seconds": round(sum(r["cpu_seconds"] for r in sampled), 1),
        "wall_seconds_this_run": round(time.perf_counter() - started, 1),
        "corpus_complete": (corpus / "synth_summary.json").is_file(),
        "command": shlex.join(sys.argv),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = out / f".{REPORT}.tmp"
    tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out / REPORT)
    return Scored(report, scores, rows, samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="folder made by asr synth (holds synth_plan.json)")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/score_voices/<corpus name>")
    parser.add_argument("--k", type=int, default=8, help="utterances transcribed per setting (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--max-wer", type=float, default=MAX_WER, help=f"drop settings above this (default {MAX_WER})")
    parser.add_argument("--rule", choices=RULES, default="wer", help="which WER the drop rule reads (default wer)")
    parser.add_argument("--threads", type=int, default=1, help="Whisper's CPU threads (default 1: a shared machine)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per utterance otherwise
    out = args.out or Path("runs/score_voices") / args.corpus.resolve().name
    transcriber, ident = whisper_transcriber(args.threads)
    scored = score_corpus(
        args.corpus,
        out,
        transcriber=transcriber,
        transcriber_id=ident,
        k=args.k,
        seed=args.seed,
        max_wer=args.max_wer,
        rule=args.rule,
        progress=not args.no_progress,
    )
    report = scored.report
    print(format_table(scored.scores, args.max_wer))
    print()
    print(engine_summary(scored.scores, scored.rows, scored.samples))
    print()
    print(
        f"dropped {len(report['dropped'])} of {len(report['settings'])} settings (WER > {args.max_wer}); "
        f"train kept {report['train_hours_kept']:.3f} h in {report['train_utterances_kept']} utterances; "
        f"Whisper {report['transcriber_cpu_seconds']:.0f} CPU s on {report['sampled_audio_seconds']:.0f} s of audio"
    )
    print(f"wrote {out / REPORT}, {out / MANIFEST}, {out / EXCLUDED}, {out / CACHE}")
    if not report["corpus_complete"]:
        print(f"note: {args.corpus} has no synth_summary.json yet: the corpus is unfinished, scores cover its files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
