"""Kernels for causal linear attention. No speech knowledge lives here."""

from kernels.linear_attention import (
    BACKENDS,
    LinearAttentionState,
    available_backends,
    causal_linear_attention,
)

__all__ = [
    "BACKENDS",
    "LinearAttentionState",
    "available_backends",
    "causal_linear_attention",
]
