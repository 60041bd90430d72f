"""The encoder: causal 4x conv subsampling, N pre-norm blocks, a final LayerNorm.

``forward(feats, lengths)`` runs whole utterances; ``step(chunk, state)`` runs the same weights on a chunk
of feature frames (a multiple of 4) with the carried EncoderState, and for a causal encoder the two agree
for any chunking. Right padding never changes valid outputs of the causal encoder; the non-causal one masks
padded frames (keys, conv inputs) explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from asr.model.blocks import BlockState, EncoderBlock
from asr.model.config import ModelConfig
from asr.model.state import stack_tree, state_batch_size, unstack_tree
from asr.model.subsampling import CausalConvSubsampling, SubsamplingState, check_feature_chunk
from kernels import LinearAttentionState

__all__ = ["Encoder", "EncoderState", "check_step_inputs", "encoder_step", "stack_states", "unstack_state"]


class EncoderState(NamedTuple):
    """Everything a stream carries between chunks (all tensors batch-first)."""

    subsampling: SubsamplingState
    layers: tuple[BlockState, ...]  # one per block, in order


def stack_states(states: Sequence[EncoderState]) -> EncoderState:
    """Concatenate per-stream states (each of any batch size) into one batched state."""
    if not all(isinstance(s, EncoderState) for s in states):
        raise ValueError(f"stack_states takes EncoderState items, got {[type(s).__name__ for s in states]}")
    return stack_tree(list(states))


def unstack_state(state: EncoderState) -> list[EncoderState]:
    """Split a batched state into batch-1 states; ``stack_states(unstack_state(s))`` rebuilds ``s``."""
    if not isinstance(state, EncoderState):
        raise ValueError(f"unstack_state takes an EncoderState, got {type(state).__name__}")
    return unstack_tree(state)


def check_step_inputs(
    feats: torch.Tensor,
    state: EncoderState,
    template: EncoderState,
    *,
    input_dim: int,
    factor: int,
    device: torch.device | None = None,
) -> None:
    """The checks of a streaming step's inputs, for every form of the step (the modules' and the packed one):
    ``feats`` a floating-point [B, factor * n, input_dim] chunk (n >= 1), ``state`` an EncoderState of B streams
    shaped like ``template`` (a state of the same model: its subsampling cache and first attention state are
    compared, so a state of another model fails here, not deep inside), ``feats`` on ``device`` if given."""
    check_feature_chunk(feats, input_dim, factor)
    if not isinstance(state, EncoderState) or len(state.layers) != len(template.layers):
        raise ValueError(
            f"state must be an EncoderState with {len(template.layers)} layer states, got {type(state).__name__}"
        )
    batch = state_batch_size(state)
    if batch != feats.shape[0]:
        raise ValueError(f"chunk batch size {feats.shape[0]} does not match the state's {batch}")
    want = tuple(template.subsampling.hidden.shape[1:])
    if tuple(state.subsampling.hidden.shape[1:]) != want:
        raise ValueError(
            f"the state's subsampling cache is {tuple(state.subsampling.hidden.shape)}, expected [B, *{want}]"
            " (a state made by another model?)"
        )
    first, expected = state.layers[0].attention, template.layers[0].attention
    if isinstance(expected, LinearAttentionState):
        want = tuple(expected.S.shape[1:])
        S = getattr(first, "S", None)
        if S is None or tuple(S.shape[1:]) != want:
            got = tuple(S.shape) if S is not None else type(first).__name__
            raise ValueError(f"the state's first attention state is {got}, expected S [B, *{want}]")
    if device is not None and feats.device != device:
        raise ValueError(f"features are on {feats.device} but the model is on {device}")


def encoder_step(subsampling: Any, blocks: Sequence[Any], feats: torch.Tensor, state: EncoderState, **options: Any):
    """The encoder's streaming loop, shared by its forms: ``subsampling.step(feats, state.subsampling)``, then
    each block's ``step(x, block_state, **options)`` in order -> (x [B, n, d_model] before the final norm, the
    new EncoderState). The modules (``Encoder.step``) and their packed inference forms (asr.model.inference)
    both run through it."""
    x, sub_state = subsampling.step(feats, state.subsampling)
    layer_states = []
    for block, block_state in zip(blocks, state.layers, strict=True):
        x, new_block_state = block.step(x, block_state, **options)
        layer_states.append(new_block_state)
    return x, EncoderState(sub_state, tuple(layer_states))


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B] lengths -> [B, max_len] bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class Encoder(nn.Module):
    """[B, T, input_dim] features -> [B, T // 4, d_model]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.subsampling = CausalConvSubsampling(
            input_dim=config.input_dim, channels=config.subsampling_channels, d_model=config.d_model
        )
        self.blocks = nn.ModuleList(EncoderBlock(config, layer_index=i) for i in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.d_model)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats [B, T, F], lengths [B] -> (encoded [B, T // 4, d_model], out_lengths [B] = lengths // 4)."""
        x, out_lengths = self.subsampling(feats, lengths)
        mask = None if self.config.causal else padding_mask(out_lengths, x.shape[1])
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x), out_lengths

    def init_state(self, batch_size: int, device: torch.device | str | None = None) -> EncoderState:
        if not self.config.causal:
            raise ValueError("a non-causal encoder cannot stream (causal=False); use forward()")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return EncoderState(
            self.subsampling.init_state(batch_size, device),
            tuple(block.init_state(batch_size, device) for block in self.blocks),
        )

    def step(self, feats: torch.Tensor, state: EncoderState) -> tuple[torch.Tensor, EncoderState]:
        """feats [B, 4n, F] chunk -> (encoded [B, n, d_model], new state). The input state is not modified."""
        if not self.config.causal:
            raise ValueError("a non-causal encoder cannot stream (causal=False); use forward()")
        check_step_inputs(
            feats, state, self.step_template(), input_dim=self.config.input_dim, factor=self.subsampling.factor
        )
        x, new_state = encoder_step(self.subsampling, self.blocks, feats, state)
        return self.final_norm(x), new_state

    def step_template(self) -> EncoderState:
        """A batch-1 state of this encoder on the meta device (shapes only, no memory): what
        ``check_step_inputs`` compares a step's state with."""
        return self.init_state(1, "meta")

    def flops_per_second(self, *, frames_per_second: float, context_seconds: float) -> float:
        rate = frames_per_second / self.subsampling.factor
        context = context_seconds * rate
        flops = frames_per_second * self.subsampling.flops_per_frame()
        flops += rate * sum(block.flops_per_frame(context) for block in self.blocks)
        return flops
