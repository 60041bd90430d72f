"""Kaldi data directory -> manifest.

Files read (Kaldi's own formats, one ``<key> <value>`` per line):

- ``wav.scp`` (required): ``<recording> <path>`` or ``<recording> <command> |``, e.g.
  ``sph2pipe -f wav /wsj/si_tr_s/01i/01ic0201.wv1 |``; the manifest keeps the command as the utterance's
  audio. Relative paths are resolved against ``audio_root`` (default: the current directory, as Kaldi, whose
  recipes run from the directory holding ``data/``). Archive entries (``foo.ark:123``) cannot be read, nor
  commands whose program is not on ``PATH``: both are reported.
- ``text`` (required): ``<utterance> <transcript>``.
- ``segments`` (optional): ``<utterance> <recording> <start> <end>`` in seconds; ``end`` = -1 means to the end
  of the recording. Without it every recording is one utterance.
- ``utt2spk`` (optional): ``<utterance> <speaker>``. Without it the speaker is the utterance id (Kaldi's
  convention for unknown speakers), which the summary notes.
- ``utt2dur`` / ``reco2dur`` (optional): durations Kaldi already measured, used instead of opening the audio.

Durations: from ``segments`` (end - start) when present; else from ``utt2dur``; else from the audio header
(files) or by running the pipe command once and decoding its output (commands), on ``jobs`` threads. A command
that fails makes its utterances ``unreadable_audio`` skips, so a prepared manifest only holds audio that was
opened.

``text_format="wsj"`` rewrites transcripts produced by Kaldi's WSJ recipe (``<NOISE>``, ``,COMMA``,
``*WORD*``) into their spoken form (:func:`asr.data.wsj.spoken_text`), keeping the original in
``extra["kaldi_text"]``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import shutil
from pathlib import Path

from asr.data.manifest import PrepareReport, Utterance, is_pipe, measure_durations, text_lines

logger = logging.getLogger(__name__)

__all__ = ["TEXT_FORMATS", "is_kaldi_dir", "read_kaldi_dir"]

TEXT_FORMATS = ("plain", "wsj")
_ARK = re.compile(r"(^ark:|\.ark:\d+$)")


def is_kaldi_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder with ``wav.scp`` and ``text``."""
    path = Path(path)
    return (path / "wav.scp").is_file() and (path / "text").is_file()


def read_kaldi_dir(
    data_dir: str | os.PathLike,
    report: PrepareReport,
    *,
    audio_root: str | os.PathLike | None = None,
    text_format: str = "plain",
    jobs: int = 4,
) -> list[Utterance]:
    """Read a Kaldi data directory into utterances (sorted by id); problems go to ``report``."""
    data_dir = Path(data_dir)
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"text_format must be one of {TEXT_FORMATS}, got {text_format!r}")
    for required in ("wav.scp", "text"):
        if not (data_dir / required).is_file():
            raise ValueError(f"Kaldi data dir {str(data_dir)!r} has no {required!r} file")
    root = Path(audio_root) if audio_root is not None else Path.cwd()

    wav = _read_table(data_dir / "wav.scp", report, need_value=True)
    texts = _read_table(data_dir / "text", report, need_value=False)
    spk = (
        _read_table(data_dir / "utt2spk", report, need_value=True)
        if (data_dir / "utt2spk").is_file()
        else None
    )
    if spk is None:
        report.note("no utt2spk: each utterance is its own speaker (Kaldi convention)")

    # Recording -> audio spec, or the reason it cannot be used.
    audio: dict[str, str] = {}
    bad_audio: dict[str, tuple[str, str]] = {}
    for reco, (value, where) in wav.items():
        spec, problem = _resolve(value, root)
        if problem is None:
            audio[reco] = spec
        else:
            bad_audio[reco] = (problem[0], f"{problem[1]} ({where})")

    # Utterance -> (recording, offset, end or None).
    if (data_dir / "segments").is_file():
        segments, rejected = _read_segments(data_dir / "segments", report)
        used = {reco for reco, _, _ in segments.values()}
        for reco in sorted(set(wav) - used):
            report.skip("unused_recording", reco, "recording in wav.scp is not used by any segment")
    else:
        segments, rejected = {reco: (reco, None, None) for reco in wav}, set()

    for utt in sorted(set(texts) - set(segments) - rejected):
        what = "segment" if (data_dir / "segments").is_file() else "wav.scp entry"
        report.skip("missing_audio", utt, f"transcript at {texts[utt][1]} has no {what}")

    candidates: list[tuple[str, str, float | None, float | None]] = []
    for utt in sorted(segments):
        reco, start, end = segments[utt]
        if utt not in texts:
            report.skip("missing_transcript", utt, f"no line in {data_dir / 'text'}")
        elif reco in bad_audio:
            report.skip(bad_audio[reco][0], utt, bad_audio[reco][1])
        elif reco not in audio:
            report.skip("missing_audio", utt, f"recording {reco!r} is not in wav.scp")
        else:
            candidates.append((utt, reco, start, end))

    durations = _durations(data_dir, candidates, audio, report, jobs=jobs)
    utts: list[Utterance] = []
    for utt, reco, start, _ in candidates:
        if utt not in durations:
            continue  # skipped (reported) while measuring
        text = texts[utt][0]
        extra: dict[str, object] = {}
        if text_format == "wsj":
            from asr.data.wsj import spoken_text

            extra["kaldi_text"] = text
            text = spoken_text(text)
        if start is not None:
            extra["recording"] = reco
        speaker = utt
        if spk is not None:
            if utt in spk:
                speaker = spk[utt][0]
            else:
                report.flag("missing_speaker", utt, "not in utt2spk: speaker set to the utterance id")
        utts.append(
            Utterance(
                id=utt,
                audio=audio[reco],
                duration=durations[utt],
                text=text,
                speaker=speaker,
                offset=start,
                extra=extra,
            )
        )
    return utts


def _resolve(value: str, root: Path) -> tuple[str, tuple[str, str] | None]:
    """(audio spec, None) or ("", (reason, detail)) for a wav.scp value."""
    if is_pipe(value):
        missing = _missing_program(value)
        if missing is not None:
            return "", ("unreadable_audio", f"command {value!r}: program {missing!r} not found on PATH")
        return value.strip(), None
    if _ARK.search(value):
        return "", ("unsupported_audio", f"archive entry {value!r}: convert the data dir to files or pipes")
    path = Path(value)
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        return "", ("missing_audio", f"audio file {str(path)!r} does not exist")
    return str(path), None


def _missing_program(command: str) -> str | None:
    """The program a pipe command starts, if it cannot be found (checked once per program)."""
    try:
        words = shlex.split(command.rstrip().rstrip("|"))
    except ValueError:
        return None  # unusual quoting: leave it to the shell
    words = [w for w in words if not re.match(r"^\w+=", w)]  # leading VAR=value assignments
    if not words:
        return None
    return None if _program_exists(words[0]) else words[0]


@functools.lru_cache(maxsize=64)
def _program_exists(program: str) -> bool:
    if "/" in program:
        return os.access(program, os.X_OK)
    return shutil.which(program) is not None


def _durations(
    data_dir: Path,
    candidates: list[tuple[str, str, float | None, float | None]],
    audio: dict[str, str],
    report: PrepareReport,
    *,
    jobs: int,
) -> dict[str, float]:
    """Utterance -> duration; utterances whose audio cannot be measured are skipped in ``report``."""
    out: dict[str, float] = {}
    utt2dur = _read_floats(data_dir / "utt2dur", report)
    reco2dur = _read_floats(data_dir / "reco2dur", report)
    to_measure: dict[str, str] = {}  # utt -> recording whose length is needed
    for utt, reco, start, end in candidates:
        if start is not None and end is not None:
            out[utt] = end - start
        elif start is None and utt in utt2dur:
            out[utt] = utt2dur[utt]
        elif start is not None and reco in reco2dur:
            out[utt] = reco2dur[reco] - start
        else:
            to_measure[utt] = reco
    if to_measure:
        report.read["recordings measured"] += len({audio[r] for r in to_measure.values()})
        measured = measure_durations(
            [audio[r] for r in to_measure.values()], jobs=jobs, desc=f"{report.name} durations"
        )
        starts = {utt: start for utt, _, start, _ in candidates}
        for utt, reco in to_measure.items():
            d = measured[audio[reco]]
            if isinstance(d, str):
                report.skip("unreadable_audio", utt, d)
            else:
                out[utt] = d - (starts[utt] or 0.0)
    for utt in [u for u, d in out.items() if d <= 0]:
        report.skip("bad_segment", utt, f"duration {out.pop(utt):.3f} s <= 0 (segment starts past the end?)")
    return out


def _read_table(path: Path, report: PrepareReport, *, need_value: bool) -> dict[str, tuple[str, str]]:
    """``key -> (value, "file:line")``; duplicates after the first and malformed lines are reported."""
    table: dict[str, tuple[str, str]] = {}
    for lineno, line, problem in text_lines(path):
        if not line.strip():
            continue
        report.read[f"{path.name} lines"] += 1
        parts = line.strip().split(None, 1)
        where = f"{path}:{lineno}"
        if problem is not None:  # never kept with its bytes replaced
            report.skip("not_utf8", where, f"{problem}; the entry for {parts[0]!r} is not used")
            continue
        value = " ".join(parts[1].split()) if len(parts) > 1 else ""
        if need_value and not value:
            report.skip("bad_line", where, f"{line.strip()!r}: expected '<key> <value>'")
            continue
        if parts[0] in table:
            report.skip("duplicate_id", parts[0], f"second entry at {where} (first at {table[parts[0]][1]})")
            continue
        table[parts[0]] = (value, where)
    return table


def _read_segments(
    path: Path, report: PrepareReport
) -> tuple[dict[str, tuple[str, float | None, float | None]], set[str]]:
    """``utt -> (recording, start, end)`` (``end`` None for Kaldi's -1: to the end of the recording), and the
    utterances whose segment line was rejected (already reported)."""
    out: dict[str, tuple[str, float | None, float | None]] = {}
    rejected: set[str] = set()
    for utt, (value, where) in _read_table(path, report, need_value=True).items():
        fields = value.split()
        try:
            if len(fields) != 3:
                raise ValueError
            reco, start, end = fields[0], float(fields[1]), float(fields[2])
        except ValueError:
            report.skip("bad_line", where, f"{utt} {value!r}: expected '<utt> <recording> <start> <end>'")
            rejected.add(utt)
            continue
        if start < 0 or (end != -1 and end <= start):
            report.skip("bad_segment", utt, f"start {start} / end {end} at {where}")
            rejected.add(utt)
            continue
        out[utt] = (reco, start, None if end == -1 else end)
    return out, rejected


def _read_floats(path: Path, report: PrepareReport) -> dict[str, float]:
    if not path.is_file():
        return {}
    out: dict[str, float] = {}
    for key, (value, where) in _read_table(path, report, need_value=True).items():
        try:
            d = float(value)
        except ValueError:
            d = -1.0
        if d > 0:
            out[key] = d
        else:
            report.flag(
                "bad_line", where, f"duration {value!r} is not a positive number: measuring the audio"
            )
    return out
