"""``asr live [--model CKPT] [--input-device ID] [--device cuda|cpu] [--output FILE] [--chunk-ms N] [--json]
[LM options]``.

Transcribes the microphone until Ctrl-C: on a terminal the partial result is rewritten in place and each
final result (an endpoint: a pause after speech) gets its own line. The device is opened at its native sample
rate (44.1 or 48 kHz usually), mono, and the stream resamples to the model's rate. Ctrl-C stops capture,
decodes what was captured, finalises the last segment and exits 0 with the transcript kept; ``--output``
receives one final per line as they arrive. If the input dies (device unplugged, sound server gone) or delivers
nothing for 10 s, the same happens with an error on stderr and exit status 1. ``asr devices`` lists the input
devices. Decoding uses the bundled LM and lexicon when they fit the model (``--lm``/``--lexicon`` for others,
``--no-lm`` for greedy CTC): each stream runs its own LM search, partials are its current best, finals come at
endpoints (see :mod:`asr.commands.lm_options`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

logger = logging.getLogger("asr.live")


def _device_id(text: str) -> int | str:
    return int(text) if text.strip().lstrip("-").isdigit() else text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint (.safetensors) or run dir (default: the bundled model)")
    parser.add_argument(
        "--input-device",
        type=_device_id,
        default=None,
        metavar="ID",
        help="input device index or name substring (see 'asr devices'; default: the system default)",
    )
    parser.add_argument("--device", default="auto", help="model device: auto (CUDA when present), cpu, cuda")
    parser.add_argument("--output", metavar="FILE", help="also write the transcript here, one final per line")
    parser.add_argument(
        "--chunk-ms", type=int, default=160, help="audio per encoder step, a multiple of 40 ms (default 160)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per final on stdout")
    from asr.commands.lm_options import add_lm_arguments

    add_lm_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from asr.commands.lm_options import lm_decoder_from_args, prefix_beam
    from asr.live import (
        LiveConfig,
        MicrophoneSource,
        SourceLost,
        TranscriptWriter,
        open_output,
        run_live,
    )
    from asr.pipeline import load_asr_model, resolve_model_path
    from asr.streaming.feed import recognizer_config
    from asr.streaming.recognizer import Recognizer

    output = None
    try:
        bundle = load_asr_model(resolve_model_path(args.model), device="cpu")
        # files checked before the microphone opens
        lm = lm_decoder_from_args(args, bundle.tokenizer, bundled_model=args.model is None)
        config = recognizer_config(bundle, args.chunk_ms, beam=prefix_beam(args) if lm is None else 1)
        recognizer = Recognizer(bundle, device=args.device, config=config, lm=lm)
        live = LiveConfig()
        output = open_output(args.output)  # before the microphone opens
        source = MicrophoneSource(args.input_device, block_ms=live.block_ms)
    except ValueError as exc:
        if output is not None:
            output.close()
        print(f"asr live: error: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def on_signal(signum, frame) -> None:  # never interrupts a decode step: the loop checks the flag
        if stop.is_set():  # a second Ctrl-C while finishing: give up at once
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    writers = [TranscriptWriter(sys.stdout, json_lines=args.json)]
    if output is not None:
        writers.append(TranscriptWriter(output, tty=False))
    try:
        try:
            source.start()
        except ValueError as exc:
            print(f"asr live: error: {exc}", file=sys.stderr)
            return 2
        logger.info(
            "opened %r at %d Hz (mono); model on %s, %d ms chunks; Ctrl-C to stop",
            source.device_name,
            source.sample_rate,
            recognizer.device,
            args.chunk_ms,
        )
        try:
            run_live(
                recognizer,
                source.blocks,
                source.sample_rate,
                stop=stop,
                writers=writers,
                config=live,
                on_first_block=lambda: logger.info("listening (first audio block received)"),
                stop_capture=source.stop,
                source_alive=source.alive,
            )
        except SourceLost as exc:
            kept = f"; the transcript so far is in {args.output}" if output is not None else ""
            print(
                f"asr live: error: {exc} ({source.device_name!r}, {len(exc.result.finals)} final(s) kept{kept})",
                file=sys.stderr,
            )
            return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if output is not None:
            output.close()
            if stop.is_set():
                logger.info("transcript written to %s", args.output)
    return 0
