"""Resumable training checkpoints, written atomically.

A checkpoint is two files: ``NAME.safetensors`` (the model bundle: weights, config, tokenizer, CMVN, front end,
and the training position in its metadata) and ``NAME.optim.pt`` (optimiser and scheduler state: tensors and
plain containers only, read back with ``torch.load(weights_only=True)``). The text file ``latest`` names the
newest complete checkpoint; it is replaced only after both files are on disk, so a kill at any moment leaves a
consistent ``latest``. A write that fails (a full disk) leaves no partial file and ``latest`` where it was.

Resuming tries :func:`resume_candidates` in turn: the checkpoint ``latest`` names, then every other complete pair
from the newest training position back; one that cannot be read (truncated, not a training checkpoint, a pickle
where the optimiser state should be) is set aside as ``NAME.*.bad`` with a warning and the one before is used.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from asr.model.checkpoint import read_extra
from asr.pipeline import AsrModel, load_asr_model, save_asr_model

logger = logging.getLogger(__name__)

_STEP = re.compile(r"^step-(\d+)\.safetensors$")
_EPOCH = re.compile(r"^epoch-(\d+)\.safetensors$")


@dataclass(frozen=True)
class Position:
    step: int  # optimiser steps done
    epoch: int  # current epoch (0-based)
    batches_done: int  # batches of ``epoch`` this rank has trained on
    # the current epoch's running train loss (dev.csv's train_loss covers the whole epoch across a resume);
    # checkpoints written before these existed resume with zeros
    loss_sum: float = 0.0  # sum of the epoch's batch losses so far
    loss_count: int = 0  # batches summed in loss_sum
    skipped_batches: int = 0  # batches of the epoch skipped so far (no audio, non-finite gradients)

    def order(self) -> tuple[int, int, int]:
        """Sort key: later in training is larger."""
        return (self.step, self.epoch, self.batches_done)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through memory, then one write: a failing write (a full disk) is the OSError it is (torch's own
    file writer reports it as an obscure RuntimeError)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_training_checkpoint(
    ckpt_dir: Path,
    name: str,
    bundle: AsrModel,
    *,
    position: Position,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    train_config: dict[str, Any],
) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"{name}.safetensors"
    extra = {"train_config": train_config, "position": asdict(position)}
    for stale in (path, ckpt_dir / f"{name}.optim.pt"):  # a pair of this name from before a fall-back resume
        stale.unlink(missing_ok=True)
    _atomic_torch_save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        ckpt_dir / f"{name}.optim.pt",
    )
    save_asr_model(path, bundle, extra=extra)
    _atomic_write_text(ckpt_dir / "latest", name + "\n")
    logger.info("checkpoint %s (step %d, epoch %d)", path, position.step, position.epoch)
    return path


def latest_checkpoint(ckpt_dir: Path) -> str | None:
    pointer = ckpt_dir / "latest"
    if not pointer.is_file():
        return None
    name = pointer.read_text(errors="replace").strip()
    if not (ckpt_dir / f"{name}.safetensors").is_file() or not (ckpt_dir / f"{name}.optim.pt").is_file():
        raise ValueError(f"{pointer} names {name!r} but its files are missing in {ckpt_dir}")
    return name


def has_checkpoints(ckpt_dir: Path) -> bool:
    """Whether ``ckpt_dir`` holds any checkpoint (or a ``latest`` pointer), usable or not."""
    return ckpt_dir.is_dir() and ((ckpt_dir / "latest").exists() or any(ckpt_dir.glob("*.safetensors")))


def _position_in(path: Path) -> tuple[int, int, int] | None:
    """The training position in a checkpoint's metadata (its header alone is read), or None if unreadable."""
    try:
        return Position(**read_extra(path)["position"]).order()
    except Exception:  # noqa: BLE001 (any unreadable header: this candidate goes last and fails when tried)
        return None


def resume_candidates(ckpt_dir: Path) -> list[str]:
    """Checkpoint names to resume from, best first: the one ``latest`` names (if its two files exist), then every
    other complete pair (``NAME.safetensors`` + ``NAME.optim.pt``) from the newest training position back."""
    if not ckpt_dir.is_dir():
        return []
    names = [p.name[: -len(".safetensors")] for p in ckpt_dir.glob("*.safetensors")]
    names = [n for n in names if not n.startswith(".") and (ckpt_dir / f"{n}.optim.pt").is_file()]
    try:
        pointed = latest_checkpoint(ckpt_dir)
    except (ValueError, OSError) as exc:
        logger.warning("%s; looking for the newest complete checkpoint instead", exc)
        pointed = None
    positions = {n: _position_in(ckpt_dir / f"{n}.safetensors") for n in names}
    rest = sorted((n for n in names if n != pointed), key=lambda n: (positions[n] is not None, positions[n] or ()),
                  reverse=True)  # fmt: skip
    return ([pointed] if pointed in names else []) + rest


def set_aside(ckpt_dir: Path, name: str) -> None:
    """Rename an unusable checkpoint's files to ``*.bad`` (kept for inspection, never tried again)."""
    for suffix in (".safetensors", ".optim.pt"):
        path = ckpt_dir / f"{name}{suffix}"
        if path.exists():
            os.replace(path, path.with_name(path.name + ".bad"))


def load_training_checkpoint(
    ckpt_dir: Path, name: str, *, device: torch.device
) -> tuple[AsrModel, Position, dict]:
    """A checkpoint's model bundle, position and optimiser/scheduler state; ValueError naming the file for a
    missing, truncated or foreign one (nothing is unpickled: the state is read with weights_only=True)."""
    bundle = load_asr_model(ckpt_dir / f"{name}.safetensors", device=device)
    pos = bundle.extra.get("position")
    if not pos:
        raise ValueError(
            f"{ckpt_dir / name}.safetensors holds no training position: not a training checkpoint"
        )
    try:
        position = Position(**pos)
    except TypeError as exc:
        raise ValueError(f"{ckpt_dir / name}.safetensors: unreadable training position {pos} ({exc})") from None
    optim = ckpt_dir / f"{name}.optim.pt"
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign pickle: the error below says it all
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(optim, map_location=device, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{optim} is not a readable optimiser state (truncated, or not ours): {first}") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler"} <= set(state):
        raise ValueError(f"{optim} holds no optimiser and scheduler state")
    return bundle, position, state


def prune_step_checkpoints(ckpt_dir: Path, keep: int) -> None:
    steps = sorted((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP.match(p.name)))
    current = (ckpt_dir / "latest").read_text().strip() if (ckpt_dir / "latest").is_file() else None
    for _, p in steps[:-keep] if keep > 0 else steps:
        if p.stem == current:
            continue
        p.unlink(missing_ok=True)
        p.with_name(p.stem + ".optim.pt").unlink(missing_ok=True)


def epoch_checkpoints(ckpt_dir: Path) -> list[Path]:
    epochs = sorted((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _EPOCH.match(p.name)))
    return [p for _, p in epochs]


def average_checkpoints(paths: list[Path], *, device: torch.device | str = "cpu") -> AsrModel:
    """Mean of the weights of ``paths`` (same config); the bundle's other parts come from the last one."""
    if not paths:
        raise ValueError("no checkpoints to average")
    bundles = [load_asr_model(p, device=device) for p in paths]
    configs = {b.model.config for b in bundles}
    if len(configs) != 1:
        raise ValueError(
            f"cannot average checkpoints with different model configs: {[str(p) for p in paths]}"
        )
    out = bundles[-1]
    states = [b.model.state_dict() for b in bundles]
    averaged = {}
    for key, value in states[-1].items():
        if value.is_floating_point():
            averaged[key] = sum(s[key].double() for s in states).div(len(states)).to(value.dtype)
        else:
            averaged[key] = value
    out.model.load_state_dict(averaged)
    out.extra = {k: v for k, v in out.extra.items() if k != "position"}  # no longer a resumable position
    return out
