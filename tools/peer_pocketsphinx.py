#!/usr/bin/env python
"""pocketsphinx as a peer row: its WER, CER and real-time factor on our test sets, scored the way we score.

Every utterance of each ``--data`` set is decoded by pocketsphinx 5 (PyPI ``pocketsphinx``) with its bundled
US English models (acoustic model ``en-us``, trigram LM ``en-us.lm.bin``, ``cmudict-en-us.dict``) and its
default configuration. Audio is loaded by the project's loader (:meth:`Utterance.load_audio`, 16 kHz mono),
converted to 16-bit PCM and fed to the decoder

- by default as the whole utterance in one ``process_raw(..., full_utt=True)`` call (pocketsphinx then
  normalises the cepstra over the whole utterance, its default ``-cmn batch``), or
- with ``--chunk-ms N`` in N ms pieces (``full_utt=False``: live cepstral mean), as a streaming client would.

Each utterance is decoded on its own: the decoder's running cepstral mean is put back to its initial value
before every utterance (pocketsphinx otherwise carries it over from the previous one, which would make a
result depend on the order of the set). References and hypotheses go through the project's one text
normalisation (:func:`asr.text.normalize.normalize_text`, as ``asr eval`` does) and are counted by
:mod:`asr.scoring` (jiwer), so the figures sit beside our models' rows in ``docs/results.md``.

Timing: the CPU time of the decoding thread (``time.thread_time``) from ``start_utt`` to ``end_utt``, summed
over the set, over the audio seconds (the real-time factor, one thread: pocketsphinx does not use more).
Loading and resampling the audio is not counted, as in ``asr eval``. Wall-clock time is reported beside it.

References a real-speech manifest made with pocketsphinx's help (``extra["reference_kind"]``
``whisper+pocketsphinx`` or ``pocketsphinx+hint``, see :mod:`asr.data.realspeech_labels`) are circular for this
peer: each set's summary and the table also give the WER on the other references (:mod:`asr.peers.sets`).

Writes ``DIR/peer_pocketsphinx.json`` (per set: utterances, audio seconds, WER, CER, RTF and the
hit/substitution/deletion/insertion counts; the settings, the pocketsphinx version and the command line),
``DIR/<set>/summary.json`` and ``DIR/<set>/utterances.jsonl`` (id, ref, hyp, counts, alignment per utterance).
A set whose ``summary.json`` exists with the same settings is not decoded again (``--force`` redoes it).

    python tools/peer_pocketsphinx.py                          # data/synth/test and the real-speech dev set
    python tools/peer_pocketsphinx.py --data mine=path/to/manifest.jsonl --chunk-ms 160
    python tools/peer_pocketsphinx.py --data data/realspeech/realspeech-dev.jsonl \
        --data data/realspeech/realspeech-test.jsonl       # sets named after the files
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from asr.data.manifest import Utterance
from asr.data.sources import load_utterances
from asr.peers import sets
from asr.peers.pocketsphinx import (
    SAMPLE_RATE,
    clean_hypothesis,
    decode_pcm,
    decoder_config,
    import_pocketsphinx,
    pocketsphinx_version,
    to_pcm16,
)
from asr.text.normalize import normalize_text

DEFAULT_DATA = ("synth_test=data/synth/test", "realspeech=data/realspeech/realspeech.jsonl")
DEFAULT_OUT = "runs/peer_pocketsphinx"
SUMMARY = sets.SUMMARY
REPORT = "peer_pocketsphinx.json"


@dataclass(frozen=True)
class DecodeSettings:
    """How pocketsphinx is run; a set is decoded again when these (or the version) change."""

    chunk_ms: float = 0.0  # 0: the whole utterance in one process_raw(full_utt=True); > 0: pieces of this length
    reset_cmn: bool = True  # put the cepstral mean back to its initial value before each utterance
    sample_rate: int = SAMPLE_RATE  # Hz of the PCM fed to the decoder (the en-us model's rate)
    models: str = "bundled en-us (acoustic model, en-us.lm.bin, cmudict-en-us.dict), default config"


# ------------------------------------------------------------------------------------------- pocketsphinx


def _import_pocketsphinx():
    """The pocketsphinx module (version 5), or SystemExit saying how to install it."""
    try:
        return import_pocketsphinx()
    except ImportError as exc:
        raise SystemExit(f"peer_pocketsphinx: {exc}") from exc


# ------------------------------------------------------------------------------------------------- a set


def parse_data_arg(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after the file stem / folder name)."""
    return sets.parse_data_arg(spec, tool="peer_pocketsphinx")


def decode_set(
    name: str,
    source: Path,
    out_dir: Path,
    *,
    decoder,
    settings: DecodeSettings,
    meta: dict[str, Any],
    progress: bool = True,
) -> dict[str, Any]:
    """Decode and score one set; writes ``out_dir/utterances.jsonl`` and ``out_dir/summary.json``."""
    from tqdm import tqdm

    utts: list[Utterance] = load_utterances(source)
    chunk = int(round(settings.chunk_ms * settings.sample_rate / 1000)) if settings.chunk_ms > 0 else 0
    initial_cmn = decoder.get_cmn(False) if settings.reset_cmn else None
    hyps: dict[str, str] = {}
    raw_hyps: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    cpu_total = wall_total = 0.0
    bar = tqdm(utts, desc=f"pocketsphinx {name}", unit="utt", disable=not progress)
    for utt in bar:
        try:
            samples = utt.load_audio(target_sr=settings.sample_rate).numpy()
        except ValueError as exc:
            failed[utt.id] = str(exc)
            continue
        raw, cpu, wall = decode_pcm(decoder, to_pcm16(samples), chunk=chunk, initial_cmn=initial_cmn)
        hyps[utt.id] = normalize_text(clean_hypothesis(raw))
        raw_hyps[utt.id] = {"raw_hyp": raw, "cpu_seconds": round(cpu, 4), "audio_seconds": round(utt.duration, 3)}
        cpu_total += cpu
        wall_total += wall
    return sets.score_set(
        name,
        source,
        utts,
        hyps,
        out_dir,
        peer="pocketsphinx",
        per_utt_extra=raw_hyps,
        failed=failed,
        cpu_seconds=cpu_total,
        wall_seconds=wall_total,
        meta=meta,
    )


# --------------------------------------------------------------------------------------------------- main


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    return sets.format_table(summaries, peer="pocketsphinx")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    sets.add_set_arguments(p, default_data=DEFAULT_DATA, default_out=DEFAULT_OUT)
    p.add_argument(
        "--chunk-ms",
        type=float,
        default=0.0,
        help="feed the audio in pieces of this many ms (default 0: the whole utterance at once)",
    )
    p.add_argument(
        "--no-reset-cmn",
        action="store_true",
        help="carry pocketsphinx's cepstral mean from one utterance to the next (order-dependent)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.chunk_ms < 0:
        raise SystemExit(f"peer_pocketsphinx: --chunk-ms must be >= 0, got {args.chunk_ms}")
    data = sets.check_data_args(
        args.data or DEFAULT_DATA,
        tool="peer_pocketsphinx",
    )
    pocketsphinx = _import_pocketsphinx()

    settings = DecodeSettings(chunk_ms=args.chunk_ms, reset_cmn=not args.no_reset_cmn)
    version = pocketsphinx_version()
    out = Path(args.out)
    command = shlex.join(["tools/peer_pocketsphinx.py", *(sys.argv[1:] if argv is None else argv)])
    decoder = pocketsphinx.Decoder(loglevel="FATAL")
    meta = {
        "settings": asdict(settings),
        "pocketsphinx_version": version,
        "decoder_config": decoder_config(decoder),
        "command": command,
    }

    decode = functools.partial(decode_set, decoder=decoder, settings=settings, meta=meta, progress=not args.no_progress)
    summaries = sets.run_sets(
        data,
        out,
        tool="peer_pocketsphinx",
        setup={"settings": asdict(settings), "pocketsphinx_version": version},
        decode=decode,
        force=args.force,
    )

    report = {
        "tool": "tools/peer_pocketsphinx.py",
        "command": command,
        "pocketsphinx_version": version,
        "settings": asdict(settings),
        "decoder_config": meta["decoder_config"],
        "sets": summaries,
    }
    out.mkdir(parents=True, exist_ok=True)
    sets.write_json(out / REPORT, report)
    mode = "whole utterances" if settings.chunk_ms == 0 else f"{settings.chunk_ms:g} ms chunks"
    print(f"pocketsphinx {version}, bundled en-us models, {mode}")
    print(format_table(summaries))
    print(f"wrote {out / REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
