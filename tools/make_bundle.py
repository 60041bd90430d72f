#!/usr/bin/env python
"""Reproduce the bundled model and the bundled audio from scratch (issue 6).

    .venv/bin/python tools/make_bundle.py                  # every step; each one is skipped when its output exists
    .venv/bin/python tools/make_bundle.py --steps package  # only re-package a trained run

Steps (in order; all resumable):

1. ``corpus``  - ``asr synth --out data/synth --hours 5 --seed 0`` (~30 min on 2 cores) and
   ``asr prepare realspeech --out data/realspeech`` (the real recordings of two Debian packages).
2. ``train``   - ``asr train recipes/synth/bundle.yaml --run-dir runs/bundle`` (resumes from its last checkpoint).
3. ``eval``    - ``asr eval`` of the run on the synthetic test set (full and 160 ms streaming) and on the real-speech
   set, into ``runs/bundle/eval-*``.
4. ``audio``   - the bundled audio: 5 utterances of each of the 7 held-out test speakers (seeded pick) and the
   pocketsphinx-testdata recordings of the real-speech set (BSD-2; not the GPL-2 alsa-utils phrases), as 16 kHz
   FLAC under ``asr/assets/audio/{synth,real}/`` with manifests ``synth_test.jsonl`` and ``real.jsonl`` (paths
   relative to the manifest), and ``LICENSES.md`` kept as written by hand.
5. ``package`` - ``asr/assets/model/model.safetensors`` (the run's final, averaged checkpoint: weights, config,
   tokenizer, CMVN in one safetensors file) and the model card ``asr/assets/model/README.md`` with the figures of
   step 3 and of the bundled sets.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASR = [sys.executable, "-m", "asr.cli"]
STEPS = ("corpus", "train", "eval", "audio", "package")
ASSETS = ROOT / "asr" / "assets"
MAX_MODEL_BYTES = 25 * 1024 * 1024
PER_SPEAKER = 5


def _sh(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def step_corpus(args: argparse.Namespace) -> None:
    if not (args.corpus / "test").is_dir():
        _sh([*ASR, "synth", "--out", str(args.corpus), "--hours", "5", "--seed", "0"])
    if not (args.real / "realspeech.jsonl").is_file():
        _sh([*ASR, "prepare", "realspeech", "--out", str(args.real)])


def step_train(args: argparse.Namespace) -> None:
    if (args.run / "final.safetensors").is_file():
        print(f"trained already: {args.run / 'final.safetensors'}")
        return
    resume = ["--resume"] if (args.run / "checkpoints").is_dir() else []
    _sh([*ASR, "train", str(args.recipe), "--run-dir", str(args.run), *resume,
         f"data.train={args.corpus / 'train'}", f"data.dev={args.corpus / 'dev'}"])


def _eval(model: Path, data: Path, out: Path, mode: str) -> dict:
    if not (out / "summary.json").is_file():
        _sh([*ASR, "eval", "--model", str(model), "--data", str(data), "--mode", mode, "--out", str(out),
             "--threads", "1", "--no-progress"])
    return json.loads((out / "summary.json").read_text())


def step_eval(args: argparse.Namespace) -> None:
    final = args.run / "final.safetensors"
    _eval(final, args.corpus / "test", args.run / "eval-test-full", "full")
    _eval(final, args.corpus / "test", args.run / "eval-test-stream", "stream")
    _eval(final, args.real / "realspeech.jsonl", args.run / "eval-real-full", "full")


def _to_flac(src: str, dst: Path) -> float:
    """Any audio file -> 16 kHz mono 16-bit FLAC; returns its duration in seconds."""
    import soundfile as sf

    from asr.audio import load_audio

    samples = load_audio(src, target_sr=16000)  # [N] float32 mono at 16 kHz
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, samples.numpy(), 16000, subtype="PCM_16", format="FLAC")
    return len(samples) / 16000


def step_audio(args: argparse.Namespace) -> None:
    from asr.data.manifest import Utterance, write_manifest
    from asr.data.sources import load_utterances

    audio_dir = ASSETS / "audio"
    by_speaker: dict[str, list] = defaultdict(list)
    for u in load_utterances(args.corpus / "test"):
        by_speaker[u.speaker].append(u)
    rng = random.Random(0)
    synth = []
    for spk in sorted(by_speaker):
        for u in rng.sample(sorted(by_speaker[spk], key=lambda x: x.id), PER_SPEAKER):
            rel = Path("synth") / f"{u.id}.flac"
            dur = _to_flac(u.audio, audio_dir / rel)
            synth.append(Utterance(id=u.id, audio=str(rel), duration=round(dur, 3), text=u.text, speaker=u.speaker,
                                   extra={"voice": _voice(args.corpus, spk)}))
    write_manifest(audio_dir / "synth_test.jsonl", synth)
    real = []
    for u in load_utterances(args.real / "realspeech.jsonl"):
        if u.extra.get("group") == "alsa":  # GPL-2 sound files: evaluated from the Debian package, not bundled
            continue
        rel = Path("real") / f"{u.id}.flac"
        dur = _to_flac(u.audio, audio_dir / rel)
        real.append(Utterance(id=u.id, audio=str(rel), duration=round(dur, 3), text=u.text, speaker=u.speaker,
                              extra={**u.extra, "source": u.audio}))
    write_manifest(audio_dir / "real.jsonl", real)
    print(f"bundled audio: {len(synth)} synthetic ({sum(u.duration for u in synth):.0f} s), "
          f"{len(real)} real ({sum(u.duration for u in real):.0f} s) in {audio_dir}")


def _voice(corpus: Path, speaker: str) -> str:
    for line in (corpus / "SPEAKERS.TXT").read_text().splitlines():
        fields = [f.strip() for f in line.split("|")]
        if not line.startswith(";") and len(fields) == 4 and fields[0] == speaker:
            return fields[3]
    raise ValueError(f"speaker {speaker!r} is not in {corpus / 'SPEAKERS.TXT'}")


def step_package(args: argparse.Namespace) -> None:
    final = args.run / "final.safetensors"
    if final.stat().st_size > MAX_MODEL_BYTES:
        raise SystemExit(f"{final} is {final.stat().st_size / 2**20:.1f} MiB: over the 25 MiB bundle limit")
    from asr.pipeline import load_asr_model

    bundle = load_asr_model(final)  # refuses a broken file before it is shipped
    dest = ASSETS / "model"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(final, dest / "model.safetensors")
    figures = {
        "test_full": _eval(final, args.corpus / "test", args.run / "eval-test-full", "full"),
        "test_stream": _eval(final, args.corpus / "test", args.run / "eval-test-stream", "stream"),
        "real_full": _eval(final, args.real / "realspeech.jsonl", args.run / "eval-real-full", "full"),
        "bundled_synth": _eval(dest / "model.safetensors", ASSETS / "audio" / "synth_test.jsonl",
                               args.run / "eval-bundled-synth", "full"),
        "bundled_real": _eval(dest / "model.safetensors", ASSETS / "audio" / "real.jsonl",
                              args.run / "eval-bundled-real", "full"),
    }
    dev = (args.run / "dev.csv").read_text().strip().splitlines()
    card = _model_card(bundle, figures, dev, args)
    (dest / "README.md").write_text(card)
    (dest / "figures.json").write_text(json.dumps({k: _brief(v) for k, v in figures.items()}, indent=2) + "\n")
    print(card)


def _brief(s: dict) -> dict:
    return {k: s[k] for k in ("data", "mode", "wer", "cer", "utterances", "audio_seconds", "real_time_factor")}


def _model_card(bundle, figures: dict, dev_rows: list[str], args: argparse.Namespace) -> str:
    cfg = bundle.model.config
    summary = json.loads((args.corpus / "synth_summary.json").read_text())
    hours = summary.get("hours_per_engine", {})

    def row(name: str, key: str) -> str:
        s = figures[key]
        return (f"| {name} | {s['utterances']} | {s['audio_seconds'] / 60:.1f} | {100 * s['wer']:.1f} | "
                f"{100 * s['cer']:.1f} | {s['real_time_factor']:.4f} |")

    engines = ", ".join(f"{k} {v:.2f} h" for k, v in sorted(hours.items()) if v)
    return f"""# The bundled Transcurrent model

`asr transcribe`, `asr live` and `asr eval` use this model when no `--model` is given. One safetensors file
(`model.safetensors`, {(ASSETS / 'model' / 'model.safetensors').stat().st_size / 2**20:.1f} MiB; no pickle) holds the
weights, the model config, the character tokenizer, the global CMVN statistics and the filterbank settings.

## Model
- Causal encoder, CTC head over {cfg.vocab_size} characters (blank included); 80-dim log-mel fbank, 10 ms shift,
  causal 4x convolutional subsampling (40 ms encoder frames).
- {cfg.num_layers} pre-norm blocks, d_model {cfg.d_model}, {cfg.num_heads} heads, feed-forward {cfg.ff_dim}, causal
  depthwise conv module of {cfg.conv_kernel_size} frames: {bundle.model.num_params() / 1e6:.2f} M parameters.
- Attention: causal linear attention (Katharopoulos et al. 2020), feature map {cfg.feature_map}, state decay
  `{cfg.decay}` (a learned constant per head), per-head output norm `{cfg.output_norm}`. Streaming state per stream
  is fixed-size: it does not grow with the audio, and streaming output equals full-utterance output exactly.

## Data
The synthetic corpus of `asr synth --out data/synth --hours 5 --seed 0`: {summary.get('hours_total', 0):.2f} h of
English read speech from four speech synthesizers ({engines}), many voices, rates and pitches, with room reverb and
noise; training, dev and test speakers (voices) and sentences are disjoint. Sentences come from Debian `fortunes`
and `wordnet-base`. Voices and their licences: espeak-ng (GPL-3.0-or-later), flite (CMU/BSD-style licence),
festival with festvox kal/ked diphones and the CMU ARCTIC slt HTS voice (free, BSD-style festvox licences), piper
(GPL-3.0) with the `joe` en-US voice (MIT). The generated audio carries no licence restriction from these engines
that we know of; the bundled audio's sources are listed in `asr/assets/audio/LICENSES.md`.

## Training
`asr train recipes/synth/bundle.yaml --run-dir runs/bundle` ({len(dev_rows) - 1} epochs, AdamW, cosine schedule,
speed perturbation and SpecAugment on, one CPU thread). `tools/make_bundle.py` reproduces everything from scratch.
Dev set per epoch (`runs/bundle/dev.csv`):

```
{chr(10).join(dev_rows)}
```

## Figures (greedy CTC decoding, one CPU thread)
| set | utts | minutes | WER % | CER % | real-time factor |
|---|---|---|---|---|---|
{row("synthetic test (held-out voices), full utterance", "test_full")}
{row("synthetic test, streaming 160 ms chunks", "test_stream")}
{row("real speech (pocketsphinx-testdata + alsa-utils)", "real_full")}
{row("bundled synthetic test subset (asr/assets/audio/synth_test.jsonl)", "bundled_synth")}
{row("bundled real speech (asr/assets/audio/real.jsonl)", "bundled_real")}

Produced by `tools/make_bundle.py` on {time.strftime("%Y-%m-%d")}.

## Limits
Trained on {summary.get('hours_total', 0):.1f} h of synthetic speech on a 2-core CPU: it is a demonstration model. It
transcribes synthetic speech of unseen voices with the error rates above and real recorded speech poorly; train a
LibriSpeech recipe (`recipes/librispeech/`) for real use.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    ap.add_argument("--corpus", type=Path, default=Path("data/synth"))
    ap.add_argument("--real", type=Path, default=Path("data/realspeech"))
    ap.add_argument("--recipe", type=Path, default=Path("recipes/synth/bundle.yaml"))
    ap.add_argument("--run", type=Path, default=Path("runs/bundle"))
    args = ap.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        ap.error(f"unknown steps {unknown}; choose from {list(STEPS)}")
    for name in STEPS:
        if name in steps:
            print(f"== {name}", flush=True)
            globals()[f"step_{name}"](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
