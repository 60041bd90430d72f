"""The one manifest format every corpus becomes, and the record of how a corpus became one.

A manifest is a JSONL file, one utterance per line::

    {"id": "19-198-0000", "audio": "/data/LibriSpeech/train-clean-100/19/198/19-198-0000.flac",
     "duration": 14.845, "text": "NORTHANGER ABBEY", "speaker": "19", "extra": {"chapter": "198"}}

- ``audio`` is a file path or a Kaldi ``wav.scp`` pipe command ending in ``|`` (read by
  :func:`asr.audio.load_audio_source`). Relative file paths are resolved against the manifest's folder.
- ``offset`` (seconds, optional) and ``duration`` (seconds) select a segment of the audio when ``offset`` is
  present (Kaldi ``segments``); without ``offset`` the whole file is the utterance and ``duration`` is its
  length.
- ``text`` is the corpus transcript after the corpus-specific cleanup (WSJ markers, ``<s>`` tags...); the one
  project-wide normalisation (:func:`asr.text.normalize.normalize_text`) is applied later by the tokenizers.
- ``extra`` holds optional corpus-specific fields (chapter, recording, the Kaldi form of a WSJ transcript...).

Preparing a manifest never drops anything silently: :class:`PrepareReport` counts what was read and lists
every skipped utterance (and every kept-but-suspicious one) with a reason; ``asr prepare`` writes it to
``summary.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ALPHABET",
    "Issue",
    "PrepareReport",
    "Utterance",
    "check_utterances",
    "is_pipe",
    "measure_durations",
    "read_manifest",
    "refuse_pipes",
    "text_lines",
    "verify_audio",
    "write_manifest",
]

# Characters a transcript may hold after normalize_text (besides the space): LibriSpeech's convention.
DEFAULT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"

_FIELDS = ("id", "audio", "offset", "duration", "text", "speaker", "extra")
_REQUIRED = ("id", "audio", "duration", "text", "speaker")


def is_pipe(audio: str) -> bool:
    """True for a Kaldi ``wav.scp`` command (``sph2pipe -f wav X.wv1 |``), False for a file path."""
    return audio.rstrip().endswith("|")


@dataclass(frozen=True)
class Utterance:
    """One utterance of a manifest."""

    id: str  # unique within a manifest, no whitespace
    audio: str  # file path, or a shell command ending in "|" whose stdout is a WAV file
    duration: float  # seconds of speech: the segment length with ``offset``, else the whole file's length
    text: str  # transcript (corpus cleanup applied; normalize_text is applied later by the tokenizers)
    speaker: str  # speaker id (for speaker-disjoint splits and per-speaker CMVN); never empty
    offset: float | None = None  # start of the segment in ``audio`` in seconds; None = the whole file
    extra: dict[str, Any] = field(default_factory=dict, hash=False)  # optional corpus-specific fields

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or any(c.isspace() for c in self.id):
            raise ValueError(f"utterance id must be a non-empty string without whitespace, got {self.id!r}")
        if not isinstance(self.audio, str) or not self.audio.strip():
            raise ValueError(
                f"utterance {self.id!r}: audio must be a non-empty path or command, got {self.audio!r}"
            )
        if not _positive_finite(self.duration):
            raise ValueError(
                f"utterance {self.id!r}: duration must be a finite number > 0, got {self.duration!r}"
            )
        if self.offset is not None and not (_finite(self.offset) and self.offset >= 0):
            raise ValueError(
                f"utterance {self.id!r}: offset must be None or a finite number >= 0, got {self.offset!r}"
            )
        if not isinstance(self.text, str):
            raise ValueError(f"utterance {self.id!r}: text must be a string, got {type(self.text).__name__}")
        if not isinstance(self.speaker, str) or not self.speaker:
            raise ValueError(
                f"utterance {self.id!r}: speaker must be a non-empty string, got {self.speaker!r}"
            )
        if not isinstance(self.extra, dict):
            raise ValueError(f"utterance {self.id!r}: extra must be a dict, got {type(self.extra).__name__}")

    def to_json(self) -> dict[str, Any]:
        """The manifest line as a dict (``offset`` and ``extra`` omitted when unset)."""
        d: dict[str, Any] = {"id": self.id, "audio": self.audio}
        if self.offset is not None:
            d["offset"] = round(float(self.offset), 6)
        d.update(duration=round(float(self.duration), 6), text=self.text, speaker=self.speaker)
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, base_dir: Path | None = None) -> Utterance:
        """Parse a manifest line; relative file paths are made absolute against ``base_dir`` if given."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a manifest line must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(_FIELDS))
        missing = [k for k in _REQUIRED if k not in d]
        if unknown or missing:
            raise ValueError(
                f"manifest fields: unknown {unknown}, missing {missing} (allowed: {list(_FIELDS)})"
            )
        audio = d["audio"]
        if base_dir is not None and isinstance(audio, str) and audio and not is_pipe(audio):
            if not os.path.isabs(audio):
                audio = str(base_dir / audio)
        offset = d.get("offset")
        return cls(
            id=d["id"],
            audio=audio,
            duration=_number(d["duration"], "duration"),
            text=d["text"],
            speaker=d["speaker"] if isinstance(d["speaker"], str) else str(d["speaker"]),
            offset=None if offset is None else _number(offset, "offset"),
            extra=dict(d.get("extra") or {}),
        )

    def load_audio(self, *, target_sr: int = 16000):  # -> torch.Tensor [N]
        """The utterance's samples ``[N]`` (float32, mono, ``target_sr``), cut to its segment if any."""
        from asr.audio import resample  # imported lazily: manifests do not need torch

        samples, rate = self.read_audio()
        return resample(samples, orig_sr=rate, target_sr=target_sr)

    def read_audio(self):  # -> (torch.Tensor [N], int)
        """The utterance's samples at the audio's own rate, cut to its segment if any: ``(samples [N], rate)``."""
        from asr.audio import read_audio_source

        if self.offset is None:
            return read_audio_source(self.audio)
        return read_audio_source(self.audio, offset=self.offset, duration=self.duration)


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _positive_finite(x: object) -> bool:
    return _finite(x) and x > 0  # type: ignore[operator]


def _number(x: object, what: str) -> float:
    if not _finite(x):
        raise ValueError(f"{what} must be a finite number, got {x!r}")
    return float(x)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ reading/writing


def text_lines(path: str | os.PathLike) -> Iterator[tuple[int, str, str | None]]:
    """``(line number, text, problem)`` per line of a UTF-8 text file, decoded line by line so that a bad byte costs
    its line alone and never changes text silently: ``problem`` is None, or says where the line is not UTF-8 (its
    ``text`` then has the bad bytes replaced, to name the line by; never use it as data)."""
    with Path(path).open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                yield lineno, raw.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                problem = f"not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
                yield lineno, raw.decode("utf-8", errors="replace"), problem


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a JSONL manifest. Errors name the file and line; duplicate ids are an error naming them."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"manifest {str(path)!r} does not exist or is not a file")
    base_dir = path.resolve().parent
    utts: list[Utterance] = []
    first_line: dict[str, int] = {}
    duplicates: dict[str, list[int]] = {}
    for lineno, line, problem in text_lines(path):
        if problem is not None:
            raise ValueError(f"{path}:{lineno}: bad manifest line: {problem}")
        if not line.strip():
            continue
        try:
            utt = Utterance.from_json(json.loads(line), base_dir=base_dir)
        except (json.JSONDecodeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: bad manifest line: {e}") from e
        if utt.id in first_line:
            duplicates.setdefault(utt.id, [first_line[utt.id]]).append(lineno)
        else:
            first_line[utt.id] = lineno
        utts.append(utt)
    if duplicates:
        shown = ", ".join(f"{k!r} (lines {v})" for k, v in list(duplicates.items())[:10])
        more = f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
        raise ValueError(f"manifest {str(path)!r} has {len(duplicates)} duplicate ids: {shown}{more}")
    return utts


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance]) -> Path:
    """Write a JSONL manifest atomically (a temporary file renamed into place). Duplicate ids raise."""
    path = Path(path)
    utts = list(utterances)
    counts = Counter(u.id for u in utts)
    dups = sorted(k for k, n in counts.items() if n > 1)
    if dups:
        raise ValueError(f"cannot write manifest {str(path)!r}: {len(dups)} duplicate ids {dups[:10]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, "".join(json.dumps(u.to_json(), ensure_ascii=False) + "\n" for u in utts))
    return path


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Issue:
    """One skipped or flagged item: what (an utterance id, file or line), why (a reason code) and details."""

    reason: str  # short code: missing_transcript, missing_audio, duplicate_id, out_of_alphabet, ...
    item: str  # the utterance id, or the file/line the problem is in
    detail: str = ""  # human-readable specifics (file names, characters, values)

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "item": self.item, "detail": self.detail}


@dataclass
class PrepareReport:
    """What preparing one manifest read, kept, skipped (not in the manifest) and flagged (kept, but suspect).

    Reason codes used by the readers:
      missing_transcript  audio (or a recording/segment) with no transcript line
      missing_audio       a transcript (or index entry) whose audio file/recording does not exist
      unreadable_audio    audio that exists but cannot be decoded (or whose pipe command fails)
      unsupported_audio   an audio form the loader cannot read (e.g. a Kaldi ark offset)
      duplicate_id        a second utterance with an id already taken (the first one is kept)
      bad_line            a line of a transcript/list file that cannot be parsed
      bad_segment         a Kaldi segment with impossible times
      empty_text          nothing left of the transcript after cleanup
      out_of_alphabet     characters outside the alphabet after normalize_text (flagged; skipped on request)
      excluded            left out by the corpus's standard definition (e.g. WSJ speaker 401 of si284)
      no_speech           a file that is not speech (e.g. ALSA's Noise.wav)
      too_short           audio under MIN_AUDIO_SECONDS (no model frame), found by the decode pass (verify_audio)
      transcript_not_utf8 a transcript line that is not UTF-8 (never kept with its bytes replaced)
      not_utf8            a line of a Kaldi table that is not UTF-8
    """

    name: str  # manifest name (the file is <name>.jsonl)
    corpus: str  # librispeech, kaldi, wsj, realspeech
    source: str  # where it was read from
    read: Counter = field(default_factory=Counter)  # things read: "audio files", "transcript lines", ...
    skipped: list[Issue] = field(default_factory=list)
    flagged: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # definitions used, fallbacks taken

    def skip(self, reason: str, item: str, detail: str = "") -> None:
        self.skipped.append(Issue(reason, item, detail))

    def flag(self, reason: str, item: str, detail: str = "") -> None:
        self.flagged.append(Issue(reason, item, detail))

    def note(self, text: str) -> None:
        logger.info("%s: %s", self.name, text)
        self.notes.append(text)

    def to_json(self, utterances: Sequence[Utterance]) -> dict[str, Any]:
        """The summary entry for this manifest (``utterances``: what was written)."""
        return {
            "corpus": self.corpus,
            "source": self.source,
            "manifest": f"{self.name}.jsonl",
            "utterances": len(utterances),
            "hours": round(sum(u.duration for u in utterances) / 3600.0, 6),
            "speakers": len({u.speaker for u in utterances}),
            "read": dict(sorted(self.read.items())),
            "skipped": _issues_json(self.skipped),
            "flagged": _issues_json(self.flagged),
            "notes": list(self.notes),
        }


def _issues_json(issues: Sequence[Issue]) -> dict[str, Any]:
    return {
        "count": len(issues),
        "by_reason": dict(sorted(Counter(i.reason for i in issues).items())),
        "items": [i.to_json() for i in issues],
    }


# ---------------------------------------------------------------------------------- shared reader helpers


def check_utterances(
    utterances: Iterable[Utterance],
    report: PrepareReport,
    *,
    alphabet: str | None = DEFAULT_ALPHABET,
    drop_out_of_alphabet: bool = False,
) -> list[Utterance]:
    """The checks every reader ends with: duplicate ids, empty text and the alphabet check.

    Duplicates after the first and empty transcripts are skipped. Utterances whose normalised text
    (:func:`asr.text.normalize.normalize_text`) holds characters outside ``alphabet`` (plus the space) are
    flagged and kept, or skipped with ``drop_out_of_alphabet``. ``alphabet=None`` turns the check off.
    """
    from asr.text.normalize import normalize_text

    allowed = None if alphabet is None else set(alphabet) | {" "}
    seen: set[str] = set()
    oov_chars: Counter = Counter()
    kept: list[Utterance] = []
    for u in utterances:
        if u.id in seen:
            report.skip("duplicate_id", u.id, f"id already used by an earlier utterance; this one: {u.audio}")
            continue
        seen.add(u.id)
        norm = normalize_text(u.text)
        if not norm:
            report.skip("empty_text", u.id, f"transcript {u.text!r} is empty after normalisation")
            continue
        if allowed is not None:
            bad = sorted({c for c in norm if c not in allowed})
            if bad:
                oov_chars.update(c for c in norm if c not in allowed)
                detail = f"characters {bad} in {norm!r}"
                if drop_out_of_alphabet:
                    report.skip("out_of_alphabet", u.id, detail)
                    continue
                report.flag("out_of_alphabet", u.id, detail)
        kept.append(u)
    if oov_chars:
        report.note(
            f"characters outside the alphabet {alphabet!r} after normalize_text: "
            + ", ".join(f"{c!r} x{n}" for c, n in oov_chars.most_common())
        )
    return kept


def refuse_pipes(utterances: Sequence[Utterance], *, opt_in: str, where: str = "the data") -> None:
    """ValueError when some utterances read their audio through a Kaldi pipe command (``cmd |``) and pipes are
    not allowed (:func:`asr.audio.pipes_allowed`); ``opt_in`` names the switch that allows them."""
    from asr.audio import pipes_allowed

    pipes = [u for u in utterances if is_pipe(u.audio)]
    if pipes and not pipes_allowed():
        raise ValueError(
            f"{where}: {len(pipes)} utterance(s) read their audio through a shell command (e.g. {pipes[0].id}: "
            f"{pipes[0].audio!r}); commands from data files run only with {opt_in} (check them first)"
        )


#: Audio shorter than this holds no model frame (4 feature frames: one 25 ms window and three 10 ms hops), so a
#: model can neither train on it nor recognise anything in it.
MIN_AUDIO_SECONDS = 0.055


def verify_audio(
    utterances: Sequence[Utterance],
    report: PrepareReport,
    *,
    jobs: int = 4,
    progress: bool = True,
    base_dir: Path | None = None,
) -> list[Utterance]:
    """Decode every utterance's audio (its segment) once, on ``jobs`` threads, and keep those that decode: a file
    that is truncated or corrupt past its header, or holds NaN/inf samples, is skipped as ``unreadable_audio``, one
    under :data:`MIN_AUDIO_SECONDS` as ``too_short`` (headers alone let both through, to fail later in training
    or evaluation). ``base_dir``: where relative audio paths start (the folder the manifest will be written to)."""

    def problem(u: Utterance) -> tuple[str, str] | None:
        if base_dir is not None and not is_pipe(u.audio) and not os.path.isabs(u.audio):
            u = Utterance.from_json(u.to_json(), base_dir=Path(base_dir))
        try:
            samples, rate = u.read_audio()
        except (ValueError, OSError) as e:  # AudioError is a ValueError
            return "unreadable_audio", f"{type(e).__name__}: {e}"
        seconds = samples.shape[0] / rate
        if seconds < MIN_AUDIO_SECONDS:
            need = MIN_AUDIO_SECONDS * 1000
            return "too_short", f"{u.audio}: {seconds * 1000:.0f} ms of audio, under the {need:.0f} ms of a model frame"
        return None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        found = list(tqdm(pool.map(problem, utterances), total=len(utterances), desc=f"{report.name} verify",
                          unit="file", disable=not progress, leave=False))  # fmt: skip
    kept = []
    for u, issue in zip(utterances, found):
        if issue is None:
            kept.append(u)
        else:
            report.skip(issue[0], u.id, issue[1])
    report.note(f"every utterance's audio decoded (--no-verify skips this): {len(utterances) - len(kept)} failed")
    return kept


def measure_durations(
    specs: Sequence[str], *, jobs: int = 4, desc: str = "durations"
) -> dict[str, float | str]:
    """Duration in seconds of each audio spec (file or pipe), or the error message for those that fail.

    Uses :func:`asr.audio.audio_duration` (headers where possible; pipes are run) on ``jobs`` threads.
    """
    from asr.audio import audio_duration

    unique = list(dict.fromkeys(specs))

    def one(spec: str) -> float | str:
        try:
            return float(audio_duration(spec))
        except (ValueError, OSError) as e:  # AudioError is a ValueError
            return f"{type(e).__name__}: {e}"

    out: dict[str, float | str] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        progress = tqdm(total=len(unique), desc=desc, unit="file", disable=len(unique) < 200, leave=False)
        for spec, result in zip(unique, pool.map(one, unique)):
            out[spec] = result
            progress.update(1)
        progress.close()
    return out


# ------------------------------------------------------------------------------------------- the summary

SUMMARY_JSON = "summary.json"
SUMMARY_TXT = "summary.txt"


def update_summary(out_dir: str | os.PathLike, entries: Mapping[str, dict[str, Any]]) -> Path:
    """Merge ``{manifest name: PrepareReport.to_json(...)}`` into ``out_dir/summary.json`` (atomically) and
    rewrite the readable ``summary.txt`` table from it. Entries of other manifests already there are kept."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SUMMARY_JSON
    merged: dict[str, Any] = {}
    if path.is_file():
        try:
            merged = dict(json.loads(path.read_text(encoding="utf-8")).get("manifests", {}))
        except (json.JSONDecodeError, AttributeError) as e:
            logger.warning("ignoring unreadable %s (%s): rewriting it", path, e)
    merged.update(entries)
    merged = dict(sorted(merged.items()))
    _atomic_write(path, json.dumps({"manifests": merged}, indent=1, ensure_ascii=False) + "\n")
    _atomic_write(out_dir / SUMMARY_TXT, format_summary(merged))
    return path


def format_summary(manifests: Mapping[str, dict[str, Any]], *, examples: int = 5) -> str:
    """A readable table of a summary's manifests, then every skip/flag reason with a few examples."""
    head = (
        f"{'manifest':<28} {'corpus':<11} {'utts':>8} {'hours':>9} {'spk':>5} {'skipped':>8} {'flagged':>8}"
    )
    lines = [head, "-" * len(head)]
    for name, e in manifests.items():
        lines.append(
            f"{name:<28} {e['corpus']:<11} {e['utterances']:>8} {e['hours']:>9.3f} {e['speakers']:>5} "
            f"{e['skipped']['count']:>8} {e['flagged']['count']:>8}"
        )
    for name, e in manifests.items():
        lines += ["", f"== {name}  (from {e['source']})"]
        lines.append("read: " + (", ".join(f"{k} {v}" for k, v in e["read"].items()) or "-"))
        for note in e["notes"]:
            lines.append(f"note: {note}")
        for kind in ("skipped", "flagged"):
            block = e[kind]
            for reason, n in block["by_reason"].items():
                lines.append(f"{kind} {reason}: {n}")
                shown = [i for i in block["items"] if i["reason"] == reason][:examples]
                for i in shown:
                    lines.append(f"    {i['item']}: {i['detail']}")
                if n > len(shown):
                    lines.append(f"    ... {n - len(shown)} more in {SUMMARY_JSON}")
    return "\n".join(lines) + "\n"
