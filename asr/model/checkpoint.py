"""Checkpoints as safetensors files: weights and CMVN as tensors, everything else as JSON metadata.

Layout of one file:
    tensors   "model/<state_dict key>"  the CTCModel weights and persistent buffers
              "cmvn/<name>"             CMVN statistics (e.g. mean, std), whatever the front end saved
    metadata  "format"     "transcurrent-checkpoint"
              "version"    "1"
              "config"     the resolved ModelConfig as JSON
              "tokenizer"  the tokenizer's dict as JSON
              "extra"      anything else JSON-serialisable (training step, optimizer-free run info, ...)
Writing is atomic (a temporary file in the same folder, fsync, os.replace). Loading never unpickles: a bad,
truncated or foreign file, or weights that do not fit the saved config, raise ValueError naming the file.
Weights may be stored in float16 or bfloat16 (``save_checkpoint(..., weights_dtype=...)``: half the file, for a
shipped model); they are loaded into the model's float32 parameters. CMVN statistics always stay as saved.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from asr.model.config import ModelConfig
from asr.model.ctc import CTCModel

__all__ = ["Checkpoint", "FORMAT", "WEIGHTS_DTYPES", "load_checkpoint", "save_checkpoint"]

FORMAT = "transcurrent-checkpoint"
VERSION = "1"
_MODEL = "model/"
_CMVN = "cmvn/"
#: Storage dtypes for the model's floating-point weights, by name (metadata "weights_dtype").
WEIGHTS_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns: the rebuilt model (eval mode) and everything saved beside it."""

    model: CTCModel
    config: ModelConfig
    tokenizer: dict[str, Any]
    cmvn: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


def _to_json(what: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {what} must be JSON-serialisable: {exc}") from exc


def save_checkpoint(
    path: str | os.PathLike[str],
    model: CTCModel,
    config: ModelConfig,
    *,
    tokenizer_dict: dict[str, Any],
    cmvn_tensors: dict[str, torch.Tensor],
    extra: dict[str, Any] | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Write ``model`` (built from ``config``), its tokenizer, CMVN and extra info to ``path`` atomically.
    ``weights_dtype``: float32, or float16 / bfloat16 to store the floating-point weights in half the bytes (a
    weight that would overflow float16 is refused, naming it)."""
    path = Path(path)
    if not isinstance(model, CTCModel):
        raise ValueError(f"model must be a CTCModel, got {type(model).__name__}")
    if model.config != config:
        raise ValueError(f"config does not match the model's own config:\n  given {config}\n  model {model.config}")
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype {weights_dtype!r}: expected one of {', '.join(WEIGHTS_DTYPES)}")
    dtype = WEIGHTS_DTYPES[weights_dtype]
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if value.is_floating_point() and value.dtype != dtype:
            stored = value.to(dtype)
            if not bool(torch.isfinite(stored).all()) and bool(torch.isfinite(value).all()):
                raise ValueError(f"weight {key!r} does not fit {weights_dtype} (largest |value| {value.abs().max():g})")
            value = stored
        tensors[_MODEL + key] = value.contiguous()
    for name, value in cmvn_tensors.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"cmvn_tensors[{name!r}] must be a tensor, got {type(value).__name__}")
        tensors[_CMVN + name] = value.detach().to("cpu").contiguous().clone()
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_json(),
        "tokenizer": _to_json("tokenizer_dict", tokenizer_dict),
        "extra": _to_json("extra", extra if extra is not None else {}),
        "weights_dtype": weights_dtype,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as exc:  # its I/O errors (a full disk) as the OSError they are
            raise OSError(f"cannot write {path}: {exc}") from exc
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path, device: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} is not a readable safetensors file ({exc})") from exc
    return metadata, tensors


def read_extra(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``extra`` metadata of a checkpoint (training position, provenance), its header alone read: ValueError
    naming the file when it cannot be read."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("extra", "{}"))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"checkpoint {path}: cannot read its extra metadata ({exc})") from exc


def _parse_json(path: Path, metadata: dict[str, str], key: str) -> Any:
    if key not in metadata:
        raise ValueError(f"checkpoint {path} lacks the {key!r} metadata entry")
    try:
        return json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise ValueError(f"checkpoint {path}: metadata {key!r} is not valid JSON ({exc})") from exc


def load_checkpoint(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint`` and rebuild the model from its saved config."""
    path = Path(path)
    metadata, tensors = _read(path, str(torch.device(device)))
    if metadata.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} has format {metadata.get('format')!r}, expected {FORMAT!r}")
    if metadata.get("version") != VERSION:
        raise ValueError(f"checkpoint {path} has version {metadata.get('version')!r}, this code reads {VERSION!r}")
    try:
        config = ModelConfig.from_dict(_parse_json(path, metadata, "config"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path}: invalid model config ({exc})") from exc
    tokenizer = _parse_json(path, metadata, "tokenizer")
    extra = _parse_json(path, metadata, "extra")

    weights = {k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    cmvn = {k[len(_CMVN) :]: v for k, v in tensors.items() if k.startswith(_CMVN)}
    model = CTCModel(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(
        f"{k}: saved {tuple(weights[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in set(expected) & set(weights)
        if weights[k].shape != expected[k].shape
    )
    wrong += sorted(
        f"{k}: saved {weights[k].dtype} vs {expected[k].dtype}"
        for k in set(expected) & set(weights)
        if weights[k].is_floating_point() != expected[k].is_floating_point()
    )
    if missing or unexpected or wrong:
        raise ValueError(
            f"checkpoint {path} does not match its config: missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}, "
            f"shape or dtype mismatches {wrong[:8]}"
        )
    bad = sorted(k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise ValueError(f"checkpoint {path} holds non-finite weights in {bad[:8]}")
    # weights stored in half precision are widened to the parameters' dtype (float32) explicitly
    weights = {k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in weights.items()}
    model.load_state_dict(weights, strict=True)
    model.to(device).eval()
    return Checkpoint(model=model, config=config, tokenizer=tokenizer, cmvn=cmvn, extra=extra)
