"""The streaming benchmark's settings and model: chunk and frame rates, targets, the model configuration
(bundled or default, with overrides) and how it is stepped."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from asr.configs import apply_overrides
from asr.model.checkpoint import load_checkpoint
from asr.model.config import ModelConfig
from asr.model.ctc import CTCModel
from asr.model.inference import PackedStep
from asr.pipeline import resolve_model_path
from asr.text.base import Tokenizer
from asr.text.chars import CharTokenizer
from asr.text.tokenizers import tokenizer_from_dict

CHUNK_FRAMES = 16  # feature frames per step: 160 ms
FRAME_RATE = 100  # feature frames per second
CHUNK_S = CHUNK_FRAMES / FRAME_RATE
CHECKPOINTS_S = (10, 60, 600, 3600)
QUICK_CHECKPOINTS_S = (10, 60)
SPEECH_GLOB = "/usr/share/pocketsphinx/test/data/librivox/*.wav"
TARGET_FLAT = 1.1  # linear latency at the last checkpoint / at the first
TARGET_RTF = 0.05
TARGET_OF_BOUND = 0.5  # streams sustained / (matmul FLOP/s / model FLOPs per audio second)


#: ModelConfig fields that apply to linear attention only: dropped from the overrides of the softmax baseline.
LINEAR_ONLY = ("feature_map", "num_random_features", "decay", "decay_init_min", "decay_init_max", "output_norm",
               "attention_eps", "backend", "chunk_size")  # fmt: skip


def base_config(base: str) -> ModelConfig:
    """``"bundled"``: the bundled model's config (asr/assets/model); ``"default"``: ModelConfig's defaults with
    the character tokenizer's vocabulary."""
    if base == "bundled":
        return load_checkpoint(resolve_model_path(None)).config
    if base == "default":
        return ModelConfig(vocab_size=CharTokenizer().vocab_size)
    raise ValueError(f"base must be 'bundled' or 'default', got {base!r}")


def base_tokenizer(base: str) -> Tokenizer:
    """The tokenizer that goes with ``base_config(base)``: the bundled model's (characters or phones), or
    characters."""
    if base == "bundled":
        return tokenizer_from_dict(load_checkpoint(resolve_model_path(None)).tokenizer)
    if base == "default":
        return CharTokenizer()
    raise ValueError(f"base must be 'bundled' or 'default', got {base!r}")


def model_config(attention: str, overrides: dict[str, Any], base: str = "bundled") -> ModelConfig:
    """``base_config(base)`` with ``attention`` and the ``model.*`` overrides applied. The softmax baseline
    keeps the size and drops the linear-only fields (back to their defaults)."""
    cfg = base_config(base)
    if attention == "softmax":
        defaults = ModelConfig()
        cfg = dataclasses.replace(cfg, **{name: getattr(defaults, name) for name in LINEAR_ONLY})
        overrides = {k: v for k, v in overrides.items() if k not in LINEAR_ONLY}
    cfg = dataclasses.replace(cfg, attention=attention)
    return apply_overrides(cfg, overrides, prefix="model.")


def build_model(
    attention: str, *, seed: int, device: torch.device, overrides: dict[str, Any] | None = None, base: str = "bundled"
) -> CTCModel:
    """``model_config(attention, overrides, base)``, random weights (seeded) rounded to float16 values, eval mode.

    The rounding makes them what a model stored in float16 has (the bundled model is): the packed step reads such
    weights from float16 panels (kernels.gemm), so the speed of a step depends on it, not on the values."""
    torch.manual_seed(seed)
    model = CTCModel(model_config(attention, overrides or {}, base)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.float16).to(p.dtype))
    return model.to(device)


STEPS = ("packed", "packed_by_op", "packed_torch", "module")


def step_function(model: CTCModel, kind: str):
    """How the benchmark steps ``model``: ``"packed"`` (PackedStep as the Recognizer has it: on the CPU its
    linear attention in the fused C kernel, a few rows' blocks in one call each), ``"packed_by_op"`` (the same
    C kernels, every block op by op: ``fused=False``), ``"packed_torch"`` (PackedStep on PyTorch ops only) or
    ``"module"`` (CTCModel.step, the plain form)."""
    if kind == "packed":
        return PackedStep(model)
    if kind == "packed_by_op":
        return PackedStep(model, fused=False)
    if kind == "packed_torch":
        return PackedStep(model, kernel="torch")
    if kind == "module":
        return model.step
    raise ValueError(f"step must be one of {STEPS}, got {kind!r}")
