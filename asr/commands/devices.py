"""``asr devices``: the audio input devices PortAudio sees (for ``asr live --input-device``)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per device")


def run(args: argparse.Namespace) -> int:
    from asr.live import input_devices

    try:
        devices = input_devices()
    except ValueError as exc:
        print(f"asr devices: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        for dev in devices:
            print(json.dumps(dev))
        return 0
    if not devices:
        print("no input devices found", file=sys.stderr)
        return 1
    print(f"{'':2}{'ID':>3}  {'NAME':<40} {'HOST API':<12} {'CH':>3} {'RATE':>7}")
    for dev in devices:
        mark = "*" if dev["default"] else " "
        print(
            f"{mark:2}{dev['index']:>3}  {dev['name'][:40]:<40} {dev['hostapi'][:12]:<12} "
            f"{dev['channels']:>3} {dev['default_samplerate']:>7.0f}"
        )
    print("(* default input)")
    return 0
