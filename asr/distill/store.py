"""Teacher posteriors on disk: float16 log-probabilities per utterance in safetensors shards, written resumably.

A store is a folder of ``shard-<digest>.safetensors`` files. Each holds the posteriors ``[frames, tokens]`` of up
to :data:`SHARD_UTTERANCES` utterances, keyed by utterance id, and in its metadata the teacher's setup (model
version, token map, the student's tokens: :attr:`asr.distill.teacher.HamaTeacher.setup`). A shard is written to a
temporary name and renamed when whole, so a writer that stopped resumes by making the utterances no shard holds
(tools/teacher_posteriors.py; more manifests later add shards the same way); a shard's name is a digest of its
utterance ids and that setup. No pickles: safetensors only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["SHARD_UTTERANCES", "TeacherStore", "plan_shards", "write_shard"]

logger = logging.getLogger(__name__)

SHARD_UTTERANCES = 500


def _setup_key(setup: dict) -> str:
    return json.dumps(setup, sort_keys=True, ensure_ascii=False)


def plan_shards(ids: Sequence[str], setup: dict, *, size: int = SHARD_UTTERANCES) -> list[tuple[str, list[str]]]:
    """``[(file name, ids)]``: the sorted ids cut into shards of ``size``, each named by a digest of its ids and
    the setup (the same ids and setup give the same names: how a writer resumes)."""
    ordered = sorted(set(ids))
    out = []
    for k in range(0, len(ordered), size):
        part = ordered[k : k + size]
        digest = hashlib.sha1((_setup_key(setup) + "\n" + "\n".join(part)).encode()).hexdigest()[:16]
        out.append((f"shard-{digest}.safetensors", part))
    return out


def write_shard(path: Path, posteriors: dict[str, np.ndarray], setup: dict) -> None:
    """Write one shard atomically (a temporary file renamed into place)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tensors = {k: np.ascontiguousarray(v, dtype=np.float16) for k, v in posteriors.items()}
    save_file(tensors, str(tmp), metadata={"setup": _setup_key(setup)})
    os.replace(tmp, path)


class TeacherStore:
    """Read the posteriors of a store folder; every shard must have been made for ``tokens``.

    Shards are opened lazily, once per process (data-loader workers open their own)."""

    def __init__(self, folder: str | Path, tokens: Sequence[str]) -> None:
        from safetensors import safe_open

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(
                f"teacher posteriors: no folder {self.folder} (tools/teacher_posteriors.py makes it)"
            )
        self.tokens = list(tokens)
        self._where: dict[str, Path] = {}
        self.setup: dict | None = None
        for shard in sorted(self.folder.glob("shard-*.safetensors")):
            with safe_open(str(shard), framework="np") as f:
                meta = json.loads((f.metadata() or {}).get("setup", "{}"))
                if meta.get("tokens") != self.tokens:
                    raise ValueError(
                        f"{shard}: teacher posteriors made for the tokens {meta.get('tokens')}, the model has "
                        f"{self.tokens}"
                    )
                if self.setup is not None and meta != self.setup:
                    raise ValueError(f"{shard}: made with another teacher setup than the folder's other shards")
                self.setup = meta
                for key in f.keys():
                    self._where[key] = shard
        if not self._where:
            raise ValueError(f"teacher posteriors: {self.folder} holds no shard")
        self._open: tuple[int, dict[Path, object]] = (os.getpid(), {})

    def __len__(self) -> int:
        return len(self._where)

    @property
    def ids(self) -> list[str]:
        return sorted(self._where)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self._where

    @property
    def frame_seconds(self) -> float:
        return float(self.setup["frame_seconds"])

    def get(self, utt_id: str) -> np.ndarray | None:
        """``[frames, tokens]`` float32 log-posteriors of ``utt_id``, or None when the store lacks it."""
        from safetensors import safe_open

        shard = self._where.get(utt_id)
        if shard is None:
            return None
        pid, handles = self._open
        if pid != os.getpid():  # a forked worker: its own handles
            handles = {}
            self._open = (os.getpid(), handles)
        if shard not in handles:
            handles[shard] = safe_open(str(shard), framework="np")
        return handles[shard].get_tensor(utt_id).astype(np.float32)

    def __getstate__(self) -> dict:  # picklable for spawned loader workers: handles are reopened there
        state = dict(self.__dict__)
        state["_open"] = (-1, {})
        return state
