"""Build an LM folder: an n-gram LM (ARPA, optionally pruned) and the lexicon for a model's tokenizer.

The estimator is kaldingram (PyPI, Apache-2.0, from the next-gen Kaldi team, maintained): back-off Kneser-Ney
exactly as SRILM's ``ngram-count -ukndiscount`` computes it and relative-entropy pruning (SRILM's ``-prune``), with
progress bars, in pure Python, so it installs with pip everywhere the project does. (Its count cut-offs are not
offered: kaldingram 0.1.2 recounts each history's total without the cut n-grams, which leaves the history almost no
back-off mass, log10 back-off weights near -7 on a 6 M-word text, and the LM then all but forbids unseen word
pairs. Relative-entropy pruning recomputes the back-off weights properly.)

The alternatives on these machines were worse fits: KenLM's ``lmplz`` is not in the
``kenlm`` wheels nor in Debian bookworm; Debian's IRSTLM (last release 2014) needs its shell-script pipeline and
temp-file juggling; pocketsphinx's ``ArpaBoLM`` smooths crudely. kaldingram is slow on large text (pure Python:
~20 s per million words for a 3-gram, a few GB of memory for tens of millions): for LibriSpeech-size text use
the standard pre-built 4-gram instead (``recipes/librispeech/README.md``).

Steps (each one's output is kept under ``OUT/work/`` with a stamp of its inputs, so a rerun with the same text
and settings skips what is done):

1. the normalised sentences are written to ``work/text.txt`` and their words counted;
2. the vocabulary: the words the tokenizer can spell, the ``vocab_size`` most frequent of them (by the text's own
   counts, or by ``wordfreq``'s English frequencies); every other word becomes ``<unk>`` in ``work/counts.txt``;
3. ``work/lm.arpa``: the Kneser-Ney n-gram of ``order``; 4. pruned (``prune`` threshold) if asked;
5. ``OUT/lm.arpa.gz`` (gzip, reproducible bytes), ``OUT/lexicon.txt.gz`` (the vocabulary spelled for the
   tokenizer) and ``OUT/lm.json`` (:mod:`asr.lm.folder`).

``units="tokens"`` builds a token-level LM for lexicon-free decoding instead (each sentence as the model's
tokens, e.g. ``H E L L O | W O R L D``; no lexicon).
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import logging
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from asr.decoding.lexicon import spell_words, write_lexicon
from asr.decoding.lm import read_lm_info
from asr.lm.folder import write_lm_json
from asr.text.base import Tokenizer

logger = logging.getLogger(__name__)

__all__ = ["BuildConfig", "build_lm_folder", "train_arpa"]

UNITS = ("words", "tokens")
RANKINGS = ("text", "wordfreq")
MAX_ORDER = 6  # KenLM's default maximum order (the flashlight-text wheel's KenLM)


@dataclass(frozen=True)
class BuildConfig:
    order: int = 3  # n-gram order
    vocab_size: int | None = None  # keep the N most frequent spellable words (the rest -> <unk>); None: all
    vocab_ranking: str = "text"  # "text": by counts in the LM text; "wordfreq": by wordfreq's English frequencies
    prune: float | None = None  # relative-entropy pruning threshold (SRILM -prune), e.g. 1e-7; None: no pruning
    units: str = "words"  # "words": word LM + lexicon; "tokens": token LM for lexicon-free decoding
    g2p: bool = True  # phone lexicons: espeak-ng pronounces the vocabulary's words CMUdict lacks (asr.text.g2p)

    def __post_init__(self) -> None:
        if not 1 <= self.order <= MAX_ORDER:
            raise ValueError(f"order must be 1..{MAX_ORDER} (KenLM's maximum), got {self.order}")
        if self.vocab_size is not None and self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if self.vocab_ranking not in RANKINGS:
            raise ValueError(f"vocab_ranking must be one of {RANKINGS}, got {self.vocab_ranking!r}")
        if self.prune is not None and not self.prune > 0:
            raise ValueError(f"prune threshold must be > 0, got {self.prune}")
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {self.units!r}")


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with part.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _stamped(path: Path, stamp: str) -> bool:
    marker = path.with_name(path.name + ".stamp")
    return path.is_file() and marker.is_file() and marker.read_text().strip() == stamp


def _stamp(path: Path, stamp: str) -> None:
    path.with_name(path.name + ".stamp").write_text(stamp + "\n")


def train_arpa(text: Path, out: Path, *, order: int, prune: float | None = None) -> Path:
    """Kneser-Ney ``order``-gram of ``text`` (whitespace-separated tokens, one sentence per line) with kaldingram,
    written as ARPA to ``out`` (pruned with the relative-entropy ``prune`` threshold if given)."""
    from kaldingram.train import NgramCounts

    counts = NgramCounts(order)
    counts.add_raw_counts_from_file(str(text))
    counts.cal_discounting_constants()
    counts.cal_f()
    counts.cal_bow()
    full = out if prune is None else out.with_name(out.name + ".unpruned")
    tmp = full.with_name(full.name + ".tmp")
    with tmp.open("w", encoding="latin-1") as handle:  # kaldingram reads and writes bytes as latin-1
        counts.print_as_arpa(fout=handle)
    tmp.replace(full)
    del counts
    if prune is not None:
        from kaldingram.prune import ArpaParser
        from kaldingram.prune import prune as entropy_prune

        parser = ArpaParser()
        model = parser.loadf(str(full), encoding="latin-1")[0]
        entropy_prune(model, prune, 2)  # unigrams are kept: the lexicon's words stay in the LM
        parser.dumpf(model, str(tmp), encoding="latin-1")
        tmp.replace(out)
        full.unlink()
    return out


def _gzip_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    with src.open("rb") as fin, gzip.GzipFile(tmp, "wb", compresslevel=9, mtime=0) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    tmp.replace(dst)


def _ranked_vocabulary(counts: collections.Counter, ranking: str) -> list[str]:
    by_text = sorted(counts, key=lambda w: (-counts[w], w))
    if ranking == "text":
        return by_text
    try:
        import wordfreq
    except ImportError as exc:
        raise ValueError("--vocab-ranking wordfreq needs the 'wordfreq' package (pip install wordfreq)") from exc
    freq = {w: wordfreq.word_frequency(w.lower(), "en") for w in counts}
    return sorted(counts, key=lambda w: (-freq[w], -counts[w], w))


def build_lm_folder(
    sentences: Iterable[str],
    out_dir: str | Path,
    tokenizer: Tokenizer,
    config: BuildConfig,
    *,
    meta: dict | None = None,
    progress: bool = True,
) -> dict:
    """Build ``out_dir`` (see the module docstring) from normalised ``sentences``; returns what lm.json holds."""
    out = Path(out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    text = work / "text.txt"
    counts: collections.Counter = collections.Counter()
    n_sentences = 0
    with text.with_name("text.txt.tmp").open("w", encoding="utf-8") as handle:
        for sentence in tqdm(sentences, desc="LM text", unit=" sentences", disable=not progress):
            handle.write(sentence + "\n")
            counts.update(sentence.split())
            n_sentences += 1
    text.with_name("text.txt.tmp").replace(text)
    if not n_sentences:
        raise ValueError("no LM text: every sentence was empty or excluded")
    logger.info("LM text: %d sentences, %d words, %d distinct", n_sentences, sum(counts.values()), len(counts))

    lexicon = None
    if config.units == "words":
        spelled, unspellable = spell_words(sorted(counts), tokenizer)
        everything = _ranked_vocabulary(counts, config.vocab_ranking)
        if config.g2p and tokenizer.kind == "phone" and unspellable:
            # G2P for the words that would be in the vocabulary, not for every rare token of the text
            top = set(everything[: config.vocab_size] if config.vocab_size else everything)
            extra, _ = spell_words([w for w in unspellable if w in top], tokenizer, g2p=True)
            spelled = type(spelled)({**spelled.entries, **extra.entries})
            unspellable = [w for w in unspellable if w not in extra.entries]
            logger.info("G2P (espeak-ng) spelled %d vocabulary words CMUdict lacks", len(extra))
        if unspellable:
            logger.info(
                "%d words the %s tokenizer cannot spell become <unk> (e.g. %s)",
                len(unspellable), tokenizer.kind, unspellable[:10],
            )
        ranked = [w for w in everything if w in spelled.entries]
        vocab = set(ranked[: config.vocab_size] if config.vocab_size else ranked)
        lexicon = type(spelled)({w: spelled.entries[w] for w in sorted(vocab)})
        counting = work / "counts.txt"
        stamp = _digest(text, sorted(vocab))
        if not _stamped(counting, stamp):
            with text.open(encoding="utf-8") as fin, counting.open("w", encoding="utf-8") as fout:
                for line in fin:
                    fout.write(" ".join(w if w in vocab else "<unk>" for w in line.split()) + "\n")
            _stamp(counting, stamp)
        covered = sum(c for w, c in counts.items() if w in vocab) / max(1, sum(counts.values()))
        logger.info("vocabulary: %d words, covering %.2f%% of the text's words", len(vocab), 100 * covered)
    else:
        table = tokenizer.tokens
        counting = work / "counts.txt"
        stamp = _digest(text, table)
        if not _stamped(counting, stamp):
            with text.open(encoding="utf-8") as fin, counting.open("w", encoding="utf-8") as fout:
                for line in fin:
                    ids = tokenizer.encode(line.strip(), on_oov="skip")
                    fout.write(" ".join(table[i] for i in ids) + "\n")
            _stamp(counting, stamp)
        vocab = set(table[1:])
        covered = 1.0

    arpa = work / "lm.arpa"
    stamp = _digest(counting, config.order, config.prune)
    if _stamped(arpa, stamp):
        logger.info("%s is up to date (delete it to retrain)", arpa)
    else:
        train_arpa(counting, arpa, order=config.order, prune=config.prune)
        _stamp(arpa, stamp)
    _gzip_copy(arpa, out / "lm.arpa.gz")
    info = read_lm_info(out / "lm.arpa.gz")
    if lexicon is not None:
        write_lexicon(out / "lexicon.txt.gz", lexicon)
    result = {
        "lm": "lm.arpa.gz",
        "lexicon": "lexicon.txt.gz" if lexicon is not None else None,
        "units": config.units,
        "order": info.order,
        "ngram_counts": list(info.counts),
        "lexicon_words": len(lexicon) if lexicon is not None else None,
        "tokenizer": {"kind": tokenizer.kind, "tokens": tokenizer.tokens},
        "decoder": {},
        "build": {
            **asdict(config),
            "estimator": "kaldingram (back-off Kneser-Ney, SRILM -ukndiscount equivalent)",
            "sentences": n_sentences,
            "words": sum(counts.values()),
            "distinct_words": len(counts),
            "vocabulary_coverage": round(covered, 5),
            **(meta or {}),
        },
    }
    write_lm_json(out, result)  # decoder settings: none yet (tools/tune_lm.py --write records tuned ones)
    return result
