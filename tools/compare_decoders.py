"""Greedy vs prefix beam vs lexicon (no LM) vs lexicon + LM, side by side in one run: WER and CER, full-utterance
and streaming, streaming real-time factor (one thread, 160 ms chunks) and the latency of partial results.

    python tools/compare_decoders.py --out runs/lm/compare.json          # bundled model, LM and test sets
    python tools/compare_decoders.py --set dev=data/synth_clean/dev --model runs/bundle --lm runs/lm

Every decoder decodes the same model outputs. Streaming feeds each utterance's samples in ``--chunk-ms`` chunks
through the Recognizer (endpointing off: the sets are segmented), exactly as ``asr eval --mode stream``; the decoders
stream each utterance in turn (the order rotating), so their real-time factors are measured side by side on a
machine whose speed drifts. ``--by-op`` adds the lexicon + LM decoder on an encoder stepping every block op by op
(the code before kernels.block), in the same turns.

Partial latency (streamed, per word of the final transcript, in ms of audio): *first seen* is when the partial
first shows the word in its final place (word i of the partial = word i of the final), *stable* is when the
partial's words up to that one stop changing for good; both relative to the word's end in the audio (its last
token's frame in the final hypothesis; greedy and prefix beam words end at their last letter's frame). The final
result itself counts as the last partial, at the end of the audio. Reported: median and 90th percentile.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BUNDLED_SETS = {
    "synth_test": "asr/assets/audio/synth_test.jsonl",
    "real": "asr/assets/audio/real.jsonl",
}


def _word_ends(result, spf: float, *, phones: bool = False) -> list[float]:
    """End time (s) of each word of a stream's final result: the LM decoder's word ends, else the frame after
    each word's last token (tokens split at the word boundary); ``phones``: each token is a unit of its own (a
    phone model without a lexicon writes phones)."""
    ends: list[float] = []
    for seg in result.finals:
        if seg.words:
            ends += [w.end for w in seg.words]
            continue
        if phones:
            ends += [t + spf for tok, t in zip(seg.tokens, seg.token_times) if tok != "|"]
            continue
        last = None
        for tok, t in zip(seg.tokens, seg.token_times):
            if tok == "|":
                if last is not None:
                    ends.append(last + spf)
                last = None
            else:
                last = t
        if last is not None:
            ends.append(last + spf)
    return ends


def _latencies(timeline: list[tuple[float, list[str]]], final: list[str], ends: list[float]):
    first, stable = [], []
    for i, word in enumerate(final):
        seen = next((t for t, words in timeline if len(words) > i and words[i] == word), None)
        settled = None
        for t, words in reversed(timeline):
            if words[: i + 1] != final[: i + 1]:
                break
            settled = t
        end = ends[i] if i < len(ends) else timeline[-1][0]
        if seen is not None:
            first.append(1000 * (seen - end))
        if settled is not None:
            stable.append(1000 * (settled - end))
    return first, stable


@dataclasses.dataclass
class _Streamed:
    """One decoder's streaming results over a set, filled one utterance at a time."""

    hyps: dict = dataclasses.field(default_factory=dict)
    compute: float = 0.0  # seconds spent in accept_waveform + decode + reading the partial
    first: list = dataclasses.field(default_factory=list)
    stable: list = dataclasses.field(default_factory=list)


def _stream_one(rec, bundle, samples, utt_id: str, chunk: int, into: _Streamed, *, phones: bool) -> None:
    """One utterance's samples through the Recognizer ``rec`` in ``chunk``-sample pieces, reading the partial after
    each as a live display would; its hypothesis, compute time and partial latencies go ``into``."""
    sr = bundle.features.sample_rate
    stream = rec.create_stream()
    timeline = []
    for start in range(0, samples.shape[0], chunk):
        t0 = time.perf_counter()
        stream.accept_waveform(samples[start : start + chunk], sr)
        rec.decode([stream])
        partial = stream.result.partial
        into.compute += time.perf_counter() - t0
        timeline.append((min(start + chunk, samples.shape[0]) / sr, partial.split()))
    t0 = time.perf_counter()
    stream.input_finished()
    rec.decode([stream])
    into.compute += time.perf_counter() - t0
    result = stream.result
    final = result.text.split()
    timeline.append((samples.shape[0] / sr, final))
    f, s = _latencies(timeline, final, _word_ends(result, bundle.seconds_per_frame, phones=phones))
    into.first += f
    into.stable += s
    into.hyps[utt_id] = result.text
    rec.close_stream(stream)


def _stream_side_by_side(bundle, utterances, decoders: dict, *, chunk_ms: float, phones: dict) -> dict:
    """Every utterance streamed by every decoder in turn (the order rotating from one utterance to the next), so
    that their real-time factors are measured side by side: a machine that slows down for a minute slows them
    all alike. Returns decoder name -> :class:`_Streamed`."""
    from asr.streaming import EndpointConfig, Recognizer, RecognizerConfig

    recs = {
        name: Recognizer(bundle, device="cpu", beam=opts["beam"], lm=opts["lm"], endpoint=EndpointConfig(enabled=False),
                         config=RecognizerConfig(step=opts.get("step", "packed")))  # fmt: skip
        for name, opts in decoders.items()
    }
    sr = bundle.features.sample_rate
    chunk = int(round(chunk_ms * sr / 1000))
    out = {name: _Streamed() for name in decoders}
    names = list(decoders)
    for k, utt in enumerate(utterances):
        samples = utt.load_audio(target_sr=sr)
        for name in names[k % len(names) :] + names[: k % len(names)]:
            _stream_one(recs[name], bundle, samples, utt.id, chunk, out[name], phones=phones[name])
    return out


def _summary(values: list[float]) -> dict:
    if not values:
        return {"median_ms": None, "p90_ms": None, "words": 0}
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "words": len(ordered),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from asr.data.sources import load_utterances
    from asr.decoding.lm_decoder import LMDecoder
    from asr.evaluate import evaluate_batch, phone_reference
    from asr.lm.folder import folder_decoder, read_lm_folder
    from asr.pipeline import load_asr_model, resolve_model_path
    from asr.scoring import score_corpus
    from asr.text.normalize import normalize_text

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint or run dir (default: the bundled model)")
    parser.add_argument("--lm", default=str(REPO / "asr/assets/model"), help="LM folder (default: the bundled one)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=DATA", help="sets (default: bundled)")
    parser.add_argument("--chunk-ms", type=float, default=160.0)
    parser.add_argument("--prefix-beam", type=int, default=8, help="width of the CTC prefix beam search")
    parser.add_argument("--lexicon-word-score", type=float, default=None,
                        help="word score of the lexicon-only decoder (default: the LM folder's)")
    parser.add_argument("--by-op", action="store_true",
                        help="also stream the lexicon + LM decoder with every encoder block op by op (RecognizerConfig "
                        "step='packed_by_op'), in turns with the others: the one-call blocks' gain side by side")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    load_at_start = os.getloadavg()[0]  # the figures' conditions: other jobs on the machine slow the RTF
    sets = dict(s.split("=", 1) for s in args.set) if args.set else BUNDLED_SETS
    model_path = resolve_model_path(args.model)
    bundle = load_asr_model(model_path)
    folder = read_lm_folder(args.lm)
    with_lm = folder_decoder(folder, bundle.tokenizer)
    lexicon_only = LMDecoder(
        dataclasses.replace(
            with_lm.config, lm=None,
            word_score=with_lm.config.word_score if args.lexicon_word_score is None else args.lexicon_word_score,
        ),
        bundle.tokenizer,
    )
    decoders = {
        "greedy": dict(beam=1, lm=None),
        f"prefix beam {args.prefix_beam}": dict(beam=args.prefix_beam, lm=None),
        "lexicon, no LM": dict(beam=1, lm=lexicon_only),
        "lexicon + LM": dict(beam=1, lm=with_lm),
    }
    if args.by_op:
        decoders["lexicon + LM, by op"] = dict(beam=1, lm=with_lm, step="packed_by_op")
    rows = []
    for set_name, data in sets.items():
        utterances = load_utterances(data)
        audio = sum(u.duration for u in utterances)
        refs = {u.id: normalize_text(u.text) for u in utterances}
        # a phone model without a lexicon writes phones: scored as asr eval scores them, PER against the
        # references' CMUdict phones (the "wer" fields then hold the PER, "cer" is NaN)
        by_search: dict = {}  # (beam, LM decoder) -> its full run (--by-op differs in the step only)
        fulls = {}
        for name, opts in decoders.items():
            key = (opts["beam"], id(opts["lm"]))
            if key not in by_search:
                by_search[key] = evaluate_batch(bundle, utterances, mode="full", progress=False, beam=opts["beam"],
                                                lm=opts["lm"])  # fmt: skip
            fulls[name] = by_search[key]
        phone_units = {name: full.unit == "phone" for name, full in fulls.items()}
        streamed = _stream_side_by_side(bundle, utterances, decoders, chunk_ms=args.chunk_ms, phones=phone_units)
        for name in decoders:
            full, phones, st = fulls[name], phone_units[name], streamed[name]
            ids = [u.id for u in utterances]
            if phones:
                ref = [phone_reference(bundle.tokenizer, refs[i]) for i in ids]
                out = [st.hyps[i] for i in ids]
            else:
                ref, out = [refs[i] for i in ids], [normalize_text(st.hyps[i]) for i in ids]
            wer = score_corpus(ids, ref, out, unit="word")[0]
            cer = None if phones else score_corpus(ids, ref, out, unit="char")[0]
            full_text = {p.id: p.hyp for p in full.per_utterance}
            rows.append({
                "set": set_name,
                "utterances": len(utterances),
                "audio_s": round(audio, 1),
                "decoder": name,
                "unit": full.unit,
                "full_wer": round(full.wer, 4),
                "full_cer": round(full.cer, 4),
                "stream_wer": round(wer.rate, 4),
                "stream_cer": round(cer.rate, 4) if cer is not None else float("nan"),
                "stream_equals_full": sum(full_text[i] == o for i, o in zip(ids, out)),
                "stream_rtf": round(st.compute / audio, 4),
                "partial_first_seen": _summary(st.first),
                "partial_stable": _summary(st.stable),
            })
            r = rows[-1]
            what = "PER" if phones else "WER"
            print(
                f"{set_name:10s} {name:16s} full {what} {r['full_wer']:.3f} CER {r['full_cer']:.3f} | stream {what} "
                f"{r['stream_wer']:.3f} CER {r['stream_cer']:.3f} (= full {r['stream_equals_full']}/{len(ids)}) "
                f"RTF {r['stream_rtf']:.4f} | partials: first seen {r['partial_first_seen']['median_ms']} ms, "
                f"stable {r['partial_stable']['median_ms']} ms (median)",
                flush=True,
            )
    meta = {
        "model": str(model_path),
        "lm": str(args.lm),
        "lm_settings": {k: v for k, v in dataclasses.asdict(with_lm.config).items() if k not in ("lm", "lexicon")},
        "lexicon_only_word_score": lexicon_only.config.word_score,
        "chunk_ms": args.chunk_ms,
        "threads": 1,
        "load_average": round(load_at_start, 2),
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**meta, "rows": rows}, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
