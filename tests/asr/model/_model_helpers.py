"""Shared helpers for the model tests (imported by them): tiny configs and random chunkings."""

from __future__ import annotations

import contextlib
import dataclasses
import random

import torch

from asr.model import ModelConfig

# Small enough that every test runs in well under a second on 2 CPU cores.
TINY = ModelConfig(
    vocab_size=11,
    input_dim=20,
    subsampling_channels=4,
    d_model=16,
    num_layers=2,
    num_heads=2,
    ff_dim=32,
    dropout=0.0,
    conv_kernel_size=5,
    backend="auto",  # forward: chunked on CPU; step: the lean streaming form (causal_linear_attention_step)
    chunk_size=8,
)

# Causal variants whose streaming must equal the full pass.
CAUSAL_VARIANTS = {
    "linear-paper": dict(conv_module=False),
    "linear-conv": dict(),
    "linear-decay-rms": dict(decay="per_head", output_norm="rms"),
    "linear-gated-layernorm": dict(decay="gated", output_norm="layer", conv_module=False),
    "linear-relu-gated": dict(feature_map="relu", decay="gated"),
    "linear-random": dict(feature_map="positive_random", num_random_features=12, output_norm="rms"),
    "linear-reference-backend": dict(backend="reference", decay="per_head"),
    "linear-recurrent-backend": dict(backend="recurrent", decay="gated", output_norm="rms"),
    "linear-chunked-backend": dict(backend="chunked", decay="gated"),  # step through the named backend
    "softmax": dict(attention="softmax"),
    "softmax-window": dict(attention="softmax", attention_window=3),
}


def tiny(**overrides) -> ModelConfig:
    return dataclasses.replace(TINY, **overrides)


def random_chunks(total: int, *, rng: random.Random, multiple: int = 1, max_chunk: int = 12) -> list[int]:
    """Random chunk sizes (each a positive multiple of ``multiple``) summing to ``total``."""
    assert total % multiple == 0
    sizes, left = [], total // multiple
    while left:
        n = rng.randint(1, min(left, max_chunk))
        sizes.append(n * multiple)
        left -= n
    return sizes


@contextlib.contextmanager
def one_thread():
    """Run with one intra-op thread: tiny tensors gain nothing from more, and on a busy machine the
    thread pool's hand-offs cost far more than the maths."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
