#!/usr/bin/env python
"""Stream churn: many streams created, fed, decoded and dropped without ``close_stream``; memory must stay flat.

The long-run check of issue 15 (not in the test suite): ``--streams`` streams (1,000 by default) go through one
Recognizer ``--concurrent`` at a time, each fed ``--seconds`` of a test utterance in ``--chunk-ms`` chunks with a
decode after every chunk, as ``asr serve`` and ``asr live`` do; a stream is then dropped, half of them finished
first (``input_finished``) and half abandoned mid-audio, and none is ever passed to ``close_stream``. Every
``--sample-every`` streams the process RSS (after glibc's ``malloc_trim``), the live tensor count and
``len(recognizer.streams)`` are sampled. The run passes when, from the first sample after warm-up to the last,
RSS grows by less than ``--max-growth-mib`` and the streams still registered stay at most ``--concurrent``.
Writes DIR/stream_churn.json (samples, verdict, settings, command line); exit status 1 when memory is not flat.

    python tools/stream_churn.py                                   # the bundled model, 1,000 streams
    python tools/stream_churn.py --model runs/X --streams 5000 --concurrent 16 --out runs/churn
"""

from __future__ import annotations

import argparse
import gc
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import _bench_common as bc
import numpy as np
import torch
from tqdm import tqdm

from asr.pipeline import load_asr_model, resolve_model_path
from asr.streaming import Recognizer

logger = logging.getLogger("stream_churn")

DEFAULT_AUDIO = Path(__file__).resolve().parent.parent / "asr" / "assets" / "audio" / "real" / "goforward.flac"


def _tensors() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is torch.Tensor)


def churn(
    recognizer: Recognizer,
    samples: np.ndarray,
    rate: int,
    *,
    streams: int,
    concurrent: int,
    chunk_ms: int,
    sample_every: int,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the churn; returns the samples ``{streams_done, rss_bytes, tensors, registered, seconds}``."""
    step = max(1, rate * chunk_ms // 1000)
    chunks = [samples[i : i + step] for i in range(0, len(samples), step)]
    records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    done = 0
    bar = tqdm(total=streams, desc="streams", unit="stream", disable=not progress)
    while done < streams:
        group = [recognizer.create_stream() for _ in range(min(concurrent, streams - done))]
        finish = [(done + k) % 2 == 0 for k in range(len(group))]  # every other stream finished, the rest abandoned
        last = [len(chunks) if f else max(1, len(chunks) // 2) for f in finish]
        for c, chunk in enumerate(chunks):
            live = [s for s, n in zip(group, last) if c < n]
            if not live:
                break
            for s in live:
                s.accept_waveform(chunk, rate)
            recognizer.decode(live)
        ended = [s for s, f in zip(group, finish) if f]
        for s in ended:
            s.input_finished()
        recognizer.decode(ended)
        del group, ended, live  # dropped: never passed to close_stream
        done += len(finish)
        bar.update(len(finish))
        if done % sample_every < len(finish) or done == streams:
            gc.collect()
            records.append(
                {
                    "streams_done": done,
                    "rss_bytes": bc.rss_bytes(trim=True),
                    "tensors": _tensors(),
                    "registered": len(recognizer.streams),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
    bar.close()
    return records


def verdict(records: list[dict[str, Any]], *, warmup: int, max_growth_mib: float, concurrent: int) -> dict[str, Any]:
    """Flat when RSS grew less than ``max_growth_mib`` after the first sample past ``warmup`` streams and no more
    than ``concurrent`` streams were ever left registered."""
    after = [r for r in records if r["streams_done"] >= warmup] or records[-1:]
    growth = (after[-1]["rss_bytes"] - after[0]["rss_bytes"]) / 2**20
    registered = max(r["registered"] for r in records)
    return {
        "rss_growth_mib": round(growth, 2),
        "tensor_growth": after[-1]["tensors"] - after[0]["tensors"],
        "max_registered": registered,
        "flat": growth < max_growth_mib and registered <= concurrent,
        "from_streams": after[0]["streams_done"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="checkpoint or run dir (default: the bundled model)")
    p.add_argument("--audio", type=Path, default=DEFAULT_AUDIO, help="what every stream is fed (default: a test clip)")
    p.add_argument("--seconds", type=float, default=2.0, help="audio per stream (the clip cut or repeated)")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--concurrent", type=int, default=8, help="streams alive at once (decoded as one batch)")
    p.add_argument("--chunk-ms", type=int, default=160)
    p.add_argument("--sample-every", type=int, default=50, help="streams between memory samples")
    p.add_argument("--warmup", type=int, default=100, help="streams before the flatness baseline")
    p.add_argument("--max-growth-mib", type=float, default=20.0, help="RSS growth allowed after warm-up")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/stream_churn"))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if min(args.streams, args.concurrent, args.sample_every, args.threads) < 1 or args.seconds <= 0:
        p.error("--streams, --concurrent, --sample-every, --threads must be >= 1 and --seconds > 0")
    torch.set_num_threads(args.threads)
    from asr.audio import read_audio

    samples, rate = read_audio(args.audio)
    n = int(args.seconds * rate)
    samples = np.resize(samples.numpy(), n).astype(np.float32)  # cut, or repeated to the length
    recognizer = Recognizer(load_asr_model(resolve_model_path(args.model)), device="cpu")
    records = churn(
        recognizer, samples, rate, streams=args.streams, concurrent=args.concurrent, chunk_ms=args.chunk_ms,
        sample_every=args.sample_every, progress=not args.no_progress,
    )  # fmt: skip
    result = verdict(records, warmup=args.warmup, max_growth_mib=args.max_growth_mib, concurrent=args.concurrent)
    bc.write_json(
        args.out / "stream_churn.json",
        {"verdict": result, "samples": records, "settings": vars(args) | {"audio": str(args.audio),
         "out": str(args.out)}, "command": shlex.join(["python", "tools/stream_churn.py", *(argv or sys.argv[1:])])},
    )  # fmt: skip
    logger.info(
        "%d streams dropped without close_stream: RSS %+.1f MiB after stream %d (limit %.0f), %+d tensors, "
        "at most %d registered: %s",
        args.streams, result["rss_growth_mib"], result["from_streams"], args.max_growth_mib, result["tensor_growth"],
        result["max_registered"], "flat" if result["flat"] else "NOT FLAT",
    )  # fmt: skip
    return 0 if result["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
