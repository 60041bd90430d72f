"""The ``asr`` command: a thin dispatcher over subcommand modules in :mod:`asr.commands`.

Each subcommand lives in its own module ``asr/commands/<name>.py`` exposing

    def add_arguments(parser) -> None           # fill an argparse parser
    def run(args) -> int                        # do the work, return an exit status

and its one-line help is its entry in ``COMMANDS`` below (the only place it is written).

Modules are imported only when their subcommand runs (``asr --help`` stays fast and never imports torch).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from asr import __version__

# Subcommand name -> (module, one-line help). Add a line here when adding a module in asr/commands/.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("asr.commands.synth", "synthesise a mixed-engine speech corpus (LibriSpeech layout)"),
    "prepare": ("asr.commands.prepare", "corpora (librispeech, kaldi, wsj, realspeech) -> JSONL manifests"),
    "train": ("asr.commands.train", "train a CTC model from a YAML recipe (resumable; torchrun for DDP)"),
    "eval": ("asr.commands.eval", "WER/CER (or PER) of a model on a data set, full-utterance or streaming"),
    "transcribe": (
        "asr.commands.transcribe",
        "transcribe audio files with a model (the bundled one by default)",
    ),
    "plot": ("asr.commands.plot", "draw a run's loss and dev-WER curves to PNG"),
    "lm": ("asr.commands.lm", "build an n-gram LM + lexicon (asr lm build), or a lexicon for a model"),
    "live": ("asr.commands.live", "transcribe the microphone live (Ctrl-C to stop)"),
    "devices": ("asr.commands.devices", "list audio input devices (for 'asr live --input-device')"),
    "serve": ("asr.commands.serve", "serve live transcription over WebSockets (page at /, /ws, /healthz, /metrics)"),
    "stream-client": ("asr.commands.stream_client", "stream an audio file to 'asr serve' in real time, print results"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Transcurrent: streaming speech recognition with causal linear attention.",
    )
    parser.add_argument("--version", action="version", version=f"transcurrent {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass: global options and the subcommand name only.
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.command is None:
        parser.print_help()
        return 0
    module_name, help_text = COMMANDS[args.command]
    module = importlib.import_module(module_name)
    sub_parser = argparse.ArgumentParser(prog=f"asr {args.command}", description=help_text)
    module.add_arguments(sub_parser)
    sub_args = sub_parser.parse_args(rest)
    try:
        return int(module.run(sub_args) or 0)
    except KeyboardInterrupt:
        logging.getLogger("asr").warning("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
