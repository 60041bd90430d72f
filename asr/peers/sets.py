"""Scoring a peer recognizer on a set the way ``asr eval`` scores our models, and saying where the references
came from: shared by ``tools/peer_pocketsphinx.py`` and ``tools/peer_whisper.py``.

References and hypotheses go through the project's one normalisation (hypotheses already normalised by the
peer module: :func:`asr.peers.whisper.normalize_hypothesis` spells numbers), and are counted by
:mod:`asr.scoring` (jiwer).

Circularity: a reference made with the help of the peer being scored (``extra["reference_kind"]`` of a
``realspeech-*`` manifest naming it: ``whisper``, ``whisper+pocketsphinx``, ``whisper+hint`` for Whisper;
``whisper+pocketsphinx``, ``pocketsphinx+hint`` for pocketsphinx) flatters that peer: on such an utterance it is
right by construction. Each set's summary therefore also gives the peer's WER/CER on the *independent*
references only (metadata, or made without it), and the counts of reference kinds.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from asr.data.manifest import Utterance
from asr.scoring import ErrorCounts, score_corpus, write_per_utterance
from asr.text.normalize import normalize_text

__all__ = [
    "SUMMARY",
    "add_set_arguments",
    "check_data_args",
    "format_table",
    "made_with",
    "parse_data_arg",
    "run_sets",
    "score_set",
    "write_json",
]

SUMMARY = "summary.json"
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_data_arg(spec: str, *, tool: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after the file stem / folder name); SystemExit naming ``tool`` if bad."""
    name, sep, path = spec.partition("=")
    if not sep:
        path, p = spec, Path(spec)
        name = p.stem if p.suffix == ".jsonl" else p.name
    if not path or not _SET_NAME.match(name):
        raise SystemExit(f"{tool}: bad --data {spec!r}: give NAME=PATH with NAME of letters, digits, '_', '.', '-'")
    return name, Path(path)


def made_with(utt: Utterance, peer: str) -> bool:
    """Whether ``peer`` helped make the utterance's reference (its reference kind names it)."""
    kind = utt.extra.get("reference_kind", "")
    return peer in kind.split("+") if isinstance(kind, str) else False


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _counts_json(c: ErrorCounts) -> dict[str, int]:
    return asdict(c) | {"ref_len": c.ref_len, "errors": c.errors}


def score_set(
    name: str,
    source: Path,
    utts: Sequence[Utterance],
    hyps: dict[str, str],
    out_dir: Path,
    *,
    peer: str,
    per_utt_extra: dict[str, dict[str, Any]],
    failed: dict[str, str],
    cpu_seconds: float,
    wall_seconds: float,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Score ``hyps`` (normalised, by id; a missing one scores as all deleted) against ``utts``; writes
    ``out_dir/utterances.jsonl`` and ``out_dir/summary.json`` and returns the summary."""
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
    chars, per_utt_chars = score_corpus(ids, refs, outs, unit="char")
    indep = [i for i, u in enumerate(utts) if not made_with(u, peer)]
    w_ind = sum((per_utt[i].counts for i in indep), ErrorCounts(0, 0, 0, 0))
    c_ind = sum((per_utt_chars[i].counts for i in indep), ErrorCounts(0, 0, 0, 0))
    audio_seconds = sum(u.duration for u in utts)
    kinds = Counter(str(u.extra.get("reference_kind", "unstated")) for u in utts)
    extra = {u.id: per_utt_extra.get(u.id, {}) | {"reference_kind": kinds_of(u)} for u in utts}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_per_utterance(out_dir / "utterances.jsonl", per_utt, extra=extra)
    summary = {
        "set": name,
        "source": str(source),
        "n_utts": len(utts),
        "n_failed": len(failed),
        "failed": failed,
        "audio_seconds": round(audio_seconds, 3),
        "wer": words.rate,
        "cer": chars.rate,
        "rtf": cpu_seconds / max(audio_seconds, 1e-9),
        "wall_rtf": wall_seconds / max(audio_seconds, 1e-9),
        "cpu_seconds": round(cpu_seconds, 3),
        "wall_seconds": round(wall_seconds, 3),
        "counts": _counts_json(words),
        "char_counts": _counts_json(chars),
        "reference_kinds": dict(sorted(kinds.items())),
        "n_references_made_with_peer": len(utts) - len(indep),
        "n_independent": len(indep),
        "wer_independent": w_ind.rate if indep else None,
        "cer_independent": c_ind.rate if indep else None,
        **meta,
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out_dir / SUMMARY, summary)
    return summary


def kinds_of(u: Utterance) -> str:
    return str(u.extra.get("reference_kind", "unstated"))


def format_table(summaries: dict[str, dict[str, Any]], *, peer: str) -> str:
    """One row per set: size, WER/CER, error counts, RTF, and the WER on references made without ``peer``."""
    head = (
        f"{'set':<18}{'utts':>6}{'audio':>9}{'WER %':>8}{'CER %':>8}{'sub':>6}{'del':>6}{'ins':>6}{'RTF':>7}"
        f"{'refs by peer':>13}{'WER % indep.':>14}"
    )
    lines = [head, "-" * len(head)]
    for name, s in summaries.items():
        c = s["counts"]
        n_peer = s.get("n_references_made_with_peer", 0)
        ind = s.get("wer_independent")
        ind_text = "-" if ind is None else f"{100 * ind:.2f} ({s.get('n_independent')})"
        lines.append(
            f"{name:<18}{s['n_utts']:>6}{s['audio_seconds'] / 60:>8.1f}m{100 * s['wer']:>8.2f}{100 * s['cer']:>8.2f}"
            f"{c['substitutions']:>6}{c['deletions']:>6}{c['insertions']:>6}{s['rtf']:>7.3f}"
            f"{n_peer:>13}{ind_text:>14}"
        )
    lines.append(
        f"(RTF: decoding CPU seconds / audio seconds; sub/del/ins in words. 'refs by peer': utterances whose reference"
        f" {peer} helped make (reference_kind names it: circular, {peer} is right on them by construction);"
        f" 'WER % indep.': {peer}'s WER on the other utterances (count in brackets))"
    )
    return "\n".join(lines)


def add_set_arguments(p: argparse.ArgumentParser, *, default_data: Sequence[str], default_out: str) -> None:
    """The options every peer tool shares: ``--data`` (repeatable), ``--out``, ``--force``, ``--no-progress``."""
    p.add_argument(
        "--data",
        action="append",
        default=None,
        metavar="[NAME=]PATH",
        help=f"a manifest (.jsonl), LibriSpeech-layout or Kaldi folder; repeatable (default: {' '.join(default_data)})",
    )
    p.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    p.add_argument("--force", action="store_true", help="decode sets again even if their summary exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


_DATA_HINT = "make the synthetic test set with recipes/synth, the real-speech manifests with 'asr prepare realspeech'"


def check_data_args(specs: Sequence[str], *, tool: str, hint: str = _DATA_HINT) -> list[tuple[str, Path]]:
    """``--data`` values -> ``[(name, path)]``: names unique and every path present (SystemExit otherwise).

    Also limits torch (audio loading and resampling) to one thread, like the peers' decoders."""
    data = [parse_data_arg(s, tool=tool) for s in specs]
    names = [n for n, _ in data]
    if len(set(names)) != len(names):
        raise SystemExit(f"{tool}: --data names repeat ({names}): name them with NAME=PATH")
    missing = [f"{n}={p}" for n, p in data if not p.exists()]
    if missing:
        raise SystemExit(f"{tool}: data not found: {missing} ({hint}, or pass --data NAME=PATH)")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    return data


def run_sets(
    data: Sequence[tuple[str, Path]],
    out: Path,
    *,
    tool: str,
    setup: dict[str, Any],
    decode: Callable[[str, Path, Path], dict[str, Any]],
    force: bool,
) -> dict[str, dict[str, Any]]:
    """Decode each set with ``decode(name, source, set_dir)`` unless its ``summary.json`` was made from the same
    source and ``setup`` (then it is reused; other settings are an error asking for ``--force``)."""
    summaries: dict[str, dict[str, Any]] = {}
    for name, source in data:
        set_dir = Path(out) / name
        path = set_dir / SUMMARY
        if path.is_file() and not force:
            done = json.loads(path.read_text())
            mine = {"source": str(source), **setup}
            theirs = {k: done.get(k) for k in mine}
            if theirs != mine:
                raise SystemExit(
                    f"{tool}: {str(path)!r} was made with {theirs}, not {mine}: "
                    "rerun with --force to decode this set again (or choose another --out)"
                )
            print(f"[{name}] done before ({path}): skipped (--force decodes it again)")
            summaries[name] = done
            continue
        try:
            summaries[name] = decode(name, source, set_dir)
        except ValueError as exc:
            raise SystemExit(f"{tool}: set {name!r} ({source}): {exc}") from exc
    return summaries
