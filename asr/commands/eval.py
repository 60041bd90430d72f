"""``asr eval --model CKPT --data DATA [--mode full|stream] [--chunk-ms N] [--beam N] [--out DIR]``.

    asr eval --model runs/synth/final.safetensors --data data/synth/test
    asr eval --model runs/synth --data data/synth/test --mode stream --chunk-ms 160 --out runs/synth/eval-test

WER and CER (PER for a phone model) with sclite-style Corr/Sub/Del/Ins counts, printed as a table.
``--data`` is anything :func:`asr.data.sources.load_utterances` reads (a JSONL manifest, a LibriSpeech
folder, a Kaldi data dir). ``--mode stream`` feeds each file through the streaming recognizer in chunks of
``--chunk-ms``, the same path live transcription uses. With ``--out``: ``utterances.jsonl`` (ref, hyp, counts,
alignment, token times), ``summary.json`` (wer/per, cer, counts, real-time factor, settings) and
``report.txt`` (the table). Without ``--model`` the bundled model (``asr/assets/model/``) is used if present.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

HELP = "WER/CER (or PER) of a model on a data set, full-utterance or streaming"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint (.safetensors) or run dir (default: the bundled model)")
    parser.add_argument("--data", required=True, help="manifest (.jsonl), LibriSpeech-layout folder or Kaldi dir")
    parser.add_argument(
        "--mode",
        choices=("full", "stream"),
        default="full",
        help="full: one forward per utterance; stream: chunk by chunk with carried state",
    )
    parser.add_argument("--chunk-ms", type=float, default=160.0, help="stream mode: audio per chunk (default 160)")
    parser.add_argument("--beam", type=int, default=1, help="1: greedy; N > 1: CTC prefix beam search of width N")
    parser.add_argument("--out", type=Path, help="write utterances.jsonl, summary.json and report.txt here")
    parser.add_argument("--max-utterances", type=int, help="evaluate only the first N utterances")
    parser.add_argument("--max-batch-frames", type=int, default=30000, help="full mode: padded frames per batch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def run(args: argparse.Namespace) -> int:
    from asr.commands._model import load_model, resolve_model_path

    if args.beam < 1 or args.chunk_ms <= 0 or (args.max_utterances is not None and args.max_utterances < 1):
        print(
            f"asr eval: error: need --beam >= 1, --chunk-ms > 0, --max-utterances >= 1; got {args.beam}, "
            f"{args.chunk_ms}, {args.max_utterances}",
            file=sys.stderr,
        )
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # on a busy machine, 1 thread can be much faster than several
    try:
        model_path = resolve_model_path(args.model)
        bundle = load_model(model_path, device=_device(args.device))
        from asr.data.sources import load_utterances

        utterances = load_utterances(args.data)
    except ValueError as exc:
        print(f"asr eval: error: {exc}", file=sys.stderr)
        return 2
    if args.max_utterances is not None:
        utterances = utterances[: args.max_utterances]

    from asr.evaluate import evaluate_batch, report, write_report

    logger.info(
        "evaluating %s on %d utterances of %s (%s mode, beam %d)",
        model_path,
        len(utterances),
        args.data,
        args.mode,
        args.beam,
    )
    result = evaluate_batch(
        bundle,
        utterances,
        mode=args.mode,
        beam=args.beam,
        chunk_ms=args.chunk_ms,
        max_batch_frames=args.max_batch_frames,
        progress=not args.no_progress,
    )
    print(report(result, n_utts=len(result.per_utterance)))
    if result.failed:
        print(f"{len(result.failed)} utterances could not be read (scored as all-deleted); see summary.json")
    if args.out is not None:
        meta = {
            "model": str(model_path),
            "data": str(args.data),
            "mode": args.mode,
            "chunk_ms": args.chunk_ms if args.mode == "stream" else None,
            "beam": args.beam,
        }
        write_report(args.out, result, meta=meta)
        print(f"wrote {args.out / 'summary.json'}, {args.out / 'utterances.jsonl'}, {args.out / 'report.txt'}")
    return 0
