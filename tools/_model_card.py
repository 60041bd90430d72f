"""The bundled model's card (asr/assets/model/README.md): what it is, how it was trained, what it scores, its
licences and its LM. Written by tools/make_bundle.py's package step from the figures it measured."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

UNITS = {  # tokenizer kind -> (what the CTC head outputs, how the lexicon spells a word)
    "char": ("characters", "those words spelled in the model's characters"),
    "phone": ("CMUdict phones (39 ARPAbet phones, stress removed)",
              "every CMUdict pronunciation of those words (stress removed) in the model's phones, and espeak-ng's "
              "(asr/text/g2p.py) for the words CMUdict lacks"),
    "bpe": ("sentencepiece BPE pieces", "those words as the model's sentencepiece pieces"),
}  # fmt: skip


def scores(s: dict) -> str:
    """WER / CER in %, or PER for a phone model's greedy output (phone strings: no characters to count)."""
    if "per" in s:
        return f"PER {100 * s['per']:.1f}"
    return f"{100 * s['wer']:.1f} / {100 * s['cer']:.1f}"


# the phone bundle's lineage, each phase warm-started from the one before (make_bundle step phones); the phases after
# phones2 start from a copy of the bundle of their day, phones2's epoch 3 (extend when a later one starts elsewhere)
PHONE_PHASES = (
    ("targets-phone", "`recipes/synth/targets_phone.yaml` (from scratch)"),
    ("phones1", "`recipes/synth/phones_world.yaml` (the world data with phone targets, real recordings 10% of the "
                "audio)"),
    ("phones2", "`recipes/synth/phones_real.yaml` (the real recordings' share doubled)"),
)  # fmt: skip
PHONE_FOLLOW_UPS = {  # run folder -> the phase after phones2's epoch 3
    "phones-distill": "`recipes/synth/phones_distill.yaml` (a KL term toward hama's phone posteriors on every "
                      "utterance)",
    "phones3": "`recipes/synth/phones_real.yaml` again (a fresh schedule)",
    "phones-distill-real": "`recipes/synth/phones_distill_real.yaml` (a KL term toward hama's phone posteriors on "
                           "the real recordings)",
    "real20": "`recipes/synth/phones_real_short.yaml` (one epoch, real recordings 20% of the audio)",
    "real40": "`recipes/synth/phones_real_more.yaml` (one epoch, real recordings 40% of the audio)",
    "kokoro1": "`recipes/synth/phones_kokoro.yaml` (one epoch in fp32, on a CPU without bf16: Kokoro-82M's 28 neural "
               "voices 30% of the audio, real recordings 20%)",
    "grow16": "`tools/grow_model.py` to 16 blocks (8 identity blocks between the trained ones), then "
              "`recipes/synth/phones_grow16.yaml` (1,400 steps of phones_kokoro.yaml's epoch in fp32)",
    "kvaried1": "`recipes/synth/phones_kokoro_varied.yaml` (2,400 steps of an epoch in fp32: Kokoro's voices on "
                "the varied text, single words, letters, numbers and commands, added; Kokoro 50% of the audio, real "
                "recordings 20%)",
    "kblend1": "`recipes/synth/phones_kokoro_blend.yaml` (one epoch, 2,038 steps: 120 new speakers "
               "blended from two Kokoro voices each, on the varied text, 30% of the audio, Kokoro's own voices "
               "10%, real recordings 20%)",
    "kvctl1": "`recipes/synth/phones_kokoro_varied.yaml` again (1,500 steps, a fresh schedule, on part of its "
              "Kokoro corpora)",
    "kvblend1": "`recipes/synth/phones_kokoro_varied_blend.yaml` (1,500 steps: the Kokoro blends 15% of the audio, "
                "from the main corpus's share, on part of the Kokoro corpora)",
    "kvreal10": "`recipes/synth/phones_kokoro_varied_real10.yaml` (1,500 steps: the real recordings 10% of the audio, "
                "on part of the Kokoro corpora)",
}  # fmt: skip
# a follow-up run -> the follow-up it started from (else phones2's epoch 3)
PHONE_AFTER = {"grow16": "kokoro1", "kvaried1": "kokoro1", "kblend1": "kvaried1", "kvctl1": "kvaried1",
               "kvblend1": "kvaried1", "kvreal10": "kvaried1"}  # fmt: skip


def _phone_phases(origin: str) -> str:
    """The phases a phone bundle went through, up to the run of ``origin`` (runs/RUN/...; in bf16 autocast)."""
    parts = origin.split("/")
    run = parts[1] if len(parts) > 2 and parts[0] == "runs" else None
    names = [n for n, _ in PHONE_PHASES]
    steps = [what for _, what in PHONE_PHASES]
    if run in PHONE_FOLLOW_UPS:
        chain = [run]
        while chain[-1] in PHONE_AFTER:
            chain.append(PHONE_AFTER[chain[-1]])
        first, *later = reversed(chain)
        steps.append(PHONE_FOLLOW_UPS[first] + " from phones2's epoch 3")
        steps += [PHONE_FOLLOW_UPS[r] for r in later]
    elif run in names:
        steps = steps[: names.index(run) + 1]
    return "Phone phases, each a warm start from the one before, in bf16 autocast unless said: " + ", then ".join(steps)


def render(bundle, figures: dict, *, model_path: Path, weights_dtype: str, lm: dict, test_sets: dict,
           origin: str) -> str:
    """The card of ``bundle`` (an AsrModel) saved at ``model_path``: its figures (make_bundle's package step, keyed
    ``{set}_{greedy|lm}_{full|stream}`` over ``test_sets``), its LM folder's ``lm.json`` and the checkpoint it came
    from."""
    from asr.pipeline import TAIL_PADDING_SECONDS

    cfg = bundle.model.config
    kind = bundle.tokenizer.kind
    units, spelled = UNITS[kind]
    phone = kind == "phone"
    greedy_note = ", which prints phone strings, not words" if phone else ""
    phases = _phone_phases(origin) if phone else (
        "Phase 1 `recipes/synth/world.yaml`, phase 2 `recipes/synth/world_ft.yaml`, phase 3 "
        "`recipes/synth/world_long.yaml` (each a warm start from the one before; phase 3 in bf16 autocast where the "
        "CPU has bf16)"
    )  # fmt: skip
    per_note = "; PER: phone error rate" if phone else ""
    dec = lm["decoder"]
    from asr.decoding.lm_decoder import LMDecoderConfig

    defaults = {f.name: f.default for f in dataclasses.fields(LMDecoderConfig)}
    beam, tokens, threshold = (dec.get(k, defaults[k]) for k in ("beam_size", "beam_size_token", "beam_threshold"))
    search = f"beam {beam}, {'every token' if tokens is None else f'the {tokens} likeliest tokens'} a frame, " \
        f"threshold {threshold:g}"
    ngrams = " / ".join(f"{c:,}" for c in lm["ngram_counts"])
    rows = []
    for name, (_, what) in test_sets.items():
        for decoder in ("greedy", "lm"):
            full, stream = figures[f"{name}_{decoder}_full"], figures[f"{name}_{decoder}_stream"]
            label = "lexicon + LM" if decoder == "lm" else ("greedy (phones)" if phone else "greedy")
            rows.append(
                f"| {what} | {label} | {full['utterances']} | {scores(full)} | {scores(stream)} | "
                f"{stream['real_time_factor']:.4f} |"
            )
    dev = figures["realspeech_dev_greedy"]
    dev_lm = figures.get("realspeech_dev_lm") or {"wer": float("nan"), "cer": float("nan")}
    return f"""# The bundled Transcurrent model

`asr transcribe`, `asr live`, `asr eval` and `asr serve` use this model when no `--model` is given, with the
lexicon + n-gram LM beside it (`lm.arpa.gz`, `lexicon.txt.gz`, `lm.json`; `--no-lm` for greedy CTC{greedy_note}).
`model.safetensors` ({model_path.stat().st_size / 2**20:.1f} MiB; no pickle) holds the weights
({weights_dtype}, loaded into float32 parameters), the model config, the {kind} tokenizer, the global
CMVN statistics and the filterbank settings.

## Model
- Causal encoder, CTC head over {units}; 80-dim log-mel fbank, 10 ms shift, causal 4x convolutional
  subsampling (40 ms encoder frames).
- {cfg.num_layers} pre-norm blocks, d_model {cfg.d_model}, {cfg.num_heads} heads, feed-forward {cfg.ff_dim}, causal
  depthwise conv module of {cfg.conv_kernel_size} frames: {bundle.model.num_params() / 1e6:.2f} M parameters.
- Attention: causal linear attention (Katharopoulos et al. 2020), feature map {cfg.feature_map}, state decay
  `{cfg.decay}`, per-head output norm `{cfg.output_norm}`. Streaming state per stream is fixed-size, and streaming
  output equals full-utterance output.

## Training (tools/make_bundle.py; the campaign and its learning curve: docs/results.md)
- Data: synthetic speech of six engines (RHVoice alan/bdl/clb/slt, festival kal/ked/slt-hts/don/rab, flite, piper
  joe, SVOX pico, espeak-ng under 10% of the audio) with the voice settings Whisper tiny.en cannot read left out
  (tools/score_voices.py); 16 h of clean read sentences (fortunes, WordNet) + 5 h of commands, questions, numbers,
  dates, letters and short phrases; real recordings from Debian packages' games (realspeech-train: Whisper
  pseudo-labels of 3+ words or labels two systems confirm) in 10-20% of the later phases' audio. No MBROLA
  voice (non-commercial).
- Augmentation on the fly (recipes/synth/world.yaml): simulated rooms, noise, babble, microphone EQ, level,
  telephone band, codecs, VTLP, speed perturbation, SpecAugment.
- {phases}. This file: `{origin}`.
- Model selection on realspeech-dev only, decoded as users get it (lexicon + LM: WER {100 * dev_lm['wer']:.1f}, CER
  {100 * dev_lm['cer']:.1f}; greedy: {scores(dev)}); the test sets below
  were not used for any choice.

## Figures (one CPU thread; WER / CER in %{per_note}; stream = 160 ms chunks through the streaming recognizer)
LM: {lm['build']['estimator']}, order {lm['order']}, {lm['lexicon_words']} words; decoder weights
lm_weight {dec['lm_weight']}, word_score {dec['word_score']}, blank_penalty {dec.get('blank_penalty', 0.0)};
search: {search}
(tuned on dev sets; the blank penalty is taken off the blank's log posterior in every frame before the search).
Every input is followed by {TAIL_PADDING_SECONDS:g} s of silence before its last frames are decoded
(`asr.pipeline.TAIL_PADDING_SECONDS`, full and streaming alike), so the last phones of audio cut right after a word
come out.

| set | decoder | utts | full WER / CER | stream WER / CER | stream real-time factor |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Produced by `tools/make_bundle.py` on {time.strftime("%Y-%m-%d")}. The real-time factors are what `asr eval` measured
in that run, where other jobs may have shared the 2-core machine (speed measured in turns: docs/benchmarks.md).
Where stream and full differ, the audio is not at 16 kHz: the full pass resamples the whole file, the stream
resamples chunk by chunk (soxr's streaming resampler), and a near-tie in one frame goes the other way.

## Limits
Trained on CPUs for a few CPU-hours on synthetic speech and ~18 minutes of game voices: read the error rates
above before relying on it; train a LibriSpeech recipe (`recipes/librispeech/`) for real-world use.

## Licences
Voices: RHVoice with the alan, bdl, clb and slt English voices (LGPL), festival with festvox kal/ked diphones, the
CMU ARCTIC slt HTS voice and don/rab (free, BSD-style festvox licences), flite (CMU/BSD-style licence), piper
(GPL-3.0) with the `joe` en-US voice (MIT), SVOX pico (Apache-2.0), espeak-ng (GPL-3.0-or-later); no MBROLA voice.
The generated audio carries no licence restriction from these engines that we know of. The real recordings of
realspeech-train come from Debian packages (each source and its package is listed by `asr prepare realspeech` in
`data/realspeech/README.md`); the bundled audio's sources and licences are in `asr/assets/audio/LICENSES.md`.

## Language model (decoding)
`asr transcribe`, `asr live`, `asr eval` and `asr serve` decode this model with a lexicon and an n-gram LM
(flashlight-text's CTC lexicon beam search with KenLM, `asr/decoding/lm_decoder.py`); `--no-lm` gives greedy CTC.
Beside the weights:

- `lm.arpa.gz`: a back-off Kneser-Ney {lm['order']}-gram (kaldingram, SRILM's `-ukndiscount` estimate) over the
  {lm['lexicon_words']:,} words most frequent in English (wordfreq) that the text has, every other word
  `<unk>`, pruned with relative entropy at {lm['build']['prune']:g} (n-grams {ngrams});
  what pruning costs is measured in docs/results.md (`tools/lm_prune_cost.py`);
- `lexicon.txt.gz`: {spelled}{"; a word it does not hold cannot be output" if phone else ""};
- `lm.json`: the build record (exact command, text sources and counts, what was kept out) and the decoder
  settings tuned on dev data (`decoder`, `tuning`).

Text ({lm['build']['words'] / 1e6:.1f} M words, {lm['build']['sentences'] / 1e6:.2f} M sentences): the synthetic
corpus's training sentences (every synth preset's pool) and general English from Debian packages (fortunes, WordNet
glosses, the King James Bible, the Jargon File, GCIDE), numbers spelled out. Kept out, and counted in `lm.json`:
every sentence whose synthetic split hash is dev or test (for every preset's text settings) and every sentence
containing a dev/test pool sentence; every real-speech reference (the bundled clips,
`asr/synth/reference_sentences.txt`, pocketsphinx's transcripts, ALSA's names,
`data/realspeech/realspeech-{{dev,test}}.jsonl` when present) as a whole sentence and, from 3 words up, inside one
(`asr/lm/text.py`; tested in `tests/asr/lm/test_lm_build.py`).

Rebuild, re-tune and install (rerun the tuning, `--tune-only`, whenever the weights change; the LM itself depends
only on the model's tokens):

    python tools/make_lm_bundle.py            # = asr lm build (command in lm.json) + tools/tune_lm.py + copy
"""
