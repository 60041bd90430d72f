"""``asr eval --model CKPT --data DATA [--mode full|stream] [--chunk-ms N] [--out DIR] [LM options]``.

    asr eval --model runs/synth/final.safetensors --data data/synth/test
    asr eval --model runs/synth --data data/synth/test --mode stream --chunk-ms 160 --out runs/synth/eval-test
    asr eval --data data/ls/test-clean.jsonl --model runs/ls --lm 4-gram.arpa.gz --lexicon lexicon.txt --beam 64
    asr eval --data DEV --grid --lm-weights 0.5,1,2 --word-scores=-2,-1,0 --out runs/tune   # tune on a dev set

Decoding: the bundled LM with its lexicon by default (when it fits the model), ``--lm``/``--lexicon`` for others,
``--no-lm`` for greedy CTC (``--no-lm --beam N``: prefix beam search); see :mod:`asr.commands.lm_options`.
``--grid`` decodes the set once per (lm weight, word score[, blank penalty][, beam setting]) from one forward pass
(full mode) and writes the table (``grid.json``, printed), best first: tune on a dev set, never on the test set.
``--beams 96,192 --beam-token-limits 10,all`` weighs the search's cost (the table's RTF) against its accuracy.

WER and CER (PER for a phone model) with sclite-style Corr/Sub/Del/Ins counts, printed as a table.
``--data`` is anything :func:`asr.data.sources.load_utterances` reads (a JSONL manifest, a LibriSpeech
folder, a Kaldi data dir). ``--mode stream`` feeds each file through the streaming recognizer in chunks of
``--chunk-ms``, one encoder step each, the same path ``asr transcribe --stream`` and live transcription use
(:mod:`asr.streaming.feed`; a chunk that is not whole 40 ms model steps is fed as given and stepped in the whole
steps just above it). With ``--out``: ``utterances.jsonl`` (ref, hyp, counts,
alignment, token times), ``summary.json`` (wer/per, cer, counts, real-time factor, settings) and
``report.txt`` (the table). Without ``--model`` the bundled model (``asr/assets/model/``) is used if present.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from asr.commands._args import positive_int

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
    parser.add_argument(
        "--chunk-ms", type=float, default=160.0, help="stream mode: audio per chunk fed, one encoder step (default 160)"
    )
    parser.add_argument("--out", type=Path, help="write utterances.jsonl, summary.json and report.txt here")
    parser.add_argument("--max-utterances", type=int, help="evaluate only the first N utterances")
    parser.add_argument(
        "--max-batch-frames", type=positive_int, default=30000, help="full mode: padded frames per batch"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--allow-pipes",
        action="store_true",
        help="run the shell commands of audio given as 'cmd |' (Kaldi wav.scp form; they come from the data)",
    )
    parser.add_argument(
        "--grid", action="store_true", help="search --lm-weights x --word-scores [x --blank-penalties x --beams x "
        "--beam-token-limits x --beam-thresholds] (full mode)"
    )
    from asr.commands.lm_options import add_grid_arguments, add_lm_arguments

    add_grid_arguments(parser, lm_weights="0.5,1,1.5,2,3", word_scores="-3,-2,-1,0,1", note="--grid: ")
    add_lm_arguments(parser)


def _check_out(out: Path) -> None:
    """``--out`` must be a folder this process can write to: checked (and made) before any decoding."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a folder (it would receive summary.json, ...)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(out)!r}: the folder is not writable")


def run(args: argparse.Namespace) -> int:
    from asr.audio import allowing_pipes

    with allowing_pipes(args.allow_pipes):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from asr.pipeline import load_asr_model, resolve_model_path

    if args.chunk_ms <= 0 or (args.max_utterances is not None and args.max_utterances < 1):
        print(
            f"asr eval: error: need --chunk-ms > 0, --max-utterances >= 1; got {args.chunk_ms}, {args.max_utterances}",
            file=sys.stderr,
        )
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # on a busy machine, 1 thread can be much faster than several
    from asr.commands.lm_options import config_dict, describe, lm_decoder_from_args, prefix_beam

    try:
        grid = _grid_values(args) if args.grid else None
        if args.out is not None:
            _check_out(args.out)
        model_path = resolve_model_path(args.model)
        bundle = load_asr_model(model_path, device=args.device)
        # files checked before any audio is read
        lm = lm_decoder_from_args(args, bundle.tokenizer, bundled_model=args.model is None)
        if grid is not None and lm is None:
            raise ValueError("--grid tunes an LM decoder: give --lm (and --lexicon), or drop --no-lm")
        from asr.data.manifest import refuse_pipes
        from asr.data.sources import load_utterances

        utterances = load_utterances(args.data)
        refuse_pipes(utterances, opt_in="--allow-pipes", where=str(args.data))
    except ValueError as exc:
        print(f"asr eval: error: {exc}", file=sys.stderr)
        return 2
    if args.max_utterances is not None:
        utterances = utterances[: args.max_utterances]

    from asr.evaluate import evaluate_batch, report, write_report

    if grid is not None:
        from asr.evaluate import format_grid, grid_search, write_grid

        rows = grid_search(
            bundle, utterances, lm, lm_weights=grid.lm_weights, word_scores=grid.word_scores,
            blank_penalties=grid.blank_penalties, searches=grid.searches, progress=not args.no_progress,
        )  # fmt: skip
        print(format_grid(rows))
        if args.out is not None:
            path = write_grid(args.out, rows, meta={"model": str(model_path), "data": str(args.data),
                                                    "decoder": describe(lm)})
            print(f"wrote {path}")
        return 0
    logger.info(
        "evaluating %s on %d utterances of %s (%s mode; %s)",
        model_path,
        len(utterances),
        args.data,
        args.mode,
        describe(lm) if lm is not None else f"no LM, beam {prefix_beam(args)}",
    )
    result = evaluate_batch(
        bundle,
        utterances,
        mode=args.mode,
        beam=prefix_beam(args),
        chunk_ms=args.chunk_ms,
        max_batch_frames=args.max_batch_frames,
        progress=not args.no_progress,
        lm=lm,
    )
    print(report(result, n_utts=len(result.per_utterance)))
    nothing_scored = len(result.failed) == len(result.per_utterance)
    if nothing_scored:
        print(
            f"asr eval: error: none of the {len(result.failed)} utterances could be read: nothing was scored "
            f"(first: {next(iter(result.failed.items()))})",
            file=sys.stderr,
        )
    elif result.failed:
        print(
            f"asr eval: {len(result.failed)} utterances could not be read (scored as all-deleted): "
            f"{', '.join(list(result.failed)[:5])}{' ...' if len(result.failed) > 5 else ''}; see summary.json",
            file=sys.stderr,
        )
    if args.out is not None:
        meta = {
            "model": str(model_path),
            "data": str(args.data),
            "mode": args.mode,
            "chunk_ms": args.chunk_ms if args.mode == "stream" else None,
            "beam": prefix_beam(args) if lm is None else lm.config.beam_size,
            "decoder": describe(lm) if lm is not None else ("greedy" if prefix_beam(args) == 1 else "prefix beam"),
            "lm": None if lm is None else config_dict(lm),
        }
        try:
            write_report(args.out, result, meta=meta)
        except OSError as exc:  # the disk filled up, the folder went away: the table above is the result
            print(f"asr eval: error: cannot write the reports to {args.out}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.out / 'summary.json'}, {args.out / 'utterances.jsonl'}, {args.out / 'report.txt'}")
    return 1 if nothing_scored else 0


def _grid_values(args: argparse.Namespace):
    from asr.commands.lm_options import grid_from_args

    if args.mode != "full":
        raise ValueError("--grid runs in full mode (one forward pass, every setting decoded from it)")
    return grid_from_args(args)
