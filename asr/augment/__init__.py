"""Training-time augmentation, every draw from an explicitly passed generator or seed (never global RNG state).

- ``spec``: SpecAugment masks on the normalised features (``torch.Generator``);
- ``speed``: 3-way speed perturbation (``random.Random`` or a ``torch.Generator`` in the trainer);
- ``chain``: the waveform chain (rooms, noise, babble, EQ, level, telephone band, codecs; ``WaveAugmenter``) and
  VTLP on the filterbank, seeded per utterance; ``rooms``, ``noise``, ``channel``, ``vtlp``: its stages.
"""

from asr.augment.chain import Augmented, WaveAugmenter
from asr.augment.channel import CODECS, CodecConfig, EqConfig, GainConfig, TelephoneConfig, codec_round_trip
from asr.augment.noise import BabbleConfig, NoiseConfig, coloured_noise
from asr.augment.rooms import RirBank, RoomConfig, build_rir_bank, load_or_build_rir_bank, reverberate
from asr.augment.spec import SpecAugment, SpecAugmentConfig
from asr.augment.speed import SPEED_FACTORS, random_speed_perturb, speed_perturb
from asr.augment.vtlp import VtlpConfig, vtlp_features

__all__ = [
    "CODECS",
    "SPEED_FACTORS",
    "Augmented",
    "BabbleConfig",
    "CodecConfig",
    "EqConfig",
    "GainConfig",
    "NoiseConfig",
    "RirBank",
    "RoomConfig",
    "SpecAugment",
    "SpecAugmentConfig",
    "TelephoneConfig",
    "VtlpConfig",
    "WaveAugmenter",
    "build_rir_bank",
    "codec_round_trip",
    "coloured_noise",
    "load_or_build_rir_bank",
    "random_speed_perturb",
    "reverberate",
    "speed_perturb",
    "vtlp_features",
]
