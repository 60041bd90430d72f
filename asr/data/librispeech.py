"""LibriSpeech layout -> manifests.

A subset folder holds ``<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac`` and one
``<speaker>-<chapter>.trans.txt`` per chapter whose lines are ``<utterance id> <TRANSCRIPT>``. The root of a
download (``LibriSpeech/``) holds several subsets (``train-clean-100``, ``dev-clean``, ...): one manifest
each, named after the subset folder. The synthetic corpus (``asr synth``) is written in this layout too, so
besides FLAC the reader accepts WAV, OGG and Opus audio.

Every audio file without a transcript line, transcript line without audio, duplicate, unreadable file, or
audio file in an unexpected place is reported in the :class:`~asr.data.manifest.PrepareReport`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from asr.data.manifest import PrepareReport, Utterance, measure_durations, text_lines

logger = logging.getLogger(__name__)

__all__ = ["AUDIO_EXTENSIONS", "find_librispeech_subsets", "is_librispeech_subset", "read_librispeech_subset"]

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".opus")
_TRANS_SUFFIX = ".trans.txt"


def is_librispeech_subset(path: str | os.PathLike) -> bool:
    """True if ``path`` holds ``<speaker>/<chapter>/*.trans.txt``."""
    path = Path(path)
    return path.is_dir() and next(path.glob(f"*/*/*{_TRANS_SUFFIX}"), None) is not None


def find_librispeech_subsets(root: str | os.PathLike) -> list[Path]:
    """``[root]`` if it is a subset folder, else its subset sub-folders (sorted); ValueError if none."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"LibriSpeech source {str(root)!r} is not a directory")
    if is_librispeech_subset(root):
        return [root]
    subsets = sorted(d for d in root.iterdir() if d.is_dir() and is_librispeech_subset(d))
    if not subsets:
        raise ValueError(
            f"{str(root)!r} is neither a LibriSpeech subset folder (<speaker>/<chapter>/<speaker>-<chapter>"
            f"{_TRANS_SUFFIX}) nor a folder of subsets"
        )
    return subsets


def read_librispeech_subset(
    subset: str | os.PathLike, report: PrepareReport, *, jobs: int = 4
) -> list[Utterance]:
    """Read one subset folder into utterances (sorted by id); problems go to ``report``."""
    subset = Path(subset).resolve()
    audio: dict[str, tuple[Path, str, str]] = {}  # id -> (file, speaker, chapter)
    texts: dict[str, tuple[str | None, str]] = {}  # id -> (text or None if not UTF-8, "file:line")
    for dirpath, dirnames, filenames in os.walk(subset, followlinks=True):
        dirnames.sort()
        here = Path(dirpath)
        depth = len(here.relative_to(subset).parts)
        for name in sorted(filenames):
            file = here / name
            if name.endswith(_TRANS_SUFFIX):
                report.read["transcript files"] += 1
                _read_trans(file, texts, report)
            elif file.suffix.lower() in AUDIO_EXTENSIONS:
                report.read["audio files"] += 1
                if depth != 2:
                    report.skip(
                        "missing_transcript",
                        str(file),
                        "audio file outside <speaker>/<chapter>/ (LibriSpeech layout): no transcript applies",
                    )
                    continue
                speaker, chapter = here.parent.name, here.name
                utt_id = file.name[: -len(file.suffix)]
                if utt_id in audio:
                    report.skip("duplicate_id", utt_id, f"{file} (already have {audio[utt_id][0]})")
                    continue
                if not utt_id.startswith(f"{speaker}-{chapter}-"):
                    report.flag("unexpected_name", utt_id, f"{file} is not named {speaker}-{chapter}-NNNN")
                audio[utt_id] = (file, speaker, chapter)
            else:
                report.read["other files (ignored)"] += 1

    for utt_id in sorted(set(texts) - set(audio)):
        if texts[utt_id][0] is not None:  # (a line that is not UTF-8 was reported already)
            report.skip("missing_audio", utt_id, f"transcript line at {texts[utt_id][1]} has no audio file")
    pending = []
    for utt_id in sorted(audio):
        file, speaker, chapter = audio[utt_id]
        if texts.get(utt_id, ("", ""))[0] is None:
            continue  # its transcript line is not UTF-8: reported
        if utt_id not in texts:
            report.skip(
                "missing_transcript", utt_id, f"no line for {file.name} in the chapter's {_TRANS_SUFFIX}"
            )
            continue
        pending.append(utt_id)

    durations = measure_durations(
        [str(audio[u][0]) for u in pending], jobs=jobs, desc=f"{report.name} durations"
    )
    utts = []
    for utt_id in pending:
        file, speaker, chapter = audio[utt_id]
        d = durations[str(file)]
        if isinstance(d, str):
            report.skip("unreadable_audio", utt_id, d)
            continue
        utts.append(
            Utterance(
                id=utt_id,
                audio=str(file),
                duration=d,
                text=texts[utt_id][0],
                speaker=speaker,
                extra={"chapter": chapter},
            )
        )
    return utts


def _read_trans(file: Path, texts: dict[str, tuple[str | None, str]], report: PrepareReport) -> None:
    """Lines ``ID TEXT`` into ``texts``; a line that is not UTF-8 is skipped (reported) and its id kept with text None
    (so its audio is not reported again as lacking a transcript)."""
    for lineno, line, problem in text_lines(file):
        if not line.strip():
            continue
        report.read["transcript lines"] += 1
        parts = line.split(None, 1)
        utt_id, text = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        where = f"{file}:{lineno}"
        if problem is not None:
            report.skip("transcript_not_utf8", utt_id, f"{where}: {problem}; the line is not used")
            texts.setdefault(utt_id, (None, where))
            continue
        if utt_id in texts:
            report.skip("duplicate_id", utt_id, f"second transcript line at {where} (first at {texts[utt_id][1]})")
            continue
        texts[utt_id] = (" ".join(text.split()), where)
