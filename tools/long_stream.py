#!/usr/bin/env python
"""Long-stream test: one continuous stream of test utterances with pauses, transcribed live.

The utterances of a test set (in a seeded order, cycling through the set again in a fresh seeded order when
it is shorter than ``--minutes``) are joined into one signal with a pause before each and after the last
(``--pause-s`` seconds drawn uniformly, digital silence or seeded low-level noise with ``--pause-noise``).
The signal is fed ``--chunk-ms`` at a time into one stream of the streaming Recognizer with endpointing on,
exactly as ``asr live`` feeds a microphone, decoding after every chunk. Recorded:

- per chunk: the wall and thread CPU time of ``accept_waveform`` + ``decode`` (front end, encoder step, CTC
  decoding, endpointing);
- every ``--sample-every-s`` seconds of audio: the process RSS and the bytes of the stream's state tensors
  (the encoder state: attention (S, z), convolution and subsampling caches; and the front-end buffers).

Then every utterance is decoded on its own (full-utterance forward, the same model, greedy) and scored with
asr.scoring. Headline: the corpus WER of the whole stream transcript against the concatenated references,
relative to the WER of the separate decodes (each occurrence scored on its own and summed). Also reported:
the separate hypotheses joined and scored as one string (like for like with the stream), and the stream's
tokens split back to the utterances by their emission times (a token belongs to the utterance whose span,
extended to the middle of the pauses around it, holds its time).

"Within 5%" means stream WER <= 1.05 x separate WER (a lower stream WER counts as within).

Memory flat: RSS and state bytes after the first minute and at the end; per-chunk latency in the first
minute vs the last (a shorter stream compares its halves). The live times follow the machine's load, so the
encoder states after the first minute and at the end are also kept and stepped again, interleaved, on the
same input (``--replay-rounds``): the step cost at both ends under the same conditions. Writes
DIR/long_stream.json (figures, settings, command line, the transcript), DIR/long_stream.png,
DIR/segments.jsonl (final segments) and DIR/utterances.jsonl (per occurrence: ref, hyps, errors).

    python tools/long_stream.py --model runs/X/final.safetensors --minutes 30
    python tools/long_stream.py --model runs/X --minutes 5 --pause-s 0.5-2.0 --pause-noise 0.001 --out /tmp/ls
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _bench_common as bc
import torch
from bench.long_stream_report import plot, summarize, table, window_s, write_jsonl
from bench.long_stream_run import replay_steps, run_stream
from bench.long_stream_score import score
from bench.long_stream_signal import build_signal, parse_pause_range

from asr.data.sources import load_utterances
from asr.pipeline import load_asr_model, resolve_model_path
from asr.streaming import EndpointConfig
from asr.streaming.feed import recognizer_config

logger = logging.getLogger("long_stream")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the bundled model)")
    p.add_argument("--data", default="data/synth/test",
                   help="test utterances: a manifest, Kaldi data dir or LibriSpeech-layout folder")
    p.add_argument("--minutes", type=float, default=30.0, help="length of the stream in minutes")
    p.add_argument("--pause-s", default="0.5-2.0",
                   help="pause before each utterance (and after the last): 'LO-HI' seconds, uniform")
    p.add_argument("--pause-noise", type=float, default=0.0,
                   help="RMS of Gaussian noise in the pauses (0: digital silence; 0.001 is about -60 dBFS)")
    p.add_argument("--chunk-ms", type=int, default=160, help="audio per chunk fed to the recognizer")
    p.add_argument("--silence-after-speech", type=float, default=EndpointConfig.silence_after_speech,
                   help="endpoint rule: seconds of trailing silence after speech that end a segment")
    p.add_argument("--reset-state-at-endpoint", action="store_true",
                   help="also zero the encoder's attention state (S, z) at each endpoint (default: carry it)")
    p.add_argument("--sample-every-s", type=float, default=10.0, help="RSS/state sampling interval (audio s)")
    p.add_argument("--replay-rounds", type=int, default=200,
                   help="interleaved encoder steps timed from the first-window and the end states")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0, help="order of the utterances, pauses and pause noise")
    p.add_argument("--out", type=Path, default=Path("runs/long_stream"), help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p.parse_args(argv)  # fmt: skip


def _check_args(args: argparse.Namespace) -> None:
    if not math.isfinite(args.minutes) or args.minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    if not math.isfinite(args.sample_every_s) or args.sample_every_s <= 0:
        raise ValueError(f"--sample-every-s must be > 0, got {args.sample_every_s}")
    if not math.isfinite(args.pause_noise) or args.pause_noise < 0:
        raise ValueError(f"--pause-noise must be >= 0, got {args.pause_noise}")
    if args.replay_rounds < 1:
        raise ValueError(f"--replay-rounds must be >= 1, got {args.replay_rounds}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not Path(args.data).exists():
        raise ValueError(f"--data {args.data!r} does not exist")


def run(args: argparse.Namespace, *, command: str) -> dict[str, Any]:
    """The whole measurement; returns what long_stream.json holds (and writes it, the PNG and the JSONL)."""
    _check_args(args)
    pause = parse_pause_range(args.pause_s)
    torch.set_num_threads(args.threads)
    model_path = resolve_model_path(args.model)
    bundle = load_asr_model(model_path, device=args.device)
    if not bundle.model.config.causal:
        raise ValueError(f"model {model_path} is bidirectional (causal=False): it cannot stream")
    recognizer_config(bundle, args.chunk_ms)  # validates --chunk-ms
    endpoint = EndpointConfig(
        silence_after_speech=args.silence_after_speech, reset_attention_state=args.reset_state_at_endpoint
    )
    utterances = load_utterances(args.data)
    sr = bundle.features.sample_rate
    started = time.perf_counter()
    signal = build_signal(
        utterances, seconds=60 * args.minutes, pause_s=pause, pause_noise=args.pause_noise, sample_rate=sr,
        seed=args.seed,
    )  # fmt: skip
    duration = signal.samples.numel() / sr
    logger.info(
        "stream of %.1f min: %d utterances (%d distinct, %d pass(es)) from %s; model %s",
        duration / 60, len(signal.placements), len({p.utt_id for p in signal.placements}), signal.cycles,
        args.data, model_path,
    )  # fmt: skip
    progress = not args.no_progress
    stream_run = run_stream(
        bundle, signal, chunk_ms=args.chunk_ms, endpoint=endpoint, sample_every_s=args.sample_every_s,
        snapshot_at_s=window_s(duration), device=args.device, progress=progress,
    )  # fmt: skip
    replay = replay_steps(bundle, stream_run.snapshots, chunk_ms=args.chunk_ms, rounds=args.replay_rounds,
                          seed=args.seed)  # fmt: skip
    by_id = {u.id: u for u in utterances}
    wer, rows, transcript = score(bundle, signal, stream_run, utterances=by_id, progress=progress)
    memory, latency = summarize(stream_run, duration_s=duration)
    latency["separate_decode_compute_s"] = wer.pop("separate_compute_s")
    latency["replay"] = replay
    speech = sum(p.end - p.start for p in signal.placements) / sr
    result: dict[str, Any] = {
        "command": command,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        | {"model_path": str(model_path), "pause_range_s": list(pause),
           "chunk_samples": stream_run.chunk_samples, "endpoint": dataclasses.asdict(endpoint),
           "model_config": dataclasses.asdict(bundle.model.config)},
        "machine": bc.machine_info(torch.device(args.device)),
        "stream": {
            "duration_s": duration, "samples": signal.samples.numel(), "speech_s": speech,
            "pause_s": sum(signal.pauses_s), "occurrences": len(signal.placements),
            "distinct_utterances": len({p.utt_id for p in signal.placements}), "cycles": signal.cycles,
            "skipped": signal.skipped, "segments": len(stream_run.segments),
            "endpoints": dict(Counter(s.endpoint for s in stream_run.segments)),
        },
        "wer": wer,
        "memory": memory,
        "latency": latency,
        "timeline": stream_run.timeline,
        "transcript": transcript,
        "wall_s": time.perf_counter() - started,
    }  # fmt: skip
    result["machine"]["load_average_1m_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    bc.write_json(out / "long_stream.json", result)
    write_jsonl(out / "utterances.jsonl", rows)
    write_jsonl(out / "segments.jsonl", [dataclasses.asdict(s) for s in stream_run.segments])
    title = f"{model_path} - {duration / 60:.1f} min stream"
    why = plot(stream_run, memory, out / "long_stream.png", title=title)
    if why:
        logger.warning("no plot: %s", why)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    command = shlex.join(["python", "tools/long_stream.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        result = run(args, command=command)
    except ValueError as exc:
        print(f"long_stream: error: {exc}", file=sys.stderr)
        return 2
    m = result["machine"]
    print(f"{m['cpu_model']}, torch {m['torch']}, {args.threads} thread(s), device {args.device}, "
          f"load average {m['load_average_1m']:.1f} -> {m['load_average_1m_end']:.1f}")  # fmt: skip
    print(table(result))
    print(f"\nwrote {args.out}/long_stream.json, long_stream.png, utterances.jsonl, segments.jsonl "
          f"({result['wall_s']:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
