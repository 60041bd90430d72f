"""Real recorded English speech inside Debian game and education packages: what each package holds, where,
under which licence, and what its own metadata says was spoken.

Each reader takes the file-system root the packages are installed under (``/`` normally; a folder of fakes in
the same layout in tests) and returns :class:`SourceClip` records. Nothing is decoded or converted here
(:func:`read_clip_audio` reads one clip when asked). Anything a reader passes over that could be speech is
reported on the :class:`~asr.data.manifest.PrepareReport` with a reason (``no_speech`` for grunts and effects
named as such, ``not_english`` for other languages' voice packs, ``duplicate_audio`` for a second copy of a
recording); whole folders of sound effects and music are counted in the report's notes.

References, by how far they can be trusted:

- ``reference`` (kind ``metadata``): what the package itself says the clip is - klettres' ``sounds.xml``
  (letter and word names; its phonics sounds AW, CH, TH are not words and are left out), ktuberling's
  ``<lang>.soundtheme`` names and tuxpaint's stamp names through the reviewed tables below (``palmtree`` is
  "palm tree"), tuxpaint's spoken letters and digits, and the Harvard sentences of codec2-examples' recordings
  (the Harvard/IEEE 1969 list is public; the table gives each sentence with its list number).
- ``hint``: a developer's label that is not a transcript - a game's file name (``prepareforbattle``,
  ``Youllregretthat``) or warzone2100's ``audio/audio.cfg`` comment (``/*Scavengers Detected*/``). Labels like
  these often name the event rather than the words, so a hint becomes a reference only when an independent
  recognizer hears exactly it (:mod:`asr.data.realspeech_labels`).
- neither: Whisper tiny.en pseudo-labels (training only) or Whisper + pocketsphinx agreement.

Packages (licence from each package's ``/usr/share/doc/<package>/copyright``, checked when read):

| package | licence | English speech read | groups |
|---|---|---|---|
| klettres-data | GPL-2+ | ``klettres/{en,en_GB}/sounds.xml``: letters, words | ``klettres/en``, ``klettres/en_GB`` |
| ktuberling-data | GPL-2+ | ``ktuberling/sounds/en/*.ogg``: object names | ``ktuberling/en`` |
| tuxpaint-stamps-default | GPL-2 | ``*_desc.ogg`` stamp names, ``*_en_GB.ogg`` letters, digits | ``tuxpaint`` |
| nexuiz-data | GPL-2+ | ``data.pk3`` (zip): announcer, tutorial, team calls | ``nexuiz/<voice>`` |
| warzone2100-data | GPL-2+ | ``base.wz`` (zip): voice folders (radio, 11 kHz) | ``warzone2100/<voice>`` |
| hedgewars-data | GFDL-1.3 | ``Data/Sounds/voices/<pack>/*.ogg``, English packs | ``hedgewars/<pack>`` |
| megaglest-data | CC-BY-SA-3.0 | unit replies ``*_ack*``, ``*_select*`` | ``megaglest`` |
| codec2-examples | LGPL-2.1 | ``codec2/{raw,wav}`` speech (8 kHz) | ``codec2/sentences``, ``codec2/<call sign>`` |
| freedroidrpg-data | GPL-2+ | Tux's comments, droid voice samples | ``freedroidrpg`` |

Grouping is conservative: one group per package unless the package itself says the voices differ (klettres'
two languages, hedgewars' and nexuiz's named voice packs); a voice actor may still have recorded more than one
pack, which the packages do not say.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import soundfile as sf

from asr.data.manifest import PrepareReport

logger = logging.getLogger(__name__)

__all__ = [
    "CODEC2_HARVARD",
    "KTUBERLING_WORDS",
    "PACKAGES",
    "READERS",
    "TUXPAINT_WORDS",
    "Package",
    "SourceClip",
    "check_licence",
    "read_clip_audio",
    "read_sources",
]

ARCHIVE_SEP = "::"  # "<archive path>::<member>": a clip inside a zip (pk3, wz)


@dataclass(frozen=True)
class Package:
    """A Debian package holding speech, and the licence its copyright file gives for that speech."""

    name: str
    licence: str  # SPDX-like name as the Debian copyright file writes it
    licence_marker: str  # text that must be in the copyright file (checked by check_licence)


PACKAGES: dict[str, Package] = {
    p.name: p
    for p in (
        Package("klettres-data", "GPL-2+", "License: GPL-2+"),
        Package("ktuberling-data", "GPL-2+", "License: GPL-2+"),
        Package("tuxpaint-stamps-default", "GPL-2", "License: GPL-2"),
        Package("nexuiz-data", "GPL-2+", "either version 2"),
        Package("warzone2100-data", "GPL-2+", "License: GPL-2+"),
        Package("hedgewars-data", "GFDL-1.3", "License: GFDL-1.3"),
        Package("megaglest-data", "CC-BY-SA-3.0", "License: CC-BY-SA-3.0"),
        Package("codec2-examples", "LGPL-2.1", "License: LGPL-2.1"),
        Package("freedroidrpg-data", "GPL-2+", "License: GPL-2+"),
        # the legacy 20-recording set (asr.data.realspeech)
        Package("pocketsphinx-testdata", "BSD-2", "License: BSD-2"),
        Package("alsa-utils", "GPL-2", "License: GPL-2"),
    )
}


@dataclass(frozen=True)
class SourceClip:
    """One recording found in a package (not yet decoded)."""

    id: str  # manifest id: "<short package>-<path words>", [A-Za-z0-9._-] only
    package: str  # Debian package name (a key of PACKAGES)
    group: str  # speaker/voice unit for splitting ("klettres/en"); never split across train/dev/test
    origin: str  # a file path, or "<archive>::<member>" for a file inside a zip
    reference: str | None = None  # the package's own words for it (kind "metadata"); None: needs labelling
    reference_source: str = ""  # where the reference comes from ("sounds.xml", "Harvard list 1 #3" ...)
    hint: str | None = None  # a developer label that is not a transcript (file name, config comment)
    raw_rate: int | None = None  # headerless 16-bit little-endian mono PCM at this rate; None: a sound file

    def __post_init__(self) -> None:
        if not _ID_OK.match(self.id):
            raise ValueError(f"clip id {self.id!r} must be letters, digits, '.', '_' or '-'")
        if self.package not in PACKAGES:
            raise ValueError(f"clip {self.id!r}: unknown package {self.package!r}")


_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ID_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def _clip_id(*parts: str) -> str:
    return "-".join(_ID_BAD.sub("_", p).strip("_") for p in parts if p)


def check_licence(root: Path, package: str, report: PrepareReport) -> str:
    """The package's licence after checking its copyright file says so (a mismatch is flagged, not fatal)."""
    pkg = PACKAGES[package]
    path = root / "usr/share/doc" / package / "copyright"
    if not path.is_file():
        report.flag("licence_unchecked", package, f"{path} not found: licence {pkg.licence} taken from the table")
    elif pkg.licence_marker not in path.read_text(encoding="utf-8", errors="replace"):
        report.flag("licence_mismatch", package, f"{path} does not contain {pkg.licence_marker!r}: check it")
    return pkg.licence


def _missing(folder: Path, package: str) -> ValueError:
    return ValueError(
        f"{str(folder)!r} not found: install the Debian package with "
        f"'apt-get install --no-install-recommends {package}', or all of them with 'make realspeech-deps' "
        "(deps/debian-realspeech-packages.txt), or point to a copy of its files"
    )


def _words_of_name(name: str) -> str:
    """A file name as words: ``to_the_left-2`` -> ``to the left 2``; camel case split (``CantRepairThat``)."""
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return re.sub(r"[_\-.]+", " ", s).strip()


# ------------------------------------------------------------------------------------------------ klettres

# Phonics sounds in klettres' English syllable lists: a sound, not a word a transcript could spell.
KLETTRES_PHONICS = frozenset({"AW", "CH", "TH"})


def read_klettres(root: Path, report: PrepareReport) -> list[SourceClip]:
    """klettres-data: ``<lang>/sounds.xml`` lists ``<sound name="A" file="en/alpha/A.ogg"/>`` per language."""
    base = root / "usr/share/klettres"
    if not base.is_dir():
        raise _missing(base, "klettres-data")
    out = []
    for lang in ("en", "en_GB"):
        xml = base / lang / "sounds.xml"
        if not xml.is_file():
            report.note(f"klettres: {xml} not found; no {lang} clips")
            continue
        try:
            tree = ElementTree.parse(xml)
        except ElementTree.ParseError as e:
            raise ValueError(f"{xml}: not valid XML ({e})") from e
        for section in ("alphabet", "syllables"):
            for el in tree.iter(section):
                for sound in el.iter("sound"):
                    name, rel = sound.get("name"), sound.get("file")
                    if not name or not rel:
                        report.skip("bad_line", f"{xml}", f"<sound> without name/file: {sound.attrib}")
                        continue
                    report.read["klettres sounds.xml entries"] += 1
                    cid = _clip_id("klettres", lang, section, Path(rel).stem)
                    if name.upper() in KLETTRES_PHONICS:
                        report.skip("not_a_word", cid, f"{xml}: {name!r} is a phonics sound, not a word")
                        continue
                    audio = base / rel
                    if not audio.is_file():
                        report.skip("missing_audio", cid, f"{xml} names {rel}, not found under {base}")
                        continue
                    out.append(
                        SourceClip(
                            cid,
                            "klettres-data",
                            f"klettres/{lang}",
                            str(audio),
                            reference=name,
                            reference_source=f"{lang}/sounds.xml {section}",
                        )
                    )
    return out


# ---------------------------------------------------------------------------------------------- ktuberling

# ktuberling sound names that are not spelled as said (reviewed against the recordings with Whisper's reading):
# compounds written as one word, a misspelling, and the theme prefixes (egypt_, moon_, pizzeria_, tv_) dropped.
KTUBERLING_WORDS = {
    "palmtree": "palm tree",
    "fallingstar": "falling star",
    "broccolli": "broccoli",
    "sphynx": "sphinx",
    "ufo": None,  # said "U F O" or "UFO"? not decidable from the name: left to the recognizers
}
_KTUBERLING_THEMES = ("egypt_", "moon_", "pizzeria_", "tv_")


def read_ktuberling(root: Path, report: PrepareReport) -> list[SourceClip]:
    """ktuberling-data: ``sounds/en/<theme>_<object>.ogg``, the object named by the file (``en.soundtheme``)."""
    folder = root / "usr/share/ktuberling/sounds/en"
    if not folder.is_dir():
        raise _missing(folder, "ktuberling-data")
    theme = folder.parent / "en.soundtheme"
    named = set(re.findall(r'name="([^"]+)"', theme.read_text(encoding="utf-8"))) if theme.is_file() else set()
    out = []
    for ogg in sorted(folder.glob("*.ogg")):
        report.read["ktuberling files"] += 1
        stem = ogg.stem
        word = stem
        for prefix in _KTUBERLING_THEMES:
            if word.startswith(prefix):
                word = word[len(prefix) :]
        cid = _clip_id("ktuberling", "en", stem)
        if named and stem not in named:
            report.note(f"ktuberling: {ogg.name} is not in en.soundtheme; its file name is used")
        if word in KTUBERLING_WORDS and KTUBERLING_WORDS[word] is None:
            out.append(SourceClip(cid, "ktuberling-data", "ktuberling/en", str(ogg), hint=word))
            continue
        text = KTUBERLING_WORDS.get(word, word.replace("_", " "))
        out.append(
            SourceClip(
                cid,
                "ktuberling-data",
                "ktuberling/en",
                str(ogg),
                reference=text,
                reference_source="file name" + (" (mapping table)" if word in KTUBERLING_WORDS else ""),
            )
        )
    return out


# ------------------------------------------------------------------------------------------------ tuxpaint

# Stamp names (the stem of ``<stamp>_desc.ogg``) that are not spelled as said. Reviewed by reading each stamp's
# .txt description and Whisper's reading of the clip; None: the name does not tell the words (recognizers decide).
TUXPAINT_WORDS = {
    "mountaingoat": "mountain goat",
    "wildboar": "wild boar",
    "tucan": "toucan",
    "chimp": "chimp",  # the .txt says "A chimpanzee." but the 0.64 s clip says "chimp" (Whisper: "Chimp.")
    "xanthia": "xanthia",  # a moth genus; said as the name is spelled (Whisper: "Zantia.")
    "nandou": None,  # a rhea (French "nandou"): "nandu"? not a spelling a transcript can be sure of
}
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def read_tuxpaint(root: Path, report: PrepareReport) -> list[SourceClip]:
    """tuxpaint-stamps-default: spoken stamp names, English (en_GB) letters and digits, and digits."""
    base = root / "usr/share/tuxpaint/stamps"
    if not base.is_dir():
        raise _missing(base, "tuxpaint-stamps-default")
    out = []
    seen: dict[bytes, str] = {}
    for ogg in sorted(base.rglob("*.ogg")):
        rel = ogg.relative_to(base)
        name = ogg.stem
        if name.endswith("_desc"):
            stamp, source = name[: -len("_desc")], "stamp name"
            word = TUXPAINT_WORDS.get(stamp, stamp.replace("_", " ").replace("-", " "))
            if stamp in TUXPAINT_WORDS:
                source += " (mapping table)"
        elif name.endswith("_en_GB") and rel.parts[:3] == ("symbols", "alphabets", "english"):
            word, source = name.split("_")[0].upper(), "letter stamp name"
        elif name.endswith("_en_GB") and rel.parts[:2] == ("symbols", "math") and name[0].isdigit():
            word, source = _DIGITS[int(name[0])], "digit stamp name"
        elif rel.parts[:2] == ("symbols", "math") and re.fullmatch(r"[0-9]", name):
            word, source = _DIGITS[int(name)], "digit stamp name"
        else:
            continue  # sound effects and other languages' recordings
        report.read["tuxpaint English clips"] += 1
        cid = _clip_id("tuxpaint", *rel.with_suffix("").parts)
        digest = _digest(ogg.read_bytes())
        if digest in seen:  # the four alphabet styles share one recording per letter
            report.skip("duplicate_audio", cid, f"{ogg}: same file as {seen[digest]}")
            continue
        seen[digest] = cid
        if word is None:
            out.append(SourceClip(cid, "tuxpaint-stamps-default", "tuxpaint", str(ogg), hint=name[: -len("_desc")]))
        else:
            out.append(
                SourceClip(
                    cid, "tuxpaint-stamps-default", "tuxpaint", str(ogg), reference=word, reference_source=source
                )
            )
    return out


def _digest(data: bytes) -> bytes:
    import hashlib

    return hashlib.sha1(data).digest()


# ------------------------------------------------------------------------------------------ zip archives


@functools.lru_cache(maxsize=4)
def _zip(path: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def _zip_members(archive: Path, package: str) -> list[zipfile.ZipInfo]:
    if not archive.is_file():
        raise _missing(archive, package)
    try:
        return [i for i in _zip(str(archive)).infolist() if not i.is_dir()]
    except zipfile.BadZipFile as e:
        raise ValueError(f"{archive}: not a zip archive ({e})") from e


# Nexuiz player sounds that are grunts, not words.
_GRUNT = re.compile(r"^(death|pain|jump|gasp|drown|fall|falling|hooah)\d*$")


def read_nexuiz(root: Path, report: PrepareReport) -> list[SourceClip]:
    """nexuiz-data: ``data.pk3`` announcer, tutorial and team-call voices (file names as hints)."""
    archive = root / "usr/share/games/nexuiz/data/data.pk3"
    out = []
    other = Counter()
    for info in _zip_members(archive, "nexuiz-data"):
        name = info.filename
        if not name.startswith("sound/") or not name.endswith((".ogg", ".wav")):
            continue
        parts = name.split("/")
        stem = Path(name).stem
        if parts[1] == "announcer" and len(parts) == 4:
            group = f"nexuiz/announcer-{parts[2]}"
        elif parts[1] == "tutorial" and len(parts) == 3 and stem[0].isdigit():
            group = "nexuiz/tutorial"
        elif parts[1] == "player" and "coms" in parts[3:-1]:
            group = f"nexuiz/{parts[2]}"
        elif parts[1] == "player" and len(parts) == 4 and parts[2] == "torus":
            group = "nexuiz/torus"
        elif parts[1] == "player" and len(parts) == 5 and parts[3] == "player":
            report.read["nexuiz player grunts"] += 1
            report.skip(
                "no_speech",
                _clip_id("nexuiz", *parts[1:-1], stem),
                f"{archive}{ARCHIVE_SEP}{name}: a pain/death/jump sound",
            )
            continue
        else:
            other[parts[1]] += 1
            continue
        cid = _clip_id("nexuiz", *parts[1:-1], stem)
        if _GRUNT.match(stem):
            report.skip("no_speech", cid, f"{archive}{ARCHIVE_SEP}{name}: a grunt by its name")
            continue
        report.read["nexuiz voice clips"] += 1
        hint = re.sub(r"^\d+-", "", stem)  # "5-to_the_left_to_the_left" -> words; "needhelp1" keeps its digit
        hint = re.sub(r"(?<=[a-z])\d$", "", hint)
        out.append(SourceClip(cid, "nexuiz-data", group, f"{archive}{ARCHIVE_SEP}{name}", hint=_words_of_name(hint)))
    if other:
        report.note(f"nexuiz: sound effects not read (folders of sound/): {dict(sorted(other.items()))}")
    return out


# Folders of warzone2100's base.wz that hold voices (the rest of audio/ is effects).
_WZ_VOICE = (
    "audio/memressp/",
    "audio/countdown/",
    "audio/extra/",
    "audio/tutorial/",
    "audio/nexus/",
    "audio/taunts/",
    "audio/vtoltalk/",
    "audio/trnsppil/",
    "audio/coltive/",
    "audio/proxmessages/",
)
# Speaker groups by folder. The female narrator (median F0 200-250 Hz in every one of her folders) reads the
# message responses, countdowns, tutorial, proximity messages and sequence narrations; the other folders are other
# characters' voices (median F0: collective 68 Hz, NEXUS 107, transport pilot 141, VTOL pilots 160, taunts 1 and 3
# male, taunt 2 female 267 Hz).
_WZ_GROUPS = (
    ("audio/coltive/", "warzone2100/collective"),
    ("audio/nexus/", "warzone2100/nexus"),
    ("audio/taunts/taunt1/", "warzone2100/taunt1"),
    ("audio/taunts/taunt2/", "warzone2100/taunt2"),
    ("audio/taunts/taunt3/", "warzone2100/taunt3"),
    ("audio/trnsppil/", "warzone2100/transport"),
    ("audio/vtoltalk/", "warzone2100/vtol"),
)
_WZ_CFG_LINE = re.compile(r'^\s*audio\s+"([^"]+)"[^/]*/\*\s*(.*?)\s*\*/')
_WZ_NOT_SPEECH = re.compile(r"^laugh\d*$|^haha")


def read_warzone2100(root: Path, report: PrepareReport) -> list[SourceClip]:
    """warzone2100-data: ``base.wz`` voice folders; ``audio/audio.cfg`` comments as hints."""
    archive = root / "usr/share/games/warzone2100/base.wz"
    members = _zip_members(archive, "warzone2100-data")
    hints: dict[str, str] = {}
    try:
        cfg = _zip(str(archive)).read("audio/audio.cfg").decode("latin-1")
    except KeyError:
        report.note(f"warzone2100: {archive} has no audio/audio.cfg; no hints")
        cfg = ""
    for line in cfg.splitlines():
        m = _WZ_CFG_LINE.match(line)
        if m and re.search(r"[A-Za-z]", m.group(2)):
            hints.setdefault(m.group(1), m.group(2))
    out = []
    seen: dict[int, str] = {}
    other = Counter()
    for info in members:
        name = info.filename
        if not name.endswith(".ogg"):
            continue
        voice = name.startswith(_WZ_VOICE) or (name.startswith("sequenceaudio/") and name.count("/") == 1)
        if not voice:
            other[name.split("/")[1] if name.startswith("audio/") else name.split("/")[0]] += 1
            continue
        base = Path(name).name
        cid = _clip_id("warzone2100", *Path(name).with_suffix("").parts[1 if name.startswith("audio/") else 0 :])
        report.read["warzone2100 voice clips"] += 1
        if _WZ_NOT_SPEECH.match(Path(name).stem):
            report.skip("no_speech", cid, f"{archive}{ARCHIVE_SEP}{name}: laughter by its name")
            continue
        if info.CRC in seen and _zip(str(archive)).read(name) == _zip(str(archive)).read(seen[info.CRC]):
            report.skip("duplicate_audio", cid, f"{archive}{ARCHIVE_SEP}{name}: same bytes as {seen[info.CRC]}")
            continue
        seen.setdefault(info.CRC, name)
        out.append(
            SourceClip(cid, "warzone2100-data", _wz_group(name), f"{archive}{ARCHIVE_SEP}{name}", hint=hints.get(base))
        )
    report.note(f"warzone2100: {len(hints)} audio.cfg comments; effects not read: {dict(sorted(other.items()))}")
    return out


def _wz_group(member: str) -> str:
    return next((g for prefix, g in _WZ_GROUPS if member.startswith(prefix)), "warzone2100/narrator")


# ------------------------------------------------------------------------------------------------ hedgewars

_HW_NOT_ENGLISH = re.compile(r"_(es|pl|ru|uk|de|fr|it|pt|cs)$")  # Default_es, Russian_pl: other languages
_HW_GRUNT = re.compile(r"^(Ooff|Ow|Jump|Laugh|Poison(Cough|Moan)|Hmm|Firepunch)\d*$")


def read_hedgewars(root: Path, report: PrepareReport) -> list[SourceClip]:
    """hedgewars-data: ``Data/Sounds/voices/<pack>/<Event>.ogg``; event names as hints, grunts left out."""
    base = root / "usr/share/games/hedgewars/Data/Sounds/voices"
    if not base.is_dir():
        raise _missing(base, "hedgewars-data")
    out = []
    for pack in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted(pack.glob("*.ogg"))
        if _HW_NOT_ENGLISH.search(pack.name):
            for f in files:
                report.skip("not_english", _clip_id("hedgewars", pack.name, f.stem), f"{f}: voice pack {pack.name}")
            continue
        for f in files:
            report.read["hedgewars clips"] += 1
            cid = _clip_id("hedgewars", pack.name, f.stem)
            if _HW_GRUNT.match(f.stem):
                report.skip("no_speech", cid, f"{f}: a grunt/laugh/cough by its name")
                continue
            out.append(
                SourceClip(
                    cid,
                    "hedgewars-data",
                    f"hedgewars/{pack.name}",
                    str(f),
                    hint=_words_of_name(f.stem).replace("-", " "),
                )
            )
    return out


# ------------------------------------------------------------------------------------------------ megaglest

_MG_REPLY = re.compile(r"_(ack|select|sel)\d*$")  # unit replies ("Yes, my lord"); attack/die/hit are effects


def read_megaglest(root: Path, report: PrepareReport) -> list[SourceClip]:
    """megaglest-data: unit acknowledgement/selection replies (``*_ack*``, ``*_select*``) of ``techs/megapack``."""
    base = root / "usr/share/games/megaglest/techs/megapack"
    if not base.is_dir():
        raise _missing(base, "megaglest-data")
    out = []
    other = 0
    seen: dict[bytes, str] = {}
    for f in sorted([*base.rglob("*.wav"), *base.rglob("*.ogg")]):
        rel = f.relative_to(base)
        if "sounds" not in rel.parts:
            continue
        if not _MG_REPLY.search(f.stem):
            other += 1
            continue
        report.read["megaglest unit replies"] += 1
        cid = _clip_id("megaglest", *[p for p in rel.with_suffix("").parts if p not in ("factions", "units", "sounds")])
        digest = _digest(f.read_bytes())
        if digest in seen:
            report.skip("duplicate_audio", cid, f"{f}: same file as {seen[digest]}")
            continue
        seen[digest] = cid
        out.append(SourceClip(cid, "megaglest-data", "megaglest", str(f)))
    report.note(f"megaglest: {other} attack/die/hit/effect sounds not read (not speech by their names)")
    return out


# --------------------------------------------------------------------------------------------------- codec2

# Harvard sentences (IEEE Recommended Practice for Speech Quality Measurements, 1969; list number, sentence
# number) in codec2-examples' recordings, in the order spoken. Identified by listening through Whisper tiny.en
# (which mishears "chicken leg is a rare dish" as "chicken is a red dish") and checked against the list.
CODEC2_HARVARD: dict[str, tuple[tuple[str, str], ...]] = {
    "raw/hts.raw": (
        ("9.1", "The Navy attacked the big task force."),
        ("9.4", "The hat brim was wide and too droopy."),
        ("1.4", "These days a chicken leg is a rare dish."),
        ("1.6", "The juice of lemons makes fine punch."),
        ("6.6", "The wagon moved on well oiled wheels."),
        ("6.7", "March the soldiers past the next hill."),
        ("3.7", "Her purse was full of useless trash."),
        ("2.4", "Kick the ball straight and follow through."),
    ),
    "raw/speech_orig_16k.wav": (
        ("1.1", "The birch canoe slid on the smooth planks."),
        ("1.2", "Glue the sheet to the dark blue background."),
        ("1.3", "It's easy to tell the depth of a well."),
        ("1.9", "Four hours of steady work faced us."),
    ),
    "wav/mmt1.wav": (("1.3", "It's easy to tell the depth of a well."),),
}
# Recordings that are parts, copies or codec outputs of others kept here (same speech twice), and files that
# are modem signals or test tones, not speech. Everything else under raw/ and wav/ is read.
CODEC2_SKIP = {
    "raw/hts1.raw": ("duplicate_audio", "the first 6 s of raw/hts.raw"),
    "raw/hts2.raw": ("duplicate_audio", "seconds 6-12 of raw/hts.raw"),
    "raw/hts1a.raw": ("duplicate_audio", "the first 3 s of raw/hts.raw"),
    "raw/hts2a.raw": ("duplicate_audio", "seconds 6-9 of raw/hts.raw"),
    "wav/hts1a.wav": ("duplicate_audio", "raw/hts1a.raw as WAV"),
    "wav/hts2a.wav": ("duplicate_audio", "raw/hts2a.raw as WAV"),
    "raw/ve9qrp_10s.raw": ("duplicate_audio", "the first 10 s of raw/ve9qrp.raw"),
    "wav/all.wav": ("duplicate_audio", "other recordings here, concatenated"),
    "raw/f2400.raw": ("duplicate_audio", "raw/forig.raw through codec2 at 2400 bit/s"),
    "raw/m2400.raw": ("duplicate_audio", "raw/morig.raw through codec2 at 2400 bit/s"),
    "wav/f2400.wav": ("duplicate_audio", "raw/forig.raw through codec2 at 2400 bit/s"),
    "wav/m2400.wav": ("duplicate_audio", "raw/morig.raw through codec2 at 2400 bit/s"),
    "wav/big_dog.wav": ("duplicate_audio", "raw/big_dog.raw as WAV"),
    "wav/cross.wav": ("duplicate_audio", "raw/cross.raw as WAV"),
    "wav/forig.wav": ("duplicate_audio", "raw/forig.raw as WAV"),
    "wav/morig.wav": ("duplicate_audio", "raw/morig.raw as WAV"),
    "raw/mmt1.raw": ("duplicate_audio", "wav/mmt1.wav as raw PCM"),
    "wav/ve9qrp.wav": ("duplicate_audio", "raw/ve9qrp.raw as WAV"),
    "wav/vk5qi.wav": ("duplicate_audio", "raw/vk5qi.raw as WAV"),
    "raw/sine1k_2Hz_spread.raw": ("no_speech", "a 1 kHz test tone"),
    "raw/sine1k_2ms_delay_2Hz_spread.raw": ("no_speech", "a 1 kHz test tone"),
    "raw/test_datac1_006.raw": ("no_speech", "a data-modem signal"),
    "raw/testframes_700d.raw": ("no_speech", "700D modem test frames"),
    "raw/700d_end_over.raw": ("no_speech", "a 700D modem signal"),
    "wav/david4.wav": ("no_speech", "FreeDV modem audio (Whisper: repetition loop, no_speech_prob 0.94)"),
    "wav/vk2tpm_004.wav": ("no_speech", "FreeDV modem audio (Whisper: repetition loop, no_speech_prob 0.95)"),
}
CODEC2_RAW_RATE = 8000  # codec2's .raw files: 8 kHz 16-bit signed little-endian mono
# Radio amateurs' calls, each operator a speaker group of their own (named by the call sign they give); every
# other codec2 recording (read test sentences, Harvard sentences) is in one group, "codec2/sentences", as the
# package does not say who read them.
CODEC2_OPERATORS = {
    "raw/ve9qrp.raw": "codec2/ve9qrp",
    "raw/vk5qi.raw": "codec2/vk5qi",
    "raw/cq_ref.raw": "codec2/ka9q",
    "raw/g3plx.raw": "codec2/g3plx",
    "raw/kristoff.raw": "codec2/kristoff",
}


def read_codec2(root: Path, report: PrepareReport) -> list[SourceClip]:
    """codec2-examples: speech recordings under ``/usr/share/codec2/{raw,wav}`` (8 kHz; two WAVs at 16 kHz)."""
    base = root / "usr/share/codec2"
    if not base.is_dir():
        raise _missing(base, "codec2-examples")
    out = []
    for f in sorted([*base.glob("raw/*.raw"), *base.glob("raw/*.wav"), *base.glob("wav/*.wav")]):
        rel = f.relative_to(base).as_posix()
        report.read["codec2 files"] += 1
        cid = _clip_id("codec2", f.stem if rel.startswith("raw/") else f"{f.stem}-wav")
        if rel in CODEC2_SKIP:
            reason, why = CODEC2_SKIP[rel]
            report.skip(reason, cid, f"{f}: {why}")
            continue
        rate = CODEC2_RAW_RATE if f.suffix == ".raw" else None
        group = CODEC2_OPERATORS.get(rel, "codec2/sentences")
        if rel in CODEC2_HARVARD:
            sentences = CODEC2_HARVARD[rel]
            text = " ".join(s for _, s in sentences)
            where = "Harvard sentences " + ", ".join(n for n, _ in sentences)
            out.append(
                SourceClip(cid, "codec2-examples", group, str(f), reference=text, reference_source=where, raw_rate=rate)
            )
        else:
            out.append(SourceClip(cid, "codec2-examples", group, str(f), raw_rate=rate))
    for rel in sorted(set(CODEC2_HARVARD) - {p.relative_to(base).as_posix() for p in base.glob("*/*")}):
        report.skip("missing_audio", _clip_id("codec2", Path(rel).stem), f"{base / rel} not found")
    return out


# --------------------------------------------------------------------------------------------- freedroidrpg


def read_freedroidrpg(root: Path, report: PrepareReport) -> list[SourceClip]:
    """freedroidrpg-data: Tux's in-game comments (file names as hints) and the droids' voice samples."""
    base = root / "usr/share/freedroidrpg/data/sound/effects"
    if not base.is_dir():
        raise _missing(base, "freedroidrpg-data")
    out = []
    for f in sorted((base / "tux_ingame_comments").glob("*.ogg")):
        report.read["freedroidrpg Tux comments"] += 1
        hint = re.sub(r"(_Sound)?_\d+$", "", f.stem)
        out.append(
            SourceClip(
                _clip_id("freedroidrpg", "tux", f.stem),
                "freedroidrpg-data",
                "freedroidrpg",
                str(f),
                hint=_words_of_name(hint),
            )
        )
    for f in sorted((base / "bot_sounds/voice_samples").glob("*.ogg"), key=lambda p: (len(p.stem), p.stem)):
        report.read["freedroidrpg droid voice samples"] += 1
        out.append(SourceClip(_clip_id("freedroidrpg", "droid", f.stem), "freedroidrpg-data", "freedroidrpg", str(f)))
    return out


# --------------------------------------------------------------------------------------------------- all

READERS: dict[str, Callable[[Path, PrepareReport], list[SourceClip]]] = {
    "klettres-data": read_klettres,
    "ktuberling-data": read_ktuberling,
    "tuxpaint-stamps-default": read_tuxpaint,
    "nexuiz-data": read_nexuiz,
    "warzone2100-data": read_warzone2100,
    "hedgewars-data": read_hedgewars,
    "megaglest-data": read_megaglest,
    "codec2-examples": read_codec2,
    "freedroidrpg-data": read_freedroidrpg,
}


def read_sources(root: Path, report: PrepareReport, *, packages: tuple[str, ...] | None = None) -> list[SourceClip]:
    """Every package's clips (``packages``: a subset of READERS' keys; default all). A missing package raises."""
    chosen = tuple(READERS) if packages is None else packages
    unknown = sorted(set(chosen) - set(READERS))
    if unknown:
        raise ValueError(f"unknown real-speech packages {unknown}; known: {sorted(READERS)}")
    clips: list[SourceClip] = []
    for name in chosen:
        found = READERS[name](Path(root), report)
        check_licence(Path(root), name, report)
        report.note(f"{name}: {len(found)} clips to read")
        clips += found
    ids = Counter(c.id for c in clips)
    dups = sorted(i for i, n in ids.items() if n > 1)
    if dups:
        raise ValueError(f"real-speech clip ids collide: {dups[:10]} (fix the readers' id scheme)")
    return clips


def read_clip_audio(clip: SourceClip) -> tuple[np.ndarray, int]:
    """The clip's samples as float32 ``[N]`` mono (channels averaged) and their rate."""
    if ARCHIVE_SEP in clip.origin:
        archive, member = clip.origin.split(ARCHIVE_SEP, 1)
        try:
            data = _zip(archive).read(member)
        except KeyError as e:
            raise ValueError(f"{archive} has no member {member!r}") from e
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    elif clip.raw_rate is not None:
        pcm = np.fromfile(clip.origin, dtype="<i2")
        x, sr = (pcm.astype(np.float32) / 32768.0)[:, None], clip.raw_rate
    else:
        x, sr = sf.read(clip.origin, dtype="float32", always_2d=True)
    if x.shape[0] == 0:
        raise ValueError(f"{clip.origin}: no samples")
    return x.mean(axis=1).astype(np.float32), int(sr)
