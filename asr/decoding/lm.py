"""n-gram language model files: check an ARPA or KenLM binary file, then load it with KenLM (inside flashlight-text).

Formats: ARPA text (``.arpa``, or gzip-compressed ``.arpa.gz``, which KenLM reads directly) and KenLM's binary
format (``build_binary`` output, e.g. LibriSpeech's ``4-gram.bin`` made by a KenLM build). Before KenLM sees an
ARPA file, :func:`read_lm_info` reads its header and unigram section (fast even for LibriSpeech's 4-gram, whose
unigrams come first) and raises :class:`LMError` naming the file and line for a missing ``\\data\\`` header, bad
counts, a malformed unigram line or a unigram count that disagrees with the header. Errors KenLM finds later in
the file (it reports byte offsets) are re-raised with the file name and line number. KenLM's own progress chatter
on stderr is captured and logged at debug level.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["LMError", "LMInfo", "load_kenlm", "read_lm_info"]

KENLM_BINARY_MAGIC = b"mmap lm http://kheafield.com/code"
_COUNT_LINE = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)$")
_SECTION = re.compile(r"^\\(\d+)-grams:$")


class LMError(ValueError):
    """An LM file that cannot be used; the message names the file (and line, where there is one)."""


@dataclass(frozen=True)
class LMInfo:
    path: str
    format: str  # "arpa" or "binary"
    order: int | None  # highest n-gram order (None for binary files: KenLM knows it once loaded)
    counts: tuple[int, ...]  # n-grams per order (ARPA header); () for binary files
    vocab: frozenset[str] | None  # the unigrams (ARPA); None for binary files


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_lm_info(path: str | os.PathLike) -> LMInfo:
    """Format, order, counts and (for ARPA) the vocabulary of an LM file; LMError for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"language model {str(path)!r} does not exist")
    try:
        with _open_bytes(path) as handle:
            head = handle.read(len(KENLM_BINARY_MAGIC))
    except (OSError, EOFError) as exc:
        raise LMError(f"{path}: cannot be read ({exc})") from exc
    if head == KENLM_BINARY_MAGIC:
        return LMInfo(str(path), "binary", None, (), None)
    counts: dict[int, int] = {}
    vocab: set[str] = set()
    lineno = 0
    try:
        with _open_bytes(path) as raw:
            lines = (line.decode("utf-8").strip() for line in raw)
            state = "start"  # start -> header -> unigrams -> done
            for lineno, line in enumerate(lines, 1):
                if state == "start":
                    if not line:
                        continue
                    if line != "\\data\\":
                        raise LMError(
                            f"{path}:{lineno}: not an ARPA file (first non-empty line is {line[:60]!r}, expected "
                            "'\\data\\') nor a KenLM binary file"
                        )
                    state = "header"
                elif state == "header":
                    if not line:
                        continue
                    m = _COUNT_LINE.match(line)
                    if m:
                        order, count = int(m.group(1)), int(m.group(2))
                        if order != len(counts) + 1:
                            raise LMError(
                                f"{path}:{lineno}: expected the count of {len(counts) + 1}-grams, got {line!r}"
                            )
                        counts[order] = count
                        continue
                    if line != "\\1-grams:" or not counts:
                        raise LMError(
                            f"{path}:{lineno}: expected 'ngram N=COUNT' lines then '\\1-grams:', got {line!r}"
                        )
                    state = "unigrams"
                elif state == "unigrams":
                    if not line:
                        continue
                    if _SECTION.match(line) or line == "\\end\\":
                        state = "done"
                        break
                    fields = line.split()
                    if len(fields) not in (2, 3):
                        raise LMError(f"{path}:{lineno}: a unigram line is 'LOGPROB WORD [BACKOFF]', got {line[:80]!r}")
                    try:
                        [float(x) for x in (fields[0], *fields[2:])]
                    except ValueError:
                        raise LMError(f"{path}:{lineno}: not a number in the unigram line {line[:80]!r}") from None
                    vocab.add(fields[1])
    except UnicodeDecodeError as exc:
        raise LMError(f"{path}:{lineno + 1}: not UTF-8 text ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise LMError(f"{path}: cannot be read ({exc})") from exc
    if state != "done":
        where = {"start": "no '\\data\\' header", "header": "no '\\1-grams:' section"}.get(state, "")
        if state == "unigrams":
            where = "the file ends inside the unigram section"
        raise LMError(f"{path}: truncated or malformed ARPA file ({where or 'unexpected content'})")
    if len(vocab) != counts[1]:
        raise LMError(f"{path}: the header says {counts[1]} unigrams, the \\1-grams: section has {len(vocab)}")
    return LMInfo(str(path), "arpa", len(counts), tuple(counts[i] for i in sorted(counts)), frozenset(vocab))


def _byte_to_line(path: Path, offset: int) -> int:
    """1-based line number of byte ``offset`` of the (decompressed) file."""
    line, seen = 1, 0
    with _open_bytes(path) as handle:
        while seen < offset:
            block = handle.read(min(1 << 20, offset - seen))
            if not block:
                break
            line += block.count(b"\n")
            seen += len(block)
    return line


@contextlib.contextmanager
def _captured_stderr():
    """Redirect the process's fd 2 (where KenLM's C++ code writes) to a temp file; yields a reader of it."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        captured: list[str] = []
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", "replace"))


def load_kenlm(path: str | os.PathLike, word_dict):
    """KenLM over ``word_dict`` (a flashlight Dictionary: its words are looked up in the LM's vocabulary)."""
    from flashlight.lib.text.decoder.kenlm import KenLM

    path = Path(path)
    with _captured_stderr() as chatter:
        try:
            lm = KenLM(str(path), word_dict)
            error = None
        except RuntimeError as exc:
            lm, error = None, str(exc)
    text = "".join(chatter)
    for line in text.splitlines():
        if line.strip() and not set(line.strip()) <= set("-*0123456789"):
            logger.debug("KenLM: %s", line)
    if error is not None:
        detail = error.strip().splitlines()[-1] if error.strip() else "unknown error"
        m = re.search(r"Byte: (\d+)\s*$", error)
        if m:
            detail = re.sub(r"\s*Byte: \d+\s*$", "", detail)
            raise LMError(f"{path}:{_byte_to_line(path, int(m.group(1)))}: KenLM cannot load it: {detail}")
        raise LMError(f"{path}: KenLM cannot load it: {detail}")
    return lm
