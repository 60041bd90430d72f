"""The synthetic speech corpus: many TTS engines and voices, augmented, in LibriSpeech layout.

``asr synth --out DIR --hours H --seed S`` builds it; see :func:`synthesize_corpus`.
"""

from asr.synth.engines import ENGINES, available_engines
from asr.synth.generate import PRESETS, SynthConfig, config_with_preset, make_plan, synthesize_corpus
from asr.synth.text import TextConfig, load_sentences, normalise

__all__ = [
    "ENGINES",
    "PRESETS",
    "SynthConfig",
    "TextConfig",
    "available_engines",
    "config_with_preset",
    "load_sentences",
    "make_plan",
    "normalise",
    "synthesize_corpus",
]
