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

Writes ``DIR/peer_pocketsphinx.json`` (per set: utterances, audio seconds, WER, CER, RTF and the
hit/substitution/deletion/insertion counts; the settings, the pocketsphinx version and the command line),
``DIR/<set>/summary.json`` and ``DIR/<set>/utterances.jsonl`` (id, ref, hyp, counts, alignment per utterance).
A set whose ``summary.json`` exists with the same settings is not decoded again (``--force`` redoes it).

    python tools/peer_pocketsphinx.py                          # data/synth/test and the real-speech dev set
    python tools/peer_pocketsphinx.py --data mine=path/to/manifest.jsonl --chunk-ms 160
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import json
import re
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from asr.data.manifest import Utterance  # noqa: E402
from asr.data.sources import load_utterances  # noqa: E402
from asr.scoring import ErrorCounts, score_corpus, write_per_utterance  # noqa: E402
from asr.text.normalize import normalize_text  # noqa: E402

DEFAULT_DATA = ("synth_test=data/synth/test", "realspeech=data/realspeech/realspeech.jsonl")
DEFAULT_OUT = "runs/peer_pocketsphinx"
SAMPLE_RATE = 16000  # the en-us acoustic model's rate
SUMMARY = "summary.json"
REPORT = "peer_pocketsphinx.json"
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VARIANT = re.compile(r"\(\d+\)$")  # "read(2)": the dictionary's second pronunciation of "read"
_INSTALL_HINT = "pip install 'pocketsphinx>=5,<6' (it is in the dev extra: pip install -e '.[dev]')"


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
        import pocketsphinx
    except ImportError as exc:
        raise SystemExit(f"peer_pocketsphinx: pocketsphinx is not installed ({exc}): {_INSTALL_HINT}") from exc
    version = pocketsphinx_version()
    if not version.startswith("5."):
        raise SystemExit(f"peer_pocketsphinx: pocketsphinx 5 is needed, found {version}: {_INSTALL_HINT}")
    return pocketsphinx


def pocketsphinx_version() -> str:
    try:
        return importlib.metadata.version("pocketsphinx")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def decoder_config(decoder) -> dict[str, Any]:
    """The decoder settings that decide its output (model files by name, beams, weights, front end)."""
    keys = ("hmm", "lm", "dict", "samprate", "cmn", "cmninit", "beam", "wbeam", "pbeam", "lw", "wip", "bestpath")
    out: dict[str, Any] = {}
    for key in keys:
        try:
            value = decoder.config[key]
        except (KeyError, RuntimeError):
            continue
        out[key] = Path(value).name if key in ("hmm", "lm", "dict") and value else value
    return out


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) ``[N]`` -> little-endian int16 ``[N]`` (clipped, rounded)."""
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples [N], got shape {samples.shape}")
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")


def _clean_hyp(text: str) -> str:
    """pocketsphinx words as words: drop fillers (<sil>, [NOISE], ++NOISE++) and pronunciation variants (2)."""
    words = []
    for word in text.split():
        if word[:1] in "<[+":
            continue
        words.append(_VARIANT.sub("", word))
    return " ".join(words)


def decode_pcm(decoder, pcm: np.ndarray, *, chunk: int, initial_cmn: str | None) -> tuple[str, float, float]:
    """One utterance: ``(raw hypothesis, thread CPU seconds, wall seconds)``; ``chunk`` 0 = whole utterance."""
    if initial_cmn is not None:
        decoder.set_cmn(initial_cmn)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    decoder.start_utt()
    if chunk <= 0:
        decoder.process_raw(pcm.tobytes(), False, True)
    else:
        for start in range(0, pcm.shape[0], chunk):
            decoder.process_raw(pcm[start : start + chunk].tobytes(), False, False)
    decoder.end_utt()
    hyp = decoder.hyp()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    return (hyp.hypstr if hyp is not None else ""), cpu, wall


# ------------------------------------------------------------------------------------------------- a set


def parse_data_arg(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after the file stem / folder name)."""
    name, sep, path = spec.partition("=")
    if not sep:
        path, p = spec, Path(spec)
        name = p.stem if p.suffix == ".jsonl" else p.name
    if not path or not _SET_NAME.match(name):
        raise SystemExit(
            f"peer_pocketsphinx: bad --data {spec!r}: give NAME=PATH with NAME of letters, digits, '_', '.', '-'"
        )
    return name, Path(path)


def _counts_json(c: ErrorCounts) -> dict[str, int]:
    return asdict(c) | {"ref_len": c.ref_len, "errors": c.errors}


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
        hyps[utt.id] = normalize_text(_clean_hyp(raw))
        raw_hyps[utt.id] = {"raw_hyp": raw, "cpu_seconds": round(cpu, 4), "audio_seconds": round(utt.duration, 3)}
        cpu_total += cpu
        wall_total += wall
    if failed:
        print(
            f"[{name}] {len(failed)} utterances could not be read (scored as all deleted): "
            f"{dict(list(failed.items())[:5])}",
            file=sys.stderr,
        )

    ids = [u.id for u in utts]
    refs = [normalize_text(u.text) for u in utts]
    outs = [hyps.get(u.id, "") for u in utts]
    words, per_utt = score_corpus(ids, refs, outs, unit="word")
    chars, _ = score_corpus(ids, refs, outs, unit="char")
    audio_seconds = sum(u.duration for u in utts)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_per_utterance(out_dir / "utterances.jsonl", per_utt, extra=raw_hyps)
    summary = {
        "set": name,
        "source": str(source),
        "n_utts": len(utts),
        "n_failed": len(failed),
        "failed": failed,
        "audio_seconds": round(audio_seconds, 3),
        "wer": words.rate,
        "cer": chars.rate,
        "rtf": cpu_total / max(audio_seconds, 1e-9),
        "wall_rtf": wall_total / max(audio_seconds, 1e-9),
        "cpu_seconds": round(cpu_total, 3),
        "wall_seconds": round(wall_total, 3),
        "counts": _counts_json(words),
        "char_counts": _counts_json(chars),
        **meta,
    }
    tmp = out_dir / f".{SUMMARY}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(out_dir / SUMMARY)
    return summary


def _existing(out_dir: Path, *, source: Path, settings: DecodeSettings, version: str) -> dict[str, Any] | None:
    """A finished set's summary when it was made from the same source and settings; else None or an error."""
    path = out_dir / SUMMARY
    if not path.is_file():
        return None
    done = json.loads(path.read_text())
    mine = {"source": str(source), "settings": asdict(settings), "pocketsphinx_version": version}
    theirs = {k: done.get(k) for k in mine}
    if theirs != mine:
        raise SystemExit(
            f"peer_pocketsphinx: {str(path)!r} was made with {theirs}, not {mine}: "
            "rerun with --force to decode this set again (or choose another --out)"
        )
    return done


# --------------------------------------------------------------------------------------------------- main


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    head = f"{'set':<14}{'utts':>6}{'audio':>9}{'WER %':>8}{'CER %':>8}{'sub':>7}{'del':>7}{'ins':>7}{'RTF':>8}"
    lines = [head, "-" * len(head)]
    for name, s in summaries.items():
        c = s["counts"]
        lines.append(
            f"{name:<14}{s['n_utts']:>6}{s['audio_seconds'] / 60:>8.1f}m{100 * s['wer']:>8.2f}{100 * s['cer']:>8.2f}"
            f"{c['substitutions']:>7}{c['deletions']:>7}{c['insertions']:>7}{s['rtf']:>8.3f}"
        )
    lines.append("(RTF: decoding CPU seconds of the one decoder thread / audio seconds; sub/del/ins in words)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="[NAME=]PATH",
        help=f"a manifest (.jsonl), LibriSpeech-layout or Kaldi folder; repeatable (default: {' '.join(DEFAULT_DATA)})",
    )
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
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
    p.add_argument("--force", action="store_true", help="decode sets again even if their summary exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.chunk_ms < 0:
        raise SystemExit(f"peer_pocketsphinx: --chunk-ms must be >= 0, got {args.chunk_ms}")
    sets = [parse_data_arg(s) for s in (args.data or DEFAULT_DATA)]
    names = [n for n, _ in sets]
    if len(set(names)) != len(names):
        raise SystemExit(f"peer_pocketsphinx: --data names repeat ({names}): name them with NAME=PATH")
    missing = [f"{n}={p}" for n, p in sets if not p.exists()]
    if missing:
        raise SystemExit(
            f"peer_pocketsphinx: data not found: {missing} (make the synthetic test set with recipes/synth, "
            "the real-speech manifest with 'asr prepare realspeech', or pass --data NAME=PATH)"
        )
    pocketsphinx = _import_pocketsphinx()
    try:
        import torch

        torch.set_num_threads(1)  # audio loading and resampling: one thread, like the decoder
    except ImportError:
        pass

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
    summaries: dict[str, dict[str, Any]] = {}
    for name, source in sets:
        set_dir = out / name
        done = None if args.force else _existing(set_dir, source=source, settings=settings, version=version)
        if done is not None:
            print(f"[{name}] done before ({set_dir / SUMMARY}): skipped (--force decodes it again)")
            summaries[name] = done
            continue
        try:
            summaries[name] = decode_set(
                name,
                source,
                set_dir,
                decoder=decoder,
                settings=settings,
                meta=meta | {"finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
                progress=not args.no_progress,
            )
        except ValueError as exc:
            raise SystemExit(f"peer_pocketsphinx: set {name!r} ({source}): {exc}") from exc

    report = {
        "tool": "tools/peer_pocketsphinx.py",
        "command": command,
        "pocketsphinx_version": version,
        "settings": asdict(settings),
        "decoder_config": meta["decoder_config"],
        "sets": summaries,
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{REPORT}.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out / REPORT)
    mode = "whole utterances" if settings.chunk_ms == 0 else f"{settings.chunk_ms:g} ms chunks"
    print(f"pocketsphinx {version}, bundled en-us models, {mode}")
    print(format_table(summaries))
    print(f"wrote {out / REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
