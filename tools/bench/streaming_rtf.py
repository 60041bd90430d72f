"""Section 2 of the streaming benchmark: the real-time factor of one stream through the Recognizer on real
speech, split into front end, encoder and the rest, beside pocketsphinx."""

from __future__ import annotations

import argparse
import glob
import statistics
from typing import Any

import _bench_common as bc
import numpy as np
import torch

from asr.features import FbankConfig, GlobalCMVN, StreamingFbank, compute_fbank
from asr.pipeline import AsrModel
from asr.streaming.feed import stream_samples
from asr.streaming.recognizer import Recognizer, RecognizerConfig
from bench.streaming_setup import (
    CHUNK_FRAMES,
    CHUNK_S,
    FRAME_RATE,
    SPEECH_GLOB,
    TARGET_RTF,
    base_tokenizer,
    build_model,
    step_function,
)


def load_speech(max_files: int | None) -> tuple[np.ndarray, list[str]]:
    """The LibriVox test files of pocketsphinx-testdata, concatenated (16 kHz mono float32)."""
    import soundfile as sf

    files = sorted(glob.glob(SPEECH_GLOB))[:max_files]
    if not files:
        raise SystemExit(f"no speech files at {SPEECH_GLOB}: install the Debian package pocketsphinx-testdata")
    parts = []
    for f in files:
        x, sr = sf.read(f, dtype="float32")
        if sr != 16000 or x.ndim != 1:
            raise SystemExit(f"{f}: expected 16 kHz mono, got {sr} Hz, shape {x.shape}")
        parts.append(x)
    return np.concatenate(parts), files


def make_bundle(
    audio: np.ndarray, *, seed: int, device: torch.device, overrides: dict[str, Any], base: str
) -> AsrModel:
    features = FbankConfig()
    cmvn = GlobalCMVN.fit([compute_fbank(torch.from_numpy(audio), features)])
    model = build_model("linear", seed=seed, device=device, overrides=overrides, base=base)
    return AsrModel(model=model, tokenizer=base_tokenizer(base), cmvn=cmvn, features=features)


@torch.inference_mode()
def run_rtf(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    audio, files = load_speech(1 if args.quick else None)
    seconds = len(audio) / 16000
    bundle = make_bundle(audio, seed=args.seed, device=device, overrides=args.model, base=args.base)
    kinds = ("packed", "module")  # the Recognizer's step, and the plain module step beside it
    recognizers = {
        kind: Recognizer(bundle, device=device, config=RecognizerConfig(chunk_frames=CHUNK_FRAMES, step=kind))
        for kind in kinds
    }
    chunk = int(CHUNK_S * 16000)
    chunk_ms = CHUNK_FRAMES * 1000 // FRAME_RATE
    for rec in recognizers.values():
        stream_samples(rec, audio[: 16000 * 2], 16000, chunk_ms=chunk_ms)  # warm-up

    def measure(fns: dict[str, Any]) -> dict[str, tuple[float, float]]:
        """Median wall and CPU seconds of each function, timed in turns (noise hits them alike)."""
        walls: dict[str, list[float]] = {k: [] for k in fns}
        cpus: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.rtf_repeats):
            for key, fn in fns.items():
                with bc.Clock(device) as clock:
                    fn()
                walls[key].append(clock.wall)
                cpus[key].append(clock.cpu)
        return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in fns}

    fbank = StreamingFbank(bundle.features)

    def front_end() -> None:  # the front end alone, same chunks
        state = fbank.init_state()
        for i in range(0, len(audio), chunk):
            feats, state = fbank.step(torch.from_numpy(audio[i : i + chunk]), state)
            bundle.cmvn.apply(feats)

    feats = bundle.featurize(torch.from_numpy(audio)).unsqueeze(0)
    n = feats.shape[1] // CHUNK_FRAMES * CHUNK_FRAMES
    steps = {kind: step_function(bundle.model, kind) for kind in (*kinds, "packed_by_op")}

    def encoder(kind: str, frames: int = CHUNK_FRAMES) -> None:  # the encoder alone, same chunks
        state = bundle.model.init_state(1, device)
        for i in range(0, n - frames + 1, frames):
            _, state = steps[kind](feats[:, i : i + frames], state)

    # everything timed in turns, repeat after repeat: machine noise hits all parts alike
    fns: dict[str, Any] = {f"recognizer_{kind}": (lambda rec=rec: stream_samples(rec, audio, 16000, chunk_ms=chunk_ms))
                           for kind, rec in recognizers.items()}  # fmt: skip
    fns["front"] = front_end
    for kind in (*kinds, "packed_by_op"):
        fns[f"encoder_{kind}"] = lambda kind=kind: encoder(kind)
    for frames in (2 * CHUNK_FRAMES, 4 * CHUNK_FRAMES):
        fns[f"encoder_packed_{frames}"] = lambda frames=frames: encoder("packed", frames)
    timed = measure(fns)
    full = {kind: timed[f"recognizer_{kind}"] for kind in kinds}
    front = timed["front"]
    enc = {kind: timed[f"encoder_{kind}"] for kind in (*kinds, "packed_by_op")}
    by_chunk = {CHUNK_FRAMES * 10: enc["packed"][1] / ((n // CHUNK_FRAMES) * CHUNK_FRAMES / FRAME_RATE)}
    for frames in (2 * CHUNK_FRAMES, 4 * CHUNK_FRAMES):
        by_chunk[frames * 10] = timed[f"encoder_packed_{frames}"][1] / ((n // frames) * frames / FRAME_RATE)
    out: dict[str, Any] = {"files": files, "audio_s": seconds, "target_rtf": TARGET_RTF}
    for key, idx in (("", 1), ("wall_", 0)):  # CPU time first (load-independent), then wall time
        out[f"{key}rtf"] = full["packed"][idx] / seconds
        out[f"{key}front_end_rtf"] = front[idx] / seconds
        out[f"{key}encoder_rtf"] = enc["packed"][idx] / (n / FRAME_RATE)
        out[f"{key}rest_rtf"] = out[f"{key}rtf"] - out[f"{key}front_end_rtf"] - out[f"{key}encoder_rtf"]
        out[f"{key}per_chunk_ms"] = 1e3 * full["packed"][idx] / (seconds / CHUNK_S)
        out[f"{key}by_op_encoder_rtf"] = enc["packed_by_op"][idx] / (n / FRAME_RATE)
        out[f"{key}module_rtf"] = full["module"][idx] / seconds
        out[f"{key}module_encoder_rtf"] = enc["module"][idx] / (n / FRAME_RATE)
    out["encoder_speedup"] = out["module_encoder_rtf"] / out["encoder_rtf"]
    out["block_call_speedup"] = out["by_op_encoder_rtf"] / out["encoder_rtf"]  # op by op / one call a block
    out["encoder_rtf_by_chunk_ms"] = by_chunk
    out["pocketsphinx"] = run_pocketsphinx(audio, chunk, repeats=args.rtf_repeats)
    return out


def run_pocketsphinx(audio: np.ndarray, chunk: int, *, repeats: int) -> dict[str, Any]:
    try:
        from pocketsphinx import Decoder
    except ImportError as exc:
        return {"error": f"pocketsphinx not installed ({exc}); pip install pocketsphinx"}
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    decoder = Decoder(loglevel="FATAL")
    walls, cpus, text = [], [], ""
    for _ in range(repeats):
        with bc.Clock(torch.device("cpu")) as clock:
            decoder.start_utt()
            for i in range(0, len(pcm), chunk):
                decoder.process_raw(pcm[i : i + chunk].tobytes(), False, False)
            decoder.end_utt()
        walls.append(clock.wall)
        cpus.append(clock.cpu)
        hyp = decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
    seconds = len(audio) / 16000
    return {"rtf": statistics.median(cpus) / seconds, "wall_rtf": statistics.median(walls) / seconds, "text": text}
