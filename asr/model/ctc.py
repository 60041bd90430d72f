"""CTCModel: the encoder and a linear CTC head: log-probabilities over the vocabulary (blank included)."""

from __future__ import annotations

import torch
from torch import nn

from asr.model.config import ModelConfig
from asr.model.encoder import Encoder, EncoderState

__all__ = ["CTCModel"]


class CTCModel(nn.Module):
    """``forward`` for training and offline decoding, ``step`` for streaming; same weights, same numbers."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise ValueError(f"CTCModel needs a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.encoder = Encoder(config)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    @property
    def subsampling_factor(self) -> int:
        """Feature frames per output frame; ``step`` chunks must hold a positive multiple of it."""
        return self.config.subsampling_factor

    def _check_feats(self, feats: torch.Tensor) -> None:
        if not isinstance(feats, torch.Tensor) or feats.dim() != 3 or feats.shape[-1] != self.config.input_dim:
            shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise ValueError(f"features must be [B, T, {self.config.input_dim}], got {shape}")
        if not feats.is_floating_point():
            raise ValueError(f"features must be floating point, got {feats.dtype}")

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats [B, T, input_dim], lengths [B] -> (log_probs [B, T // 4, V] float32, out_lengths [B]).

        out_lengths = lengths // 4; frames past them are padding. Utterances shorter than 4 frames have none.
        """
        self._check_feats(feats)
        if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1 or lengths.shape[0] != feats.shape[0]:
            shape = tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__
            raise ValueError(f"lengths must be a 1-D tensor of {feats.shape[0]} entries, got {shape}")
        if lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be integers, got {lengths.dtype}")
        if bool((lengths < 0).any()) or bool((lengths > feats.shape[1]).any()):
            raise ValueError(f"lengths must lie in [0, T={feats.shape[1]}], got {lengths.tolist()}")
        encoded, out_lengths = self.encoder(feats, lengths.to(feats.device))
        return torch.log_softmax(self.head(encoded).float(), dim=-1), out_lengths

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> EncoderState:
        """Fresh streaming state for ``batch_size`` streams (all zeros / empty caches)."""
        return self.encoder.init_state(batch_size, device)

    def step(self, feats_chunk: torch.Tensor, state: EncoderState) -> tuple[torch.Tensor, EncoderState]:
        """feats_chunk [B, 4n, input_dim] -> (log_probs [B, n, V] float32, new state); ``state`` untouched.
        The plain reference form, ``forward`` with the carried state (checks: ``Encoder.step``); the fast form
        for inference is asr.model.inference.PackedStep."""
        encoded, new_state = self.encoder.step(feats_chunk, state)
        return torch.log_softmax(self.head(encoded).float(), dim=-1), new_state

    def num_params(self, *, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def flops_per_second(self, *, frames_per_second: float = 100.0, context_seconds: float = 10.0) -> float:
        """Forward FLOPs (2 per multiply-add) per second of audio, for streaming inference.

        Counts matmuls and convolutions (norms, activations and the softmax are left out). Linear attention
        is counted in its recurrent form, independent of history. Softmax attention attends to
        ``context_seconds`` of history (capped by its window), so its cost grows with the stream.
        ``frames_per_second`` is the feature frame rate (100 for a 10 ms shift).
        """
        if frames_per_second <= 0 or context_seconds < 0:
            raise ValueError(
                f"frames_per_second must be > 0 and context_seconds >= 0, got {frames_per_second}, {context_seconds}"
            )
        flops = self.encoder.flops_per_second(frames_per_second=frames_per_second, context_seconds=context_seconds)
        rate = frames_per_second / self.subsampling_factor
        return flops + rate * 2.0 * self.head.in_features * self.head.out_features
