"""The waveform augmentation chain, in the order a recording happens, each stage with its own probability.

    speaker (speed: asr.augment.speed; VTLP: on the features, asr.augment.vtlp) -> room (RIR) -> coloured
    noise -> babble -> microphone EQ -> level -> telephone band -> codec -> peak guard (|x| <= 1)

Randomness: one integer seed per utterance; every stage draws from its own ``numpy.random.Generator`` seeded
with ``(seed, stage id)``, so the result is a pure function of (samples, seed, config, other-utterance source),
and changing one stage's probability or ranges leaves every other stage's draws as they were. No global RNG is
touched. Every stage keeps the length and the timing of the input (CTC targets stay aligned).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from asr.augment.channel import (
    CodecConfig,
    EqConfig,
    GainConfig,
    TelephoneConfig,
    apply_codec,
    apply_eq,
    apply_gain,
    check_codecs_available,
    telephone_band,
)
from asr.augment.noise import BabbleConfig, NoiseConfig, OtherAudio, add_babble, add_noise
from asr.augment.rooms import RirBank, RoomConfig, reverberate
from asr.augment.vtlp import VtlpConfig, fbank_high_freq, vtlp_features

logger = logging.getLogger(__name__)

# Stage -> generator stream id (fixed numbers: adding a stage never changes another's draws).
STAGE_IDS = {"vtlp": 1, "room": 2, "noise": 3, "babble": 4, "eq": 5, "gain": 6, "telephone": 7, "codec": 8}
WAVE_STAGES = ("room", "noise", "babble", "eq", "gain", "telephone", "codec")  # in the order applied
PEAK_LIMIT = 32767 / 32768  # the final level never exceeds int16 full scale


@dataclass(frozen=True)
class Augmented:
    samples: torch.Tensor  # [N] float32 in [-1, 1]
    applied: tuple[str, ...]  # stages applied, in order ("codec:opus" names the codec)


class WaveAugmenter:
    """Applies the configured waveform stages to one utterance at a time (see the module docstring)."""

    def __init__(
        self,
        *,
        vtlp: VtlpConfig,
        room: RoomConfig,
        noise: NoiseConfig,
        babble: BabbleConfig,
        eq: EqConfig,
        gain: GainConfig,
        telephone: TelephoneConfig,
        codec: CodecConfig,
        sample_rate: int = 16000,
        rir_bank: RirBank | None = None,
    ) -> None:
        self.vtlp, self.room, self.noise, self.babble = vtlp, room, noise, babble
        self.eq, self.gain, self.telephone, self.codec = eq, gain, telephone, codec
        self.sample_rate = sample_rate
        if room.prob > 0 and (rir_bank is None or len(rir_bank) == 0):
            raise ValueError("augment.room.prob > 0 needs a RIR bank (asr.augment.load_or_build_rir_bank)")
        if rir_bank is not None and rir_bank.sample_rate != sample_rate:
            raise ValueError(f"RIR bank at {rir_bank.sample_rate} Hz for audio at {sample_rate} Hz")
        if codec.prob > 0:
            check_codecs_available(codec.codecs)
        self.rir_bank = rir_bank

    @classmethod
    def from_config(cls, augment, *, sample_rate: int, rir_bank: RirBank | None = None) -> WaveAugmenter:
        """From an object with the stage configs as attributes (asr.train.config.AugmentConfig)."""
        stages = {name: getattr(augment, name) for name in ("vtlp", *WAVE_STAGES)}
        return cls(**stages, sample_rate=sample_rate, rir_bank=rir_bank)

    @classmethod
    def only(cls, *, sample_rate: int = 16000, rir_bank: RirBank | None = None, **stages) -> WaveAugmenter:
        """The chain with the stage configs given (``noise=NoiseConfig(prob=1.0)``, ...), every other stage off."""
        off = {"vtlp": VtlpConfig(), "room": RoomConfig(), "noise": NoiseConfig(), "babble": BabbleConfig(),
               "eq": EqConfig(), "gain": GainConfig(), "telephone": TelephoneConfig(),
               "codec": CodecConfig()}  # fmt: skip
        unknown = sorted(set(stages) - set(off))
        if unknown:
            raise ValueError(f"unknown augmentation stages {unknown}; known: {sorted(off)}")
        return cls(**{**off, **stages}, sample_rate=sample_rate, rir_bank=rir_bank)

    @property
    def wave_enabled(self) -> bool:
        """Whether any waveform stage can apply (else __call__ returns its input)."""
        return any(getattr(self, name).prob > 0 for name in WAVE_STAGES)

    @property
    def enabled(self) -> bool:
        return self.wave_enabled or self.vtlp.prob > 0

    @staticmethod
    def generator(seed: int, stage: str) -> np.random.Generator:
        return np.random.default_rng([seed, STAGE_IDS[stage]])

    def __call__(self, samples: torch.Tensor, *, seed: int, other: OtherAudio | None = None) -> Augmented:
        """``samples [N]`` (float, in [-1, 1]) through the chain: ``[N]`` float32, aligned, within [-1, 1]."""
        if samples.ndim != 1:
            raise ValueError(f"expected one utterance's samples [N], got shape {tuple(samples.shape)}")
        x = samples.detach().cpu().numpy().astype(np.float64)
        applied: list[str] = []
        sr = self.sample_rate
        for stage in WAVE_STAGES:
            cfg = getattr(self, stage)
            rng = self.generator(seed, stage)
            if not rng.random() < cfg.prob or len(x) == 0:
                continue
            if stage == "room":
                x = reverberate(x, self.rir_bank.rir(int(rng.integers(0, len(self.rir_bank)))))
            elif stage == "noise":
                x = add_noise(x, cfg, rng)
            elif stage == "babble":
                x = add_babble(x, cfg, rng, other)
            elif stage == "eq":
                x = apply_eq(x, cfg, rng, sr)
            elif stage == "gain":
                x = apply_gain(x, cfg, rng)
            elif stage == "telephone":
                x = telephone_band(x, cfg, rng, sr)
            else:
                peak = float(np.max(np.abs(x)))
                if peak > 1.0:  # codecs take [-1, 1]: scale down rather than clip
                    x = x / peak
                x, name = apply_codec(x, cfg, rng, sr)
                stage = f"codec:{name}"
            applied.append(stage)
        if not applied:
            return Augmented(samples.to(torch.float32), ())
        if not np.all(np.isfinite(x)):
            raise ValueError(f"waveform augmentation {applied} (seed {seed}) produced non-finite samples")
        peak = float(np.max(np.abs(x))) if len(x) else 0.0
        if peak > PEAK_LIMIT:  # the peak guard: the level is lowered, never clipped
            x = x * (PEAK_LIMIT / peak)
        return Augmented(torch.from_numpy(x.astype(np.float32)), tuple(applied))

    def vtlp_alpha(self, seed: int) -> float | None:
        """The utterance's VTLP warp factor, or None when it is not warped."""
        rng = self.generator(seed, "vtlp")
        if not rng.random() < self.vtlp.prob:
            return None
        lo, hi = self.vtlp.alpha_range
        return float(rng.uniform(lo, hi)) if hi > lo else float(lo)

    def warp_features(self, feats: torch.Tensor, *, seed: int, fbank) -> tuple[torch.Tensor, float | None]:
        """Log-mel ``feats [T, n_mels]`` of an ``asr.features.FbankConfig`` front end, VTLP-warped when drawn:
        ``(feats, alpha or None)``."""
        alpha = self.vtlp_alpha(seed)
        if alpha is None:
            return feats, None
        warped = vtlp_features(
            feats,
            alpha=alpha,
            low_freq=fbank.low_freq,
            high_freq=fbank_high_freq(fbank.high_freq, fbank.sample_rate),
            sample_rate=fbank.sample_rate,
            boundary_hz=self.vtlp.boundary_hz,
        )
        return warped, alpha
