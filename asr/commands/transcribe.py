"""``asr transcribe [--model CKPT] [--json] [LM options] FILE...``: offline transcription of audio files.

    asr transcribe speech.flac                          # the text (bundled model and its LM)
    asr transcribe --model runs/synth a.wav b.flac      # "FILE<TAB>text" per file when several are given
    asr transcribe --json a.wav                         # one JSON object per file: text, words, tokens, times, ...
    asr transcribe --no-lm speech.flac                  # greedy CTC, no LM
    asr transcribe --lm 4-gram.arpa.gz --lexicon lexicon.txt speech.flac

Each file is read whole (any format soundfile reads; resampled to the model's rate, channels averaged), run
through the full-utterance forward and decoded with the lexicon + n-gram LM beam search (the bundled LM when it
fits the model, or ``--lm``/``--lexicon``), or with ``--no-lm`` greedily (or with a CTC prefix beam of width
``--beam``); see :mod:`asr.commands.lm_options`. The LM files are checked before any audio is read. A file that
cannot be read is reported on stderr and the others are still transcribed (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from asr.commands._args import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audio files (wav, flac, ogg, mp3, ...)")
    parser.add_argument("--model", help="checkpoint (.safetensors) or run dir (default: the bundled model)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file (text, tokens, times, ...)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--stream", action="store_true", help="stream each file through the recognizer (asr.live.stream_files)"
    )
    parser.add_argument(
        "--chunk-ms", type=int, default=160, help="with --stream: audio per chunk fed, one encoder step (x40 ms)"
    )
    parser.add_argument(
        "--partials", action="store_true", help="with --stream: partial results on their own lines also in a pipe"
    )
    parser.add_argument(
        "--realtime", action="store_true", help="with --stream: feed chunks at the audio's own pace, like a microphone"
    )
    from asr.commands.lm_options import add_lm_arguments

    add_lm_arguments(parser)


def _file_log_probs(bundle, path: Path) -> tuple[Any, float]:
    """A whole file's full-utterance log-probs and its seconds of audio. Any length: nothing under ~55 ms (no
    frame); over LONG_SECONDS (from the header) a causal model reads and decodes it in blocks, in bounded memory."""
    import soundfile as sf

    from asr.audio import load_audio, read_audio_blocks
    from asr.pipeline import LONG_SECONDS

    sr = bundle.features.sample_rate
    try:
        info = sf.info(str(path))
        header_seconds = info.frames / info.samplerate
    except Exception:  # noqa: BLE001 (not a file libsndfile reads: load_audio says what is wrong with it)
        header_seconds = 0.0
    if header_seconds > LONG_SECONDS and bundle.model.config.causal:
        decoded = 0

        def blocks():
            nonlocal decoded
            for x in read_audio_blocks(path, block_seconds=LONG_SECONDS, target_sr=sr):
                decoded += x.shape[0]
                yield x

        lp = bundle.log_probs_of_pieces(blocks())
        return lp, decoded / sr
    samples = load_audio(path, target_sr=sr)
    return bundle.utterance_log_probs(samples), samples.shape[0] / sr


def _transcribe_offline(bundle, log_probs, *, beam: int, lm=None, duration: float) -> dict[str, Any]:
    """One file's full-utterance log-probs -> text, (words,) tokens with times and confidences; no time past
    ``duration`` (a last phone may come out in the tail padding's frames, after the audio that held it)."""
    hyp = bundle.decode(log_probs, beam=beam) if lm is None else lm.decode(log_probs)
    text = hyp.text(bundle.tokenizer)
    spf = bundle.seconds_per_frame
    sec = lambda f: round(min(f * spf, duration), 3)  # noqa: E731
    out: dict[str, Any] = {"text": text}
    if hyp.words is not None:
        out["words"] = [
            {"word": w.text, "start": sec(w.start), "end": sec(w.end), "confidence": round(w.confidence, 4)}
            for w in hyp.words
        ]
    out.update(
        tokens=bundle.tokenizer.decode_tokens(hyp.tokens),
        times=[sec(f) for f in hyp.frames],
        confidences=[round(float(c), 4) for c in hyp.confidences],
    )
    return out


def run(args: argparse.Namespace) -> int:
    from asr.commands.lm_options import lm_decoder_from_args, prefix_beam
    from asr.pipeline import load_asr_model, resolve_model_path

    if (args.partials or args.realtime) and not args.stream:
        print("asr transcribe: error: --partials and --realtime apply to --stream only", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        bundle = load_asr_model(resolve_model_path(args.model), device=args.device)
        # files checked before any audio is read
        lm = lm_decoder_from_args(args, bundle.tokenizer, bundled_model=args.model is None)
    except ValueError as exc:
        print(f"asr transcribe: error: {exc}", file=sys.stderr)
        return 2

    if args.stream:
        from asr.live import stream_files

        try:
            return stream_files(
                bundle,
                args.files,
                chunk_ms=args.chunk_ms,
                json_lines=args.json,
                beam=prefix_beam(args) if lm is None else 1,
                device=args.device,
                lm=lm,
                partials=args.partials,
                realtime=args.realtime,
            )
        except ValueError as exc:  # --chunk-ms not a multiple of 40 ms, a model that cannot stream
            print(f"asr transcribe: error: {exc}", file=sys.stderr)
            return 2

    status = 0
    for path in args.files:
        t0 = time.perf_counter()
        try:
            log_probs, seconds = _file_log_probs(bundle, path)
            out = _transcribe_offline(bundle, log_probs, beam=prefix_beam(args), lm=lm, duration=seconds)
        except ValueError as exc:  # unreadable audio (asr.audio.AudioError), too long for a bidirectional model
            print(f"asr transcribe: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            row = {
                "file": str(path),
                "duration": round(seconds, 3),
                **out,
                "real_time_factor": round((time.perf_counter() - t0) / max(seconds, 1e-9), 4),
            }
            print(json.dumps(row, ensure_ascii=False), flush=True)
        elif len(args.files) == 1:
            print(out["text"], flush=True)
        else:
            print(f"{path}\t{out['text']}", flush=True)
    return status
