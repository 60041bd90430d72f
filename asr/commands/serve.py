"""``asr serve``: live transcription over WebSockets, with a browser page at ``/``.

    asr serve                                   # the bundled model on http://127.0.0.1:8000/
    asr serve --model runs/synth --max-streams 128 --device cuda
    asr serve --host 0.0.0.0 --token-file secret.txt     # reachable from other machines: see docs/protocol.md
    asr serve --no-lm                           # greedy CTC (the decoder options are asr transcribe's)

Every connected stream is batched through one recognizer (asr/serve/engine.py); the protocol is in
docs/protocol.md. SIGTERM (or Ctrl-C) finishes every stream with its final result before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from asr.commands._args import positive_int

logger = logging.getLogger("asr.serve")

#: Environment variable holding the bearer token (a token on the command line shows in `ps`).
TOKEN_ENV = "ASR_SERVE_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from asr.serve.config import ServeConfig

    d = ServeConfig()
    parser.add_argument("--model", help="checkpoint (.safetensors) or run dir (default: the bundled model)")
    parser.add_argument(
        "--host", default=d.host, help="address to bind (default: loopback only; any other is reachable by others)"
    )
    parser.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port}; 0: any free port)")
    parser.add_argument("--max-streams", type=int, default=d.max_streams, help="streams at once (default %(default)s)")
    parser.add_argument("--device", default="auto", help="model device: auto (CUDA when present), cpu, cuda")
    parser.add_argument(
        "--threads", type=positive_int, help="torch CPU threads for the model step (default: torch's choice)"
    )
    parser.add_argument("--chunk-ms", type=int, default=d.chunk_ms, help="audio per encoder step, x40 ms")
    parser.add_argument("--token-file", type=Path, help=f"require this bearer token (or set ${TOKEN_ENV})")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept browser WebSockets from this origin (e.g. https://example.org); repeatable",
    )
    parser.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes, help="largest message")
    parser.add_argument("--max-stream-seconds", type=float, default=d.max_stream_seconds, help="audio per stream")
    parser.add_argument("--idle-timeout", type=float, default=d.idle_timeout_s, help="seconds without a message")
    parser.add_argument(
        "--max-realtime", type=float, default=d.max_realtime, help="audio seconds per second per stream, sustained"
    )
    parser.add_argument("--burst-seconds", type=float, default=d.burst_seconds, help="audio burst above that")
    parser.add_argument("--max-messages-per-s", type=float, default=d.max_messages_per_s, help="per stream")
    parser.add_argument("--batch-window-ms", type=float, default=d.batch_window_ms,
                        help="most time a chunk waits for other streams' chunks to join its step (default: one chunk)")
    parser.add_argument("--shutdown-grace", type=float, default=d.shutdown_grace_s, help="seconds to finish streams")
    from asr.commands.lm_options import add_lm_arguments

    add_lm_arguments(parser)  # the decoder options of asr transcribe / asr live


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"--token-file {str(args.token_file)!r}: {exc.strerror}") from exc
        if not token:
            raise ValueError(f"--token-file {str(args.token_file)!r} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


def run(args: argparse.Namespace) -> int:
    from asr.commands.lm_options import describe, lm_decoder_from_args, prefix_beam
    from asr.pipeline import load_asr_model, resolve_model_path
    from asr.serve.app import run_server
    from asr.serve.config import ServeConfig
    from asr.serve.engine import Engine
    from asr.streaming.feed import recognizer_config
    from asr.streaming.recognizer import Recognizer

    try:
        config = ServeConfig(
            host=args.host,
            port=args.port,
            token=_token(args),
            allowed_origins=tuple(args.allow_origin),
            max_streams=args.max_streams,
            max_message_bytes=args.max_message_bytes,
            max_stream_seconds=args.max_stream_seconds,
            idle_timeout_s=args.idle_timeout,
            max_realtime=args.max_realtime,
            burst_seconds=args.burst_seconds,
            max_messages_per_s=args.max_messages_per_s,
            chunk_ms=args.chunk_ms,
            batch_window_ms=args.batch_window_ms,
            shutdown_grace_s=args.shutdown_grace,
        )
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        bundle = load_asr_model(resolve_model_path(args.model), device="cpu")
        lm = lm_decoder_from_args(args, bundle.tokenizer, bundled_model=args.model is None)  # checked before serving
        rconfig = recognizer_config(bundle, args.chunk_ms, beam=prefix_beam(args) if lm is None else 1)
        recognizer = Recognizer(bundle, device=args.device, config=rconfig, lm=lm)
    except ValueError as exc:
        print(f"asr serve: error: {exc}", file=sys.stderr)
        return 2
    if not config.loopback:
        logger.warning(
            "binding %s: anyone who can reach this address can stream audio to the model and use its CPU/GPU; "
            "traffic is unencrypted (ws://, put a TLS proxy in front); %s",
            config.host,
            "a bearer token is required" if config.token else "NO TOKEN is required (--token-file)",
        )
    engine = Engine(recognizer, config=config)
    engine.warm_up()
    logger.info(
        "model on %s, %d ms chunks, decoder: %s, up to %d streams%s",
        recognizer.device,
        config.chunk_ms,
        describe(lm),
        config.max_streams,
        ", token required" if config.token else "",
    )

    def listening(url: str) -> None:
        print(f"listening on {url}", flush=True)

    try:
        asyncio.run(run_server(engine, config, on_listening=listening))
    except OSError as exc:  # the port is taken, the address is not ours
        print(f"asr serve: error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0
