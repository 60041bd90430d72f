#!/usr/bin/env python
"""A screenshot of ``asr serve``'s page mid-transcription (docs/figures/serve_page.png).

Starts ``asr serve`` (the bundled model) on a free loopback port, opens the page in headless Chromium whose
fake microphone plays bundled synthetic speech (asr/assets/audio/synth: four test sentences with pauses),
presses Start, and takes the screenshot once some finals are shown, a partial is being written and the level
meter shows speech. Prints the page's finals beside what ``asr transcribe --stream`` gives the same file.

    python tools/serve_screenshot.py --out docs/figures/serve_page.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from bench_serve import REPO, Server

from asr.serve.browser import open_page, page_state, wait_until

SENTENCES = 4


def speech_file(folder: Path) -> Path:
    rows = [json.loads(line) for line in (REPO / "asr/assets/audio/synth_test.jsonl").read_text().splitlines()]
    parts = [np.zeros(8000, np.float32)]
    for row in rows[:SENTENCES]:
        x, rate = sf.read(REPO / "asr/assets/audio" / row["audio"], dtype="float32")
        assert rate == 16000, row
        parts += [x, np.zeros(int(1.2 * rate), np.float32)]
    path = folder / "speech.wav"
    sf.write(path, np.concatenate(parts), 16000, subtype="PCM_16")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/figures/serve_page.png"))
    p.add_argument("--min-finals", type=int, default=3, help="finals on the page before the screenshot")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wav = speech_file(Path(tmp))
        server = Server(argparse.Namespace(device="cpu", server_threads=1, batch_window_ms=None), max_streams=4)
        try:
            with open_page(server.url, wav, width=1000, height=560) as page:
                page.click("#start")
                wait_until(
                    page,
                    lambda s: len(s["finals"]) >= args.min_finals and len(s["partial"]) >= 6 and s["levelDb"] > -45,
                    timeout=90,
                    poll=0.05,
                )
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                state = page_state(page)
                page.click("#stop")
                time.sleep(1.0)
        finally:
            server.stop()
        cli = subprocess.run(
            [sys.executable, "-m", "asr.cli", "transcribe", "--stream", str(wav)],
            capture_output=True, text=True, check=True, cwd=REPO,
        )  # fmt: skip
    print(f"screenshot: {args.out} (AudioContext at {state['sampleRate']} Hz)")
    print("page finals:          ", [f["text"] for f in state["finals"]], "partial:", repr(state["partial"]))
    print("transcribe --stream:  ", cli.stdout.splitlines())
    return 0


if __name__ == "__main__":
    sys.exit(main())
