"""Resumable training checkpoints, written atomically.

A checkpoint is two files: ``NAME.safetensors`` (the model bundle: weights, config, tokenizer, CMVN, front end,
and the training position in its metadata) and ``NAME.optim.pt`` (optimiser and scheduler state: tensors and
plain containers only, read back with ``torch.load(weights_only=True)``). The text file ``latest`` names the
newest complete checkpoint; it is replaced only after both files are on disk, so a kill at any moment leaves a
consistent ``latest``.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from asr.pipeline import AsrModel, load_asr_model, save_asr_model

logger = logging.getLogger(__name__)

_STEP = re.compile(r"^step-(\d+)\.safetensors$")
_EPOCH = re.compile(r"^epoch-(\d+)\.safetensors$")


@dataclass(frozen=True)
class Position:
    step: int  # optimiser steps done
    epoch: int  # current epoch (0-based)
    batches_done: int  # batches of ``epoch`` this rank has trained on


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
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
    extra = {
        "train_config": train_config,
        "position": {"step": position.step, "epoch": position.epoch, "batches_done": position.batches_done},
    }
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
    name = pointer.read_text().strip()
    if not (ckpt_dir / f"{name}.safetensors").is_file() or not (ckpt_dir / f"{name}.optim.pt").is_file():
        raise ValueError(f"{pointer} names {name!r} but its files are missing in {ckpt_dir}")
    return name


def load_training_checkpoint(
    ckpt_dir: Path, name: str, *, device: torch.device
) -> tuple[AsrModel, Position, dict]:
    bundle = load_asr_model(ckpt_dir / f"{name}.safetensors", device=device)
    pos = bundle.extra.get("position")
    if not pos:
        raise ValueError(
            f"{ckpt_dir / name}.safetensors holds no training position: not a training checkpoint"
        )
    state = torch.load(ckpt_dir / f"{name}.optim.pt", map_location=device, weights_only=True)
    return bundle, Position(**pos), state


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
