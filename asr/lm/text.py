"""Training text for n-gram LMs: sources, normalisation, and the sentences that must never be in it.

Built-in sources (Debian packages, see shared DATA.md; ``asr lm build --source NAME``):

==============  =============================================================================================
``synth-train`` the synthetic corpus's training sentence pools (:func:`asr.synth.text.load_sentences`, "train",
                of the default text settings and of every synth preset's: commands, numbers, ...)
``fortunes``    every sentence of the fortune files (``fortunes``, ``fortunes-min``)
``wordnet``     WordNet's glosses: definitions and example sentences (``wordnet-base``)
``bible``       the King James Bible (``bible-kjv`` + ``bible-kjv-text``, read with the ``bible`` program)
``jargon``      the Jargon File (``jargon-text``)
``gcide``       the definitions and quotations of the Collaborative International Dictionary (``dict-gcide``)
==============  =============================================================================================

plus any text files (one or more sentences per line). Every line becomes sentences (split after ``. ! ?``),
numbers become words (``10`` -> ``TEN``, with num2words) and :func:`asr.text.normalize.normalize_text` makes them
the transcripts' form.

Never in the text (:class:`Reserved`, checked sentence by sentence, counted in the build report):

* a sentence of the synthetic corpus's dev or test split, for the default text settings and every synth preset's
  (:data:`SYNTH_TEXT_CONFIGS`): any sentence whose split hash (:func:`asr.synth.text.split_of` of its
  synth-normalised form) is dev or test, and any sentence containing one of the dev/test pools' sentences
  (however the source splits its text);
* a reference of the real-speech sets: the bundled ``asr/assets/audio/real.jsonl`` and ``synth_test.jsonl``, the
  committed list ``asr/synth/reference_sentences.txt``, what :func:`asr.synth.text.reference_sentences_found`
  finds on this machine (pocketsphinx-testdata's transcripts, ALSA's channel names,
  ``data/realspeech/realspeech-{dev,test}.jsonl``), and every manifest passed with ``--exclude``. A sentence
  containing a reference of 3 or more words is dropped; shorter references (single words, "FRONT LEFT") are
  dropped only as whole sentences, since every sentence with the word "LEFT" cannot go.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asr.synth.text import (
    SPLITS,
    TextConfig,
    load_sentences,
    normalise,
    reference_exclusions,
    reference_sentences_found,
    split_of,
)
from asr.text.normalize import normalize_text

logger = logging.getLogger(__name__)

__all__ = ["SOURCES", "Reserved", "lm_sentences", "reserved_sentences", "source_sentences"]

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
JARGON_FILE = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
GCIDE_FILE = Path("/usr/share/dictd/gcide.dict.dz")
BUNDLED_AUDIO = Path(__file__).resolve().parent.parent / "assets" / "audio"
SOURCES = ("synth-train", "fortunes", "wordnet", "bible", "jargon", "gcide")
DEBIAN_PACKAGES = {
    "fortunes": "fortunes fortunes-min",
    "wordnet": "wordnet-base",
    "bible": "bible-kjv bible-kjv-text",
    "jargon": "jargon-text",
    "gcide": "dict-gcide",
    "synth-train": "fortunes fortunes-min wordnet-base",
}


def _synth_text_configs() -> tuple[TextConfig, ...]:
    from asr.synth import PRESETS

    configs = [TextConfig()]
    for preset in PRESETS.values():
        if "text" in preset and preset["text"] not in configs:
            configs.append(preset["text"])
    return tuple(configs)


#: The synthetic corpus's text settings whose splits are kept apart: the default and every preset's.
SYNTH_TEXT_CONFIGS = _synth_text_configs()
#: References at least this many words long are also excluded when they occur inside a longer sentence.
MIN_CONTAINED_WORDS = 3

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_NUMBER = re.compile(r"\d+")


# -- sources ---------------------------------------------------------------------------------------------------------


def _split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _fortunes(root: Path) -> Iterator[str]:
    files = sorted(p for p in root.iterdir() if p.is_file() and "." not in p.name) if root.is_dir() else []
    for path in files:
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [ln.strip() for ln in entry.splitlines() if not ln.lstrip().startswith("--")]
            yield from _split_sentences(" ".join(lines))


def _wordnet(root: Path) -> Iterator[str]:
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                for part in line.split("|", 1)[1].split(";"):
                    part = part.strip().strip('"').strip()
                    if part:
                        yield from _split_sentences(part)


def _bible() -> Iterator[str]:
    exe = shutil.which("bible")
    if exe is None:
        return
    out = subprocess.run([exe, "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        ref, _, verse = line.partition(" ")
        if verse:
            yield from _split_sentences(verse)


def _jargon(path: Path) -> Iterator[str]:
    if not path.is_file():
        return
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        paragraph: list[str] = []
        for line in handle:
            line = line.strip()
            if not line or any(c in line for c in "│─┼├┤═"):
                if paragraph:
                    yield from _split_sentences(" ".join(paragraph))
                paragraph = []
            else:
                paragraph.append(line)
        if paragraph:
            yield from _split_sentences(" ".join(paragraph))


_GCIDE_DROP = re.compile(r"\[[^\]]*\]|\\[^\\]*\\|--[A-Z][\w. ]*|\([^)]*\)")


def _gcide(path: Path) -> Iterator[str]:
    if not path.is_file():
        return
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        paragraph: list[str] = []
        for line in handle:
            if not line.startswith("   ") or not line.strip():  # a headword line or a blank line ends a paragraph
                if paragraph:
                    text = _GCIDE_DROP.sub(" ", " ".join(paragraph)).replace("{", "").replace("}", "")
                    for part in text.split(";"):
                        yield from _split_sentences(part)
                paragraph = []
                continue
            paragraph.append(line.strip())


def source_sentences(name: str) -> Iterator[str]:
    """Raw sentences of a built-in source (see the module docstring); ValueError when its package is missing."""
    if name not in SOURCES:
        raise ValueError(f"unknown LM text source {name!r}; built-in sources: {list(SOURCES)}")
    if name == "synth-train":
        seen: set[str] = set()
        for config in SYNTH_TEXT_CONFIGS:
            for sentence in load_sentences(config=config)["train"]:
                if sentence not in seen:
                    seen.add(sentence)
                    yield sentence
        return
    gen = {
        "fortunes": lambda: _fortunes(FORTUNES_DIR),
        "wordnet": lambda: _wordnet(WORDNET_DIR),
        "bible": _bible,
        "jargon": lambda: _jargon(JARGON_FILE),
        "gcide": lambda: _gcide(GCIDE_FILE),
    }[name]
    count = 0
    for sentence in gen():
        count += 1
        yield sentence
    if count == 0:
        raise ValueError(
            f"LM text source {name!r} gave no text: install the Debian package(s) {DEBIAN_PACKAGES[name]}"
        )


def text_file_sentences(path: str | Path) -> Iterator[str]:
    """Sentences of a text file (UTF-8; one or more sentences per line; .gz allowed)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"LM text file {str(path)!r} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="strict") as handle:
        try:
            for line in handle:
                yield from _split_sentences(line.strip())
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc})") from exc


# -- normalisation ---------------------------------------------------------------------------------------------------


def _spell_number(match: re.Match) -> str:
    from num2words import num2words

    digits = match.group(0)
    if len(digits) > 9:  # a long digit string is read digit by digit
        return " ".join(num2words(int(d)) for d in digits)
    return " " + num2words(int(digits)) + " "


def normalise_lm_sentence(raw: str) -> str:
    """Numbers as words, then the transcripts' normalisation (upper case words, apostrophes, single spaces)."""
    return normalize_text(_NUMBER.sub(_spell_number, raw))


# -- what must stay out --------------------------------------------------------------------------------------------


@dataclass
class Reserved:
    """Sentences that must never be LM training text (see the module docstring)."""

    synth_configs: tuple[TextConfig, ...] = SYNTH_TEXT_CONFIGS  # whose dev/test split hashes are excluded
    contained: set[tuple[str, ...]] = field(default_factory=set)  # word tuples excluded anywhere in a sentence
    whole: set[str] = field(default_factory=set)  # short references excluded as whole sentences
    sources: dict[str, int] = field(default_factory=dict)  # where they came from -> how many

    def add(self, sentences: Iterable[str], *, source: str) -> None:
        n = 0
        for sentence in sentences:
            norm = normalize_text(sentence)
            if not norm:
                continue
            words = tuple(norm.split())
            if len(words) >= MIN_CONTAINED_WORDS:
                self.contained.add(words)
            self.whole.add(norm)
            n += 1
        self.sources[source] = self.sources.get(source, 0) + n

    def _index(self) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
        index: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        for words in self.contained:
            index.setdefault(words[:MIN_CONTAINED_WORDS], []).append(words)
        return index

    def filter(self, sentences: Iterable[tuple[str, str]], stats: dict[str, int]) -> Iterator[str]:
        """Normalised sentences from (raw, normalised) pairs, without the reserved ones; ``stats`` counts drops."""
        index = self._index()
        k = MIN_CONTAINED_WORDS
        for raw, norm in sentences:
            forms = {normalise(raw), norm}  # the synth corpus's form of the raw text, and ours
            if any(split_of(f, config=c) != "train" for f in forms for c in self.synth_configs):
                stats["synthetic dev/test split hash"] = stats.get("synthetic dev/test split hash", 0) + 1
                continue
            if norm in self.whole:
                stats["equals a reserved sentence"] = stats.get("equals a reserved sentence", 0) + 1
                continue
            words = norm.split()
            hit = False
            for i in range(len(words) - k + 1):
                for cand in index.get(tuple(words[i : i + k]), ()):
                    if tuple(words[i : i + len(cand)]) == cand:
                        hit = True
                        break
                if hit:
                    break
            if hit:
                stats["contains a reserved sentence"] = stats.get("contains a reserved sentence", 0) + 1
                continue
            yield norm


def _manifest_texts(path: Path) -> list[str]:
    texts = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                texts.append(str(row["text"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: not a manifest line with a 'text' field ({exc})") from exc
    return texts


def reserved_sentences(
    exclude_manifests: Iterable[str | Path] = (), *, synth_configs: tuple[TextConfig, ...] | None = None
) -> Reserved:
    """Everything the LM text must not contain (see the module docstring), ``exclude_manifests`` included (JSONL
    manifests with a ``text`` field); ``synth_configs``: default :data:`SYNTH_TEXT_CONFIGS`."""
    synth_configs = SYNTH_TEXT_CONFIGS if synth_configs is None else synth_configs
    reserved = Reserved(synth_configs=synth_configs)
    for i, config in enumerate(synth_configs):
        pools = load_sentences(config=config)
        for split in SPLITS:
            if split != "train":
                reserved.add(pools[split], source=f"synthetic {split} pool (text settings {i})")
    for name in ("real.jsonl", "synth_test.jsonl"):
        path = BUNDLED_AUDIO / name
        if path.is_file():
            reserved.add(_manifest_texts(path), source=f"asr/assets/audio/{name}")
    reserved.add(reference_exclusions(), source="asr/synth/reference_sentences.txt")
    for source, texts in reference_sentences_found().items():
        reserved.add(texts, source=source)
    for manifest in exclude_manifests:
        path = Path(manifest)
        if not path.is_file():
            raise ValueError(f"--exclude manifest {str(path)!r} does not exist")
        reserved.add(_manifest_texts(path), source=str(path))
    return reserved


def lm_sentences(
    *, sources: Iterable[str] = (), text_files: Iterable[str | Path] = (), reserved: Reserved, stats: dict[str, int]
) -> Iterator[str]:
    """Normalised LM training sentences from built-in ``sources`` and ``text_files``, reserved ones left out
    (``stats``: sentences read and dropped, by reason)."""

    def pairs() -> Iterator[tuple[str, str]]:
        streams: list[tuple[str, Iterable[str]]] = [(name, source_sentences(name)) for name in sources]
        streams += [(str(p), text_file_sentences(p)) for p in text_files]
        for name, stream in streams:
            n = 0
            for raw in stream:
                norm = normalise_lm_sentence(raw)
                if norm:
                    n += 1
                    yield raw, norm
            stats[f"sentences from {name}"] = n

    yield from reserved.filter(pairs(), stats)
