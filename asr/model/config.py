"""The model's configuration: one frozen dataclass, every field documented, validated on construction.

The default is sized for training on a 2-core CPU in hours: d_model 256, 8 blocks, 4 heads of 64,
feed-forward 1024, causal conv module of 15 frames -- 8.3 M parameters and ~0.46 GFLOP of forward compute per
second of audio (``CTCModel.flops_per_second``), so an epoch over 5 h of audio costs ~25 TFLOP of training
(forward + backward ~ 3x forward), tens of minutes on 2 cores; and one stream costs well under 1% of one
core's matmul rate at inference. Recipes override fields with a small YAML.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ATTENTIONS",
    "DECAYS",
    "FEATURE_MAPS",
    "OUTPUT_NORMS",
    "ModelConfig",
    "SUBSAMPLING_FACTOR",
]

ATTENTIONS = ("linear", "softmax")
FEATURE_MAPS = ("elu+1", "relu", "positive_random")
DECAYS = ("none", "per_head", "gated")
OUTPUT_NORMS = ("none", "rms", "layer")
LINEAR_BACKENDS = ("auto", "reference", "chunked", "recurrent", "triton")

#: Input feature frames per encoder frame (two stride-2 convolutions).
SUBSAMPLING_FACTOR = 4


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the CTC encoder. Frozen: build a new one with ``dataclasses.replace``."""

    # --- input / output ---------------------------------------------------------------------------
    vocab_size: int = 32  # CTC output units, blank included (the tokenizer decides which index is blank)
    input_dim: int = 80  # feature bins per input frame (log-mel after CMVN); >= 7 for the 3x3 stride-2 convs
    subsampling_channels: int = 64  # channels of both 3x3 stride-2 conv2d layers of the causal 4x subsampling

    # --- encoder shape ----------------------------------------------------------------------------
    d_model: int = 256  # width of the residual stream
    num_layers: int = 8  # number of pre-norm encoder blocks
    num_heads: int = 4  # attention heads; d_model must be divisible by it (head dim = d_model // num_heads)
    ff_dim: int = 1024  # hidden width of each block's feed-forward (SiLU)
    dropout: float = 0.1  # dropout on attention/conv/feed-forward outputs and inside the feed-forward

    # --- attention --------------------------------------------------------------------------------
    attention: str = "linear"  # "linear" (Katharopoulos et al. 2020) or "softmax" (the baseline, SDPA)
    causal: bool = True  # False: bidirectional attention and centred conv (offline only; no step())
    feature_map: str = "elu+1"  # linear only: phi for q and k (kernels.get_feature_map): "elu+1" (the paper),
    #   "relu", or "positive_random" (FAVOR+ random features of the softmax kernel, seeded per layer)
    num_random_features: int = 64  # linear + "positive_random" only: random features (the key dim Dk)
    decay: str = "none"  # linear causal only: "none" (paper's pure sum), "per_head" learned constant, "gated"
    #   ("per_head": g_h = sigmoid(theta_h) in (0, 1); "gated": log g_t = logsigmoid(x W_g + b_g) per head,
    #   as in GLA)
    decay_init_min: float = 0.9  # initial decay of the fastest head (also the gate bias for "gated")
    decay_init_max: float = 0.999  # initial decay of the slowest head; heads spaced geometrically in 1 - g
    output_norm: str = "none"  # norm of each head's attention output before the out projection: "none", "rms",
    #   "layer" (LayerNorm per head, i.e. GroupNorm with one group per head)
    attention_window: int | None = None  # softmax only: attend to the last W encoder frames (W >= 1; the KV
    #   cache then holds W - 1 frames); None = the whole history (the cache grows without bound)
    attention_eps: float = 1e-6  # linear only: added to the normaliser phi(q) . z
    backend: str = "auto"  # linear causal only: kernels.causal_linear_attention backend for forward and step;
    #   "auto": forward picks triton on CUDA, chunked on CPU, and step uses the lean streaming form
    #   kernels.linear_attention.causal_linear_attention_step (same maths, a dozen ops per chunk)
    chunk_size: int = 64  # linear causal only: the kernel's chunk length (chunked/triton backends)

    # --- convolution module -----------------------------------------------------------------------
    conv_module: bool = True  # add a depthwise convolution module to each block (the model's local/positional
    #   information besides the causal subsampling and the causal mask)
    conv_kernel_size: int = 15  # depthwise kernel in encoder frames (causal: left context K - 1; odd if not causal)

    def __post_init__(self) -> None:
        _require_int(self, "vocab_size", 2)
        _require_int(self, "input_dim", 7)
        _require_int(self, "subsampling_channels", 1)
        _require_int(self, "d_model", 1)
        _require_int(self, "num_layers", 1)
        _require_int(self, "num_heads", 1)
        _require_int(self, "ff_dim", 1)
        _require_int(self, "num_random_features", 1)
        _require_int(self, "chunk_size", 1)
        _require_int(self, "conv_kernel_size", 1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        _require_choice(self, "attention", ATTENTIONS)
        _require_choice(self, "feature_map", FEATURE_MAPS)
        _require_choice(self, "decay", DECAYS)
        _require_choice(self, "output_norm", OUTPUT_NORMS)
        _require_choice(self, "backend", LINEAR_BACKENDS)
        if not isinstance(self.causal, bool):
            raise ValueError(f"causal must be a bool, got {self.causal!r}")
        if not isinstance(self.conv_module, bool):
            raise ValueError(f"conv_module must be a bool, got {self.conv_module!r}")
        for name in ("decay_init_min", "decay_init_max"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        if self.decay_init_min > self.decay_init_max:
            raise ValueError(f"decay_init_min={self.decay_init_min} must be <= decay_init_max={self.decay_init_max}")
        if not isinstance(self.attention_eps, (int, float)) or not self.attention_eps >= 0:
            raise ValueError(f"attention_eps must be >= 0, got {self.attention_eps!r}")
        if self.attention == "softmax":
            if self.decay != "none":
                raise ValueError(f"decay={self.decay!r} applies to linear attention only (attention='softmax')")
            if self.feature_map != "elu+1":
                raise ValueError(
                    f"feature_map={self.feature_map!r} applies to linear attention only "
                    "(attention='softmax'); "
                    "leave it at its default"
                )
        if self.attention_window is not None:
            if self.attention != "softmax":
                raise ValueError(f"attention_window={self.attention_window} applies to softmax attention only")
            _require_int(self, "attention_window", 1)
            if not self.causal:
                raise ValueError("attention_window needs causal=True (a window is a streaming KV-cache bound)")
        if not self.causal:
            if self.decay != "none":
                raise ValueError(f"decay={self.decay!r} needs causal=True (decay is a recurrence over time)")
            if self.conv_module and self.conv_kernel_size % 2 == 0:
                raise ValueError(
                    f"conv_kernel_size={self.conv_kernel_size} must be odd for a non-causal (centred) conv"
                )

    # --- derived ----------------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        """Per-head width of q, k (before the feature map) and v."""
        return self.d_model // self.num_heads

    @property
    def subsampling_factor(self) -> int:
        """Input frames per encoder frame; ``step`` takes chunks that are a multiple of it."""
        return SUBSAMPLING_FACTOR

    def initial_decays(self) -> list[float]:
        """Per-head initial decay g_h: geometric in (1 - g) from decay_init_min to decay_init_max."""
        lo, hi = 1.0 - self.decay_init_min, 1.0 - self.decay_init_max  # lo > hi
        if self.num_heads == 1:
            return [self.decay_init_min]
        ratio = math.log(hi / lo) / (self.num_heads - 1)
        return [1.0 - lo * math.exp(ratio * h) for h in range(self.num_heads)]

    # --- (de)serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a mapping (a checkpoint's or a recipe's); unknown keys raise ValueError."""
        if not isinstance(values, dict):
            raise ValueError(f"model config must be a mapping, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)


def _require_int(cfg: ModelConfig, name: str, minimum: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _require_choice(cfg: ModelConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}")
