#!/usr/bin/env python
"""hama's phoneme recognizer as a peer row: its phone error rate on our sets, scored as a phone model's PER.

Every utterance of each ``--data`` set is loaded by the project's loader (16 kHz mono) and decoded whole by hama
(PyPI ``hama`` 1.7.0: a 4.7 MB IPA phone CTC model, greedy, its default settings; see :mod:`asr.peers.hama`). Its
IPA phones are mapped onto CMUdict's 39 ARPAbet phones; the reference is what ``asr eval`` scores a phone model
against: the normalised words' CMUdict phones (first pronunciation, stress removed; words CMUdict lacks are left out
of the reference). Counted with :mod:`asr.scoring` (jiwer) over phones. So a phone model's greedy PER and hama's
sit side by side; the same phone references, the same counting.

Timing: the CPU time of the decoding thread (``time.thread_time``) over the audio seconds (hama's engine uses one
thread). Writes ``DIR/peer_hama.json`` (per set: utterances, audio seconds, PER, counts, RTF, the unmapped tokens;
the hama version and the command line), ``DIR/<set>/summary.json`` and ``DIR/<set>/utterances.jsonl`` (id, ref,
hyp, counts, alignment, hama's raw IPA). A set whose summary exists is reused (``--force`` decodes it again).

    python tools/peer_hama.py --data data/realspeech/realspeech-dev.jsonl --data data/realspeech/realspeech-test.jsonl
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from asr.data.sources import load_utterances
from asr.evaluate import phone_reference
from asr.peers import sets
from asr.peers.hama import load_hama, to_arpabet
from asr.scoring import score_corpus, write_per_utterance
from asr.text.phones import PhoneTokenizer

DEFAULT_DATA = ["data/realspeech/realspeech-dev.jsonl"]
DEFAULT_OUT = "runs/peers/hama"


def decode_set(name: str, source: Path, out_dir: Path, *, model, meta: dict[str, Any], progress: bool) -> dict:
    from tqdm import tqdm

    tokenizer = PhoneTokenizer()
    utts = load_utterances(source)
    ids, refs, hyps, raw, failed = [], [], [], {}, {}
    unmapped: Counter = Counter()
    cpu = 0.0
    for u in tqdm(utts, desc=f"hama {name}", unit="utt", disable=not progress):
        try:
            samples = u.load_audio(target_sr=16000).numpy()
        except ValueError as exc:
            failed[u.id] = str(exc)
            continue
        t0 = time.thread_time()
        result = model(samples, 16000)
        cpu += time.thread_time() - t0
        ids.append(u.id)
        refs.append(phone_reference(tokenizer, u.text))
        hyps.append(" ".join(to_arpabet(result.phonemes, unmapped)))
        raw[u.id] = {"ipa": result.word_phoneme_text}
    if failed:
        print(f"[{name}] {len(failed)} utterances could not be read: {dict(list(failed.items())[:5])}", file=sys.stderr)
    counts, per_utt = score_corpus(ids, refs, hyps, unit="word")  # over phones: each phone a "word"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_per_utterance(out_dir / "utterances.jsonl", per_utt, extra=raw)
    audio = sum(u.duration for u in utts if u.id not in failed)
    summary = {
        "set": name,
        "source": str(source),
        "n_utts": len(ids),
        "n_failed": len(failed),
        "audio_seconds": round(audio, 3),
        "per": counts.rate,
        "counts": {"hits": counts.hits, "substitutions": counts.substitutions, "deletions": counts.deletions,
                   "insertions": counts.insertions, "ref_len": counts.ref_len},  # fmt: skip
        "rtf": cpu / max(audio, 1e-9),
        "unmapped": dict(unmapped.most_common()),
        **meta,
    }
    sets.write_json(out_dir / sets.SUMMARY, summary)
    return summary


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    head = f"{'set':<18}{'utts':>6}{'audio':>9}{'PER %':>8}{'sub':>7}{'del':>7}{'ins':>7}{'RTF':>7}"
    lines = [head, "-" * len(head)]
    for name, s in summaries.items():
        c = s["counts"]
        lines.append(
            f"{name:<18}{s['n_utts']:>6}{s['audio_seconds'] / 60:>8.1f}m{100 * s['per']:>8.2f}{c['substitutions']:>7}"
            f"{c['deletions']:>7}{c['insertions']:>7}{s['rtf']:>7.3f}"
        )
    lines.append("(PER over CMUdict's 39 phones, as asr eval scores a phone model; RTF: decoding CPU s / audio s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    sets.add_set_arguments(p, default_data=DEFAULT_DATA, default_out=DEFAULT_OUT)
    args = p.parse_args(argv)
    data = sets.check_data_args(args.data or DEFAULT_DATA, tool="peer_hama")
    version = importlib.metadata.version("hama")
    setup = {"peer": "hama", "hama_version": version}
    model = load_hama()
    summaries = sets.run_sets(
        data, Path(args.out), tool="peer_hama", setup=setup, force=args.force,
        decode=lambda name, source, out_dir: decode_set(name, source, out_dir, model=model, meta=setup,
                                                        progress=not args.no_progress),
    )  # fmt: skip
    sets.write_json(Path(args.out) / "peer_hama.json", {
        "command": shlex.join([sys.executable, *sys.argv]), **setup, "sets": summaries,
    })  # fmt: skip
    print(format_table(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
