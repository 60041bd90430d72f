"""``asr stream-client FILE --url ws://HOST:PORT/ws``: send a file to ``asr serve`` in real time, print results.

    asr stream-client speech.flac --url ws://127.0.0.1:8000/ws            # finals, one per line
    asr stream-client speech.flac --url ws://127.0.0.1:8000/ws --partials # also each partial ("... " lines)
    asr stream-client speech.flac --url ws://127.0.0.1:8000/ws --json     # every server message as JSON

The file is read at its own rate (the server resamples) and sent in ``--frame-ms`` frames at the audio's own
pace, like a microphone (``--fast``: as fast as the server's rate limit allows); by default one model chunk per
message when the file is at the model's rate, else 20 ms frames (asr.serve.client.message_ms). On a terminal the
partial line is rewritten in place. The finals' text is what ``asr transcribe --stream FILE`` prints for the same model.
A latency summary (audio sent -> partial received) goes to stderr. Exit status 1 when the server sent an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="audio file (wav, flac, ogg, mp3, ...)")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws", help="the server's WebSocket (default %(default)s)")
    parser.add_argument("--token-file", type=Path, help="bearer token for a server that requires one")
    parser.add_argument("--frame-ms", type=float, default=None,
                        help="audio per message (default: the server's chunk at the model's rate, else 20 ms)")
    parser.add_argument("--format", choices=("s16le", "f32le"), default="s16le", help="sample format sent")
    parser.add_argument("--fast", action="store_true", help="send as fast as allowed instead of in real time")
    parser.add_argument("--partials", action="store_true", help="print partial results too ('... ' lines)")
    parser.add_argument("--times", action="store_true", help="prefix finals with [start-end] seconds")
    parser.add_argument("--json", action="store_true", help="print every server message as one JSON line")


class _Printer:
    def __init__(self, args: argparse.Namespace) -> None:
        from asr.live import PARTIAL_MARK

        self.args = args
        self.mark = PARTIAL_MARK
        self.tty = sys.stdout.isatty()
        self.partial = ""

    def __call__(self, m: dict) -> None:
        out = sys.stdout
        if self.args.json:
            out.write(json.dumps(m, ensure_ascii=False) + "\n")
        elif m["type"] == "final":
            times = f"[{m['start']:.2f}-{m['end']:.2f}] " if self.args.times else ""
            out.write(("\r\x1b[K" if self.tty and self.partial else "") + times + m["text"] + "\n")
            self.partial = ""
        elif m["type"] == "partial" and m["text"] != self.partial:
            if self.tty:
                out.write("\r\x1b[K" + m["text"])
            elif self.args.partials and m["text"]:
                out.write(self.mark + m["text"] + "\n")
            self.partial = m["text"]
        elif m["type"] == "error":
            print(f"asr stream-client: server error {m['code']}: {m['message']}", file=sys.stderr)
        out.flush()


def run(args: argparse.Namespace) -> int:
    import aiohttp

    from asr.audio import read_audio
    from asr.serve.client import percentiles, stream_audio

    try:
        samples, rate = read_audio(args.file)
        token = args.token_file.read_text(encoding="utf-8").strip() if args.token_file else None
        if args.frame_ms is not None and args.frame_ms <= 0:
            raise ValueError(f"--frame-ms must be > 0, got {args.frame_ms}")
    except (ValueError, OSError) as exc:
        print(f"asr stream-client: error: {exc}", file=sys.stderr)
        return 2
    printer = _Printer(args)
    try:
        outcome = asyncio.run(
            stream_audio(
                args.url,
                samples.numpy(),
                rate,
                frame_ms=args.frame_ms,
                realtime=not args.fast,
                fmt=args.format,
                token=token,
                on_message=printer,
            )
        )
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:  # refused (401, 403), unreachable
        print(f"asr stream-client: error: cannot stream to {args.url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    if printer.tty and printer.partial:
        sys.stdout.write("\n")
    lat = percentiles(outcome.latencies)
    print(
        f"asr stream-client: {outcome.seconds_sent:.1f} s sent, {len(outcome.finals)} final(s), "
        f"latency audio sent -> partial p50 {lat['p50'] * 1000:.0f} ms p95 {lat['p95'] * 1000:.0f} ms "
        f"({len(outcome.latencies)} partials), close code {outcome.close_code}",
        file=sys.stderr,
    )
    return 1 if outcome.errors or outcome.done is None else 0
