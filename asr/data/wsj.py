"""The LDC Wall Street Journal corpus (WSJ0 LDC93S6, WSJ1 LDC94S13) -> si284 / dev93 / eval92 manifests.

Layout. The corpus comes as CD-ROM folders (``11-1.1/wsj0/...`` .. ``11-13.1``, ``13-1.1/wsj1/...`` ..
``13-34.1``), sometimes merged into one ``wsj0/`` and one ``wsj1/`` tree. Audio is NIST SPHERE in ``.wv1``
files (the Sennheiser microphone; ``.wv2`` is the second microphone, not used), e.g.
``wsj0/si_tr_s/01i/01ic0201.wv1``; utterance ids are the lower-cased file stems, speakers their first 3
characters. Transcripts are ``.dot`` files, one per session (``01ic0200.dot``), of lines
``<transcript> (<UTTID>)``, in ``wsj0/transcrp/dots/...`` for WSJ0 and beside the audio for WSJ1; ``.lsn``
files (same line format) are used for utterances no ``.dot`` file covers. Every path is matched
case-insensitively from its ``wsj0/``/``wsj1/`` component on, so disk folder names and upper-cased copies do
not matter; any number of source folders may be given.

Sets, as Kaldi's ``egs/wsj/s5/local/wsj_data_prep.sh`` (and ESPnet's ``egs/wsj/asr1``, which runs it) define
them, from the LDC index (``.ndx``) files:

- ``si284`` (train, 37,416 utts): ``wsj1/doc/indices/si_tr_s.ndx`` + ``wsj0/doc/indices/train/tr_s_wv1.ndx``,
  minus speaker ``wsj0/si_tr_s/401`` (listed in the index, absent from the disks).
- ``si84`` (7,138 utts): ``wsj0/doc/indices/train/tr_s_wv1.ndx`` minus the same speaker.
- ``dev93`` (503 utts): ``wsj1/doc/indices/h1_p0.ndx`` (the Nov'93 Hub 1 dev set, all of ``wsj1/si_dt_20``).
- ``eval92`` (333 utts): ``wsj0/doc/indices/test/nvp/si_et_20.ndx`` (Nov'92, 20k, non-verbalised punctuation;
  its lines lack the ``.wv1`` extension).

When an index file is missing (partial copies, the test fakes), the set falls back to every ``.wv1`` under the
folders it covers (``wsj1/si_tr_s`` + ``wsj0/si_tr_s``; ``wsj1/si_dt_20``; ``wsj0/si_et_20``) and the summary
says so.

Transcript normalisation happens in two steps:

1. :func:`kaldi_normalize` gives what Kaldi's ``normalize_transcript.pl`` gives (kept in
   ``extra["kaldi_text"]`` for word/phone tools that want Kaldi's tokens): upper case; ``\\`` escapes removed;
   ``%PERCENT`` -> ``PERCENT``, ``.POINT`` -> ``POINT``; markers of noises overlapping a neighbouring word
   (``[<door_slam]``, ``[door_slam>]``) or opening/closing a span (``[phone_ring/]``, ``[/phone_ring]``), the
   truncation mark ``~`` and the pause mark ``.`` deleted; other noises (``[loud_breath]``) -> ``<NOISE>``;
   verbal deletions ``<word>`` -> ``word`` (they were spoken); ``--DASH`` -> ``-DASH``.
2. :func:`spoken_text` turns that into the words actually spoken, in the project's ``[A-Z' ]`` alphabet:
   ``<NOISE>`` dropped (ESPnet keeps it as a non-linguistic symbol; a character CTC model has no use for it);
   mispronunciation stars removed (``*WORD*`` -> ``WORD``); the unspoken part of a fragment removed
   (``TELE(VISION)-`` -> ``TELE``); lengthening ``:`` and emphasis ``!`` removed; verbalised punctuation
   spelled as its words (``,COMMA`` -> ``COMMA``, ``"DOUBLE-QUOTE`` -> ``DOUBLE QUOTE``, ``...ELLIPSIS`` ->
   ``ELLIPSIS``), then :func:`asr.text.normalize.normalize_text` (``U.S.`` -> ``U S``, ``CORP.`` -> ``CORP``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from asr.data.manifest import PrepareReport, Utterance, measure_durations

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SETS", "SETS", "WsjSet", "kaldi_normalize", "read_wsj", "spoken_text"]


@dataclass(frozen=True)
class WsjSet:
    """How one standard WSJ set is defined."""

    name: str  # manifest name
    indices: tuple[str, ...]  # LDC index files (paths from wsj0/ or wsj1/ on) listing the set's .wv1 files
    fallback_dirs: tuple[str, ...]  # folders whose .wv1 files form the set when an index file is missing
    exclude: tuple[str, ...] = ()  # path prefixes left out (reason "excluded")
    expected: int = 0  # utterance count of the full set in Kaldi's recipe (a check, noted in the summary)


_SPK401 = "wsj0/si_tr_s/401/"
SETS: dict[str, WsjSet] = {
    s.name: s
    for s in (
        WsjSet(
            "si284",
            ("wsj1/doc/indices/si_tr_s.ndx", "wsj0/doc/indices/train/tr_s_wv1.ndx"),
            ("wsj1/si_tr_s", "wsj0/si_tr_s"),
            (_SPK401,),
            37416,
        ),
        WsjSet("si84", ("wsj0/doc/indices/train/tr_s_wv1.ndx",), ("wsj0/si_tr_s",), (_SPK401,), 7138),
        WsjSet("dev93", ("wsj1/doc/indices/h1_p0.ndx",), ("wsj1/si_dt_20",), (), 503),
        WsjSet("eval92", ("wsj0/doc/indices/test/nvp/si_et_20.ndx",), ("wsj0/si_et_20",), (), 333),
    )
}
DEFAULT_SETS = ("si284", "dev93", "eval92")

_TRANSCRIPT_LINE = re.compile(r"^(.*)\((\w+)\)\s*$")
_NDX_LINE = re.compile(r"^([0-9_]+):\s*(\S+)\s*$")


# ------------------------------------------------------------------------------------------ normalisation

_DELETED = (
    re.compile(r"^\[<\w+\]$"),  # [<noise]: noise overlapping the previous word
    re.compile(r"^\[\w+>\]$"),  # [noise>]: noise overlapping the next word
    re.compile(r"\[\w+/\]$"),  # [noise/]: a noise span starts
    re.compile(r"\[/\w+\]$"),  # [/noise]: a noise span ends
)
_NOISE = re.compile(r"\[\w+\]")
_VERBAL_DELETION = re.compile(r"^<([\w']+)>$")
_FRAGMENT = re.compile(r"\([^()]*\)")
_LEADING_PUNCT = re.compile(r"^[^\w']+(?=[A-Z])")


def kaldi_normalize(raw: str, *, noise_word: str = "<NOISE>") -> str:
    """A raw ``.dot`` transcript -> the tokens Kaldi's WSJ recipe makes of it (see the module docstring)."""
    out = []
    for w in raw.split():
        w = w.upper().replace("\\", "")
        if w == "%PERCENT":
            w = "PERCENT"
        elif w == ".POINT":
            w = "POINT"
        if w in ("~", ".") or any(p.search(w) for p in _DELETED):
            continue
        if _NOISE.search(w):
            out.append(noise_word)
        elif m := _VERBAL_DELETION.match(w):
            out.append(m.group(1))
        elif w == "--DASH":
            out.append("-DASH")
        else:
            out.append(w)
    return " ".join(out)


def spoken_text(kaldi_text: str) -> str:
    """Kaldi-normalised WSJ tokens -> the spoken words, normalised (see the module docstring)."""
    from asr.text.normalize import normalize_text

    words = []
    for w in kaldi_text.split():
        if w.startswith("<") and w.endswith(">"):
            inner = w[1:-1]
            if inner.upper() in ("NOISE", "SPOKEN_NOISE", "UNK"):
                continue
            w = inner
        w = w.replace("*", "").replace(":", "").replace("!", "")
        if _FRAGMENT.sub("", w).strip("-"):  # a fragment: drop the unspoken part in parentheses
            w = _FRAGMENT.sub("", w)
        w = _LEADING_PUNCT.sub("", w)  # ,COMMA -> COMMA, "DOUBLE-QUOTE -> DOUBLE-QUOTE
        words.append(w.replace("-", " "))
    return normalize_text(" ".join(words))


# ----------------------------------------------------------------------------------------------- reading


@dataclass
class _Tree:
    audio: dict[str, Path]  # "wsj0/si_tr_s/01i/01ic0201.wv1" -> file
    indices: dict[str, Path]  # "wsj0/doc/indices/train/tr_s_wv1.ndx" -> file
    dots: list[Path]
    lsns: list[Path]
    unplaced: int  # .wv1 files with no wsj0/ or wsj1/ folder above them
    duplicates: int  # the same corpus path found in two source folders (first kept)


def _corpus_key(path: Path) -> str | None:
    parts = [p.lower() for p in path.parts]
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("wsj0", "wsj1"):
            return "/".join(parts[i:])
    return None


def _scan(roots: list[Path]) -> _Tree:
    tree = _Tree({}, {}, [], [], 0, 0)
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                ext = os.path.splitext(name)[1].lower()
                if ext not in (".wv1", ".ndx", ".dot", ".lsn"):
                    continue
                file = Path(dirpath) / name
                if ext == ".dot":
                    tree.dots.append(file)
                    continue
                if ext == ".lsn":
                    tree.lsns.append(file)
                    continue
                key = _corpus_key(file)
                table = tree.audio if ext == ".wv1" else tree.indices
                if key is None:
                    tree.unplaced += ext == ".wv1"
                elif key in table:
                    tree.duplicates += 1
                else:
                    table[key] = file
    return tree


def _read_transcripts(files: list[Path], report: PrepareReport, kind: str) -> dict[str, tuple[str, str]]:
    """``utt id -> (raw transcript, "file:line")`` from ``.dot``/``.lsn`` files; conflicts are flagged."""
    out: dict[str, tuple[str, str]] = {}
    for file in files:
        report.read[f"{kind} files"] += 1
        with file.open(encoding="latin-1") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{file}:{lineno}"
                m = _TRANSCRIPT_LINE.match(line.rstrip("\r\n"))
                if m is None:
                    report.flag("bad_line", where, f"{line.strip()!r}: expected '<transcript> (<UTTID>)'")
                    continue
                utt, text = m.group(2).lower(), m.group(1).strip()
                if utt in out and out[utt][0] != text:
                    report.flag(
                        "conflicting_transcripts", utt, f"{where} differs from {out[utt][1]}; first kept"
                    )
                    continue
                out.setdefault(utt, (text, where))
    return out


def _members(wset: WsjSet, tree: _Tree, report: PrepareReport) -> list[tuple[str, str]]:
    """The set's ``(corpus key, where listed)`` entries, from its index files or the fallback folders."""
    missing = [ndx for ndx in wset.indices if ndx not in tree.indices]
    if not missing:
        entries = []
        for ndx in wset.indices:
            with tree.indices[ndx].open(encoding="latin-1") as f:
                for lineno, line in enumerate(f, start=1):
                    if not line.strip() or line.startswith(";"):
                        continue
                    report.read["index lines"] += 1
                    m = _NDX_LINE.match(line.strip())
                    where = f"{tree.indices[ndx]}:{lineno}"
                    if m is None:
                        report.skip("bad_line", where, f"{line.strip()!r}: expected '<disk>:<path>'")
                        continue
                    key = m.group(2).lower().lstrip("/")
                    entries.append((key if key.endswith(".wv1") else key + ".wv1", where))
        report.note(f"{wset.name} defined by {' + '.join(wset.indices)} (Kaldi wsj_data_prep.sh)")
        return entries
    prefixes = tuple(d.rstrip("/") + "/" for d in wset.fallback_dirs)
    report.note(
        f"{wset.name}: index file(s) {missing} not found; "
        f"set defined by all .wv1 files under {list(prefixes)}"
    )
    return [(key, "folder scan") for key in sorted(tree.audio) if key.startswith(prefixes)]


def _is_shorten(path: Path) -> bool:
    """True for a SPHERE file whose samples are shorten-compressed (as the LDC WSJ discs ship them)."""
    with path.open("rb") as f:
        head = f.read(1024)
    return head.startswith(b"NIST_1A") and b"shorten" in head


def read_wsj(
    roots: list[str | os.PathLike], *, sets: tuple[str, ...] = DEFAULT_SETS, jobs: int = 4
) -> dict[str, tuple[list[Utterance], PrepareReport]]:
    """Read the WSJ tree(s) under ``roots`` into the named sets: ``{name: (utterances, report)}``."""
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise ValueError(f"unknown WSJ set(s) {unknown}; known: {sorted(SETS)}")
    paths = [Path(r) for r in roots]
    bad = [str(p) for p in paths if not p.is_dir()]
    if bad or not paths:
        raise ValueError(f"WSJ source folder(s) missing or not directories: {bad or '(none given)'}")
    tree = _scan(paths)
    if not tree.audio:
        raise ValueError(f"no .wv1 files under a wsj0/ or wsj1/ folder in {[str(p) for p in paths]}")
    source = ", ".join(str(p) for p in paths)
    scan_report = PrepareReport(name="wsj", corpus="wsj", source=source)
    dots = _read_transcripts(tree.dots, scan_report, "dot")
    lsns = _read_transcripts(tree.lsns, scan_report, "lsn")

    results: dict[str, tuple[list[Utterance], PrepareReport]] = {}
    for name in sets:
        wset = SETS[name]
        report = PrepareReport(name=name, corpus="wsj", source=source)
        report.read.update(scan_report.read)
        report.read[".wv1 files"] = len(tree.audio)
        report.flagged.extend(scan_report.flagged)
        if tree.unplaced:
            report.note(f"{tree.unplaced} .wv1 files not under a wsj0/ or wsj1/ folder were not considered")
        if tree.duplicates:
            report.note(
                f"{tree.duplicates} files found twice across the source folders; the first copy is used"
            )
        pending: list[tuple[str, Path, str, str]] = []  # (utt id, file, raw transcript, transcript kind)
        for key, where in _members(wset, tree, report):
            utt = Path(key).stem
            if key.startswith(wset.exclude):
                report.skip("excluded", utt, f"{key}: not part of {name} in Kaldi's definition")
                continue
            if key not in tree.audio:
                report.skip("missing_audio", utt, f"{key} (listed at {where}) not found under {source}")
                continue
            if utt in dots:
                pending.append((utt, tree.audio[key], dots[utt][0], "dot"))
            elif utt in lsns:
                pending.append((utt, tree.audio[key], lsns[utt][0], "lsn"))
            else:
                report.skip(
                    "missing_transcript", utt, f"no line '(...{utt.upper()})' in any .dot or .lsn file"
                )
        durations = measure_durations([str(p[1]) for p in pending], jobs=jobs, desc=f"{name} durations")
        utts = []
        for utt, file, raw, kind in pending:
            d = durations[str(file)]
            if isinstance(d, str):
                report.skip("unreadable_audio", utt, d)
                continue
            ktext = kaldi_normalize(raw)
            utts.append(
                Utterance(
                    id=utt,
                    audio=str(file),
                    duration=d,
                    text=spoken_text(ktext),
                    speaker=utt[:3],
                    extra={"kaldi_text": ktext, "transcript": kind},
                )
            )
        if pending and _is_shorten(pending[0][1]) and shutil.which("sph2pipe") is None:
            report.note(
                "the .wv1 files are shorten-compressed NIST SPHERE: reading them needs the 'sph2pipe' "
                "program on PATH, which was not found (Kaldi builds it in tools/sph2pipe_v2.5)"
            )
        n_lsn = sum(1 for p in pending if p[3] == "lsn")
        if n_lsn:
            report.note(f"{n_lsn} transcripts taken from .lsn files (no .dot line)")
        if wset.expected and len(utts) != wset.expected:
            report.note(f"{len(utts)} utterances; the full corpus gives {wset.expected} in Kaldi's recipe")
        results[name] = (sorted(utts, key=lambda u: u.id), report)
    return results
