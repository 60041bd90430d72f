"""The Debian speech packages of asr.data.realspeech_sources in their on-disk layout, tiny, with real audio
(OGG/Vorbis, WAV, headerless PCM, zips), under a fake file-system root; and stand-in recognizers."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

COPYRIGHT = {
    "klettres-data": "Files: *\nLicense: GPL-2+\n",
    "ktuberling-data": "Files: *\nLicense: GPL-2+\n",
    "tuxpaint-stamps-default": "Files: *\nLicense: GPL-2\n",
    "nexuiz-data": "either version 2 of the License\n",
    "warzone2100-data": "Files: *\nLicense: GPL-2+\n",
    "hedgewars-data": "Files: share/hedgewars/Data/Sounds/*\nLicense: GFDL-1.3\n",
    "megaglest-data": "Files: *\nLicense: CC-BY-SA-3.0\n",
    "codec2-examples": "Files: *\nLicense: LGPL-2.1\n",
    "freedroidrpg-data": "Files: *\nLicense: GPL-2+\n",
}


def tone(seconds: float, sr: int, *, seed: int = 0) -> np.ndarray:
    """A decodable, distinct signal: a tone whose pitch depends on ``seed``, plus a little noise."""
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * (200 + 37 * seed) * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def ogg_bytes(seconds: float = 0.4, sr: int = 44100, *, seed: int = 0, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    x = tone(seconds, sr, seed=seed)
    sf.write(buf, np.stack([x] * channels, axis=1) if channels > 1 else x, sr, format="OGG", subtype="VORBIS")
    return buf.getvalue()


def wav_bytes(seconds: float = 0.4, sr: int = 22050, *, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, sr, seed=seed), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _put(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_packages(root: Path) -> Path:
    """Every package under ``root`` (a fake ``/``); returns ``root``. What each reader must find is in the tests."""
    for package, text in COPYRIGHT.items():
        _put(root / "usr/share/doc" / package / "copyright", text.encode())
    seed = iter(range(1, 10_000))

    # klettres: en with a letter, a word and a phonics sound; en_GB with one letter; one listed file missing
    kl = root / "usr/share/klettres"
    for rel in ("en/alpha/A.ogg", "en/syllab/dog.ogg", "en/syllab/th.ogg", "en_GB/alpha/b.ogg"):
        _put(kl / rel, ogg_bytes(seed=next(seed)))
    (kl / "en/sounds.xml").write_text(
        '<klettres><language code="en"><alphabet><sound name="A" file="en/alpha/A.ogg" /></alphabet>'
        '<syllables><sound name="DOG" file="en/syllab/dog.ogg" /><sound name="TH" file="en/syllab/th.ogg" />'
        '<sound name="CAT" file="en/syllab/cat.ogg" /></syllables></language></klettres>'
    )
    (kl / "en_GB/sounds.xml").write_text(
        '<klettres><language code="en_GB"><alphabet><sound name="B" file="en_GB/alpha/b.ogg" />'
        "</alphabet></language></klettres>"
    )
    _put(kl / "fr/alpha/a.ogg", ogg_bytes(seed=next(seed)))  # another language: not read

    # ktuberling: a plain word, a themed compound needing the table, an undecidable one, other languages
    kt = root / "usr/share/ktuberling/sounds"
    for name in ("hat", "egypt_palmtree", "moon_ufo", "pizzeria_broccolli"):
        _put(kt / f"en/{name}.ogg", ogg_bytes(seed=next(seed)))
    (kt / "en.soundtheme").write_text('<language code="en"><sound name="hat" file="en/hat.ogg" /></language>')
    _put(kt / "fr/hat.ogg", ogg_bytes(seed=next(seed)))

    # tuxpaint: a stamp description, a mapped one, a letter in two styles (same bytes), digits, other languages
    tp = root / "usr/share/tuxpaint/stamps"
    _put(tp / "animals/birds/duck_desc.ogg", ogg_bytes(seed=next(seed)))
    _put(tp / "animals/birds/tucan_desc.ogg", ogg_bytes(seed=next(seed)))
    _put(tp / "animals/birds/duck_desc_fr.ogg", ogg_bytes(seed=next(seed)))
    _put(tp / "animals/birds/duck.ogg", ogg_bytes(seed=next(seed)))  # the quack effect
    letter = ogg_bytes(seed=next(seed))
    _put(tp / "symbols/alphabets/english/filled/uppercase/A_filled_en_GB.ogg", letter)
    _put(tp / "symbols/alphabets/english/outlined/uppercase/A_outlined_en_GB.ogg", letter)
    _put(tp / "symbols/math/7_en_GB.ogg", ogg_bytes(seed=next(seed)))
    _put(tp / "symbols/math/3.ogg", ogg_bytes(sr=11025, seed=next(seed)))
    _put(tp / "symbols/math/3_fr.ogg", ogg_bytes(seed=next(seed)))

    # nexuiz: data.pk3 with announcer, tutorial, team calls, grunts and effects
    with zipfile.ZipFile(_mkdir(root / "usr/share/games/nexuiz/data") / "data.pk3", "w") as z:
        z.writestr("sound/announcer/robotic/prepareforbattle.ogg", ogg_bytes(seed=next(seed)))
        z.writestr("sound/tutorial/5-to_the_left.ogg", ogg_bytes(seed=next(seed)))
        z.writestr("sound/tutorial/misc-door.wav", wav_bytes(seed=next(seed)))
        z.writestr("sound/player/marine/coms/needhelp1.ogg", ogg_bytes(seed=next(seed)))
        z.writestr("sound/player/marine/player/death1.ogg", ogg_bytes(seed=next(seed)))
        z.writestr("sound/player/torus/letsgo.ogg", ogg_bytes(seed=next(seed)))
        z.writestr("sound/player/torus/pain25.ogg", ogg_bytes(seed=next(seed)))
        z.writestr("sound/weapons/rocket.ogg", ogg_bytes(seed=next(seed)))
        z.writestr("maps/tutorial.map", b"{}")

    # warzone2100: base.wz with audio.cfg comments, a voice folder, a copy, laughter, effects, a sequence
    same = ogg_bytes(sr=11025, seed=next(seed))
    with zipfile.ZipFile(_mkdir(root / "usr/share/games/warzone2100") / "base.wz", "w") as z:
        z.writestr(
            "audio/audio.cfg",
            'audio_module\n{\n\taudio\t"pcv373.ogg"\toneshot\t100 1800  /*Scavengers Detected*/\n'
            '\taudio\t"beep1.ogg"\toneshot 30 1800\t/*Close Window*/\n\taudio\t"pcv480.ogg"\toneshot 100 1800\n}\n',
        )
        z.writestr("audio/memressp/detect/pcv373.ogg", ogg_bytes(sr=11025, seed=next(seed)))
        z.writestr("audio/memressp/console/pcv480.ogg", same)
        z.writestr("audio/memressp/missmesg/pcv480.ogg", same)
        z.writestr("audio/nexus/laugh1.ogg", ogg_bytes(sr=11025, seed=next(seed)))
        z.writestr("audio/sfx/interfce/beep1.ogg", ogg_bytes(sr=11025, seed=next(seed)))
        z.writestr("sequenceaudio/res_droid.ogg", ogg_bytes(sr=22050, seed=next(seed)))
        z.writestr("audio/vtoltalk/v-onway1.ogg", ogg_bytes(sr=11025, seed=next(seed)))
        z.writestr("sequenceaudio/cam1/c001.txt", b"subtitles")

    # hedgewars: an English pack (a line and a grunt), a non-English pack
    hw = root / "usr/share/games/hedgewars/Data/Sounds/voices"
    for name in ("Youllregretthat", "Ooff1", "Uh-oh"):
        _put(hw / f"Pirate/{name}.ogg", ogg_bytes(seed=next(seed)))
    _put(hw / "Default_es/Hello.ogg", ogg_bytes(seed=next(seed)))

    # megaglest: a reply, a second copy of it, an attack grunt, a non-sound file
    mg = root / "usr/share/games/megaglest/techs/megapack"
    reply = wav_bytes(seed=next(seed))
    _put(mg / "factions/norsemen/units/swordman/sounds/swordman_ack1.wav", reply)
    _put(mg / "factions/romans/units/swordman/sounds/swordman_ack1.wav", reply)
    _put(mg / "factions/norsemen/units/swordman/sounds/swordman_attack1.wav", wav_bytes(seed=next(seed)))
    _put(mg / "factions/norsemen/units/swordman/models/swordman.g3d", b"model")
    _put(mg / "commondata/sounds/archer_select2.wav", wav_bytes(seed=next(seed)))

    # codec2: the Harvard recording (raw 8 kHz), one of its parts (skipped), a modem tone, a plain recording
    c2 = root / "usr/share/codec2"
    hts = (tone(1.0, 8000, seed=next(seed)) * 32767).astype("<i2")
    _put(c2 / "raw/hts.raw", hts.tobytes())
    _put(c2 / "raw/hts1a.raw", hts[:4000].tobytes())
    _put(c2 / "raw/sine1k_2Hz_spread.raw", (tone(0.5, 8000, seed=next(seed)) * 32767).astype("<i2").tobytes())
    _put(c2 / "raw/kristoff.raw", (tone(0.5, 8000, seed=next(seed)) * 32767).astype("<i2").tobytes())
    _put(c2 / "wav/mmt1.wav", wav_bytes(sr=8000, seed=next(seed)))

    # freedroidrpg: a Tux comment and a droid sample
    fd = root / "usr/share/freedroidrpg/data/sound/effects"
    _put(fd / "tux_ingame_comments/ThisItemRequiresBothHands.ogg", ogg_bytes(seed=next(seed)))
    _put(fd / "tux_ingame_comments/ICantCarryAnyMore_Sound_1.ogg", ogg_bytes(seed=next(seed)))
    _put(fd / "bot_sounds/voice_samples/12.ogg", ogg_bytes(seed=next(seed)))
    _put(fd / "bot_sounds/voice_samples/3.ogg", ogg_bytes(seed=next(seed)))
    return root


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


class FakeRecognizer:
    """A stand-in recognizer answering from a table ``{sample hash: reading}`` (see :func:`answers_by_hash`);
    counts model loads and calls."""

    def __init__(self, name: str, by_hash: dict[str, dict], default: dict) -> None:
        self.name, self.by_hash, self.default = name, by_hash, default
        self.loads = self.calls = 0

    def entry(self) -> tuple:
        """The (setup, factory) pair read_labels takes."""
        return (lambda: {"fake": self.name}), self._factory

    def _factory(self):
        self.loads += 1

        def read(x: np.ndarray) -> dict:
            self.calls += 1
            pcm = np.rint(x * 32768.0).astype(np.int16)
            return dict(self.by_hash.get(hashlib.sha1(pcm.tobytes()).hexdigest(), self.default))

        return read


def answers_by_hash(clips, audio_dir: Path, answers: dict[str, dict]) -> dict[str, dict]:
    """Convert ``clips`` (as the build will) and key ``answers`` ({clip id: reading}) by their sample hash."""
    from asr.data.realspeech_labels import convert_clip, load_converted

    out = {}
    for clip in clips:
        if clip.id in answers:
            out[load_converted(convert_clip(clip, audio_dir))[1]] = answers[clip.id]
    return out


def whisper_reading(text: str, normalized: str, *, avg_logprob=-0.2, no_speech_prob=0.05, ratio=0.8) -> dict:
    return {
        "text": text,
        "normalized": normalized,
        "avg_logprob": avg_logprob,
        "no_speech_prob": no_speech_prob,
        "compression_ratio": ratio,
        "cpu_seconds": 0.1,
    }


def sphinx_reading(normalized: str) -> dict:
    return {"text": normalized.lower(), "normalized": normalized, "cpu_seconds": 0.1}
