"""The corpora the bundle's recipes read, made again on a machine that lacks them (tools/make_bundle.py's steps
``corpus`` and ``kokoro``). Corpora live outside git (data/), so a fresh machine starts here; every command is
resumable (``asr synth`` skips the utterances already written; scores are cached) and each step skips what exists.

- ``build_main``: data/realspeech (``asr prepare realspeech``), the clean corpus (16 h, seed 1) filtered by
  tools/score_voices.py, the varied corpus (5 h, seed 2) without the excluded settings, and
  data/manifests/synth_train_all.jsonl (the filtered clean train split + the varied one).
- ``build_kokoro``: Kokoro-82M's corpora, each with its settings scored by Whisper and its filtered train split in
  data/manifests/: the ones the bundle's recipe reads (``recipes/synth/phones_kokoro_varied.yaml``). ~1.5 h of wall
  time each on 2 cores alone (session 33: 1.26 utterances a second); stop and rerun at will.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

PY = sys.executable
ASR = [PY, "-m", "asr.cli"]
CLEAN, VARIED, REAL = Path("data/synth_clean"), Path("data/synth_varied"), Path("data/realspeech")
MANIFESTS = Path("data/manifests")
SCORES = Path("runs/score_voices/synth_clean")
REAL_DEV = REAL / "realspeech-dev.jsonl"


@dataclasses.dataclass(frozen=True)
class KokoroCorpus:
    name: str  # data/<name>; runs/score_voices/<name>; data/manifests/<name>_train_filtered.jsonl
    preset: str
    hours: float
    seed: int

    @property
    def out(self) -> Path:
        return Path("data") / self.name

    @property
    def manifest(self) -> Path:
        return MANIFESTS / f"{self.name}_train_filtered.jsonl"


# The plans the committed bundle was trained on (its model card): the same preset, hours and seed plan the same
# utterances, so a corpus made again (or resumed) is the same corpus.
KOKORO_CORPORA = (
    KokoroCorpus("synth_kokoro", "clean", 4, 3),  # recipes/synth/phones_kokoro.yaml
    KokoroCorpus("synth_kokoro_varied", "varied", 4, 4),  # recipes/synth/phones_kokoro_varied.yaml
)

Shell = Callable[[list[str]], None]


def espeak_as_patterns(keys: list[str]) -> list[str]:
    """espeak-ng draws each voice's rate per seed: exclude the voice at any rate; other keys stay exact."""
    out = {re.sub(r"^(espeak-ng:[^:]+):rate.*$", r"\1:*", k) for k in keys}
    return sorted(out)


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_main(root: Path, sh: Shell) -> None:
    if not (root / REAL_DEV).is_file():  # first: every evaluation needs the dev and test sets
        sh([*ASR, "prepare", "realspeech", "--out", str(REAL)])
    if not (root / CLEAN / "synth_summary.json").is_file():
        sh([*ASR, "synth", "--out", str(CLEAN), "--preset", "clean", "--hours", "16", "--seed", "1"])
    if not (root / SCORES / "train_filtered.jsonl").is_file():
        sh([PY, "tools/score_voices.py", str(CLEAN), "--k", "8", "--out", str(SCORES)])
    (root / MANIFESTS).mkdir(parents=True, exist_ok=True)
    filtered = MANIFESTS / "synth_clean_train_filtered.jsonl"
    shutil.copyfile(root / SCORES / "train_filtered.jsonl", root / filtered)
    excluded = [k.strip() for k in (root / SCORES / "excluded_settings.txt").read_text().splitlines() if k.strip()]
    patterns = MANIFESTS / "excluded_settings_patterns.txt"
    (root / patterns).write_text("\n".join(espeak_as_patterns(excluded)) + "\n")
    if not (root / VARIED / "synth_summary.json").is_file():
        sh([*ASR, "synth", "--out", str(VARIED), "--preset", "varied", "--hours", "5", "--seed", "2",
            "--exclude-settings", str(patterns)])  # fmt: skip
    varied = MANIFESTS / "synth_varied_train.jsonl"
    if not (root / varied).is_file():
        from asr.data.manifest import write_manifest
        from asr.data.sources import load_utterances

        # Both corpora number speakers and chapters from 100 / 1000: prefix the varied ones so ids stay unique.
        utts = [
            dataclasses.replace(u, id=f"varied-{u.id}", speaker=f"varied-{u.speaker}")
            for u in load_utterances(root / VARIED / "train")
        ]
        write_manifest(root / varied, utts)
    combined = root / MANIFESTS / "synth_train_all.jsonl"
    lines = _lines(root / filtered) + _lines(root / varied)
    ids = [json.loads(line)["id"] for line in lines]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"{combined}: {len(ids) - len(set(ids))} utterance ids appear twice")
    combined.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{combined}: {len(lines)} utterances")


def _complete(root: Path, corpus: Path) -> bool:
    """Whether ``asr synth`` finished this corpus: its summary is written at the end and counts what is missing."""
    summary = root / corpus / "synth_summary.json"
    return summary.is_file() and json.loads(summary.read_text()).get("utterances_missing", 1) == 0


def build_kokoro(root: Path, sh: Shell, corpora: tuple[KokoroCorpus, ...] = KOKORO_CORPORA) -> None:
    """Each Kokoro corpus: synthesised (or resumed) until complete, scored (k = 8 a setting, as the others), and
    its filtered train split copied to data/manifests/ (only when it changed: a manifest is never rewritten under
    a run with the same contents)."""
    (root / MANIFESTS).mkdir(parents=True, exist_ok=True)
    for c in corpora:
        scores = Path("runs/score_voices") / c.name
        if not _complete(root, c.out):
            sh([*ASR, "synth", "--out", str(c.out), "--engines", "kokoro", "--preset", c.preset,
                "--hours", f"{c.hours:g}", "--seed", str(c.seed)])  # fmt: skip
            if not _complete(root, c.out):
                raise SystemExit(f"{c.out}: asr synth ended with utterances missing; rerun to resume")
            shutil.rmtree(root / scores, ignore_errors=True)  # scored on a partial corpus: score again
        if not (root / scores / "train_filtered.jsonl").is_file():
            sh([PY, "tools/score_voices.py", str(c.out), "--k", "8", "--out", str(scores)])
        src, dst = root / scores / "train_filtered.jsonl", root / c.manifest
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)
        print(f"{c.manifest}: {len(_lines(dst))} utterances")
