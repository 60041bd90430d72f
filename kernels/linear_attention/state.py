"""The recurrent state of causal linear attention."""

from __future__ import annotations

from typing import NamedTuple

import torch


class LinearAttentionState(NamedTuple):
    """State after a prefix of the sequence (paper Eq. 18-19, with optional decay).

    S: [B, H, Dk, Dv]  sum_j  g-weighted phi(k_j) v_j^T   (always float32)
    z: [B, H, Dk]      sum_j  g-weighted phi(k_j)         (always float32)
    """

    S: torch.Tensor
    z: torch.Tensor

    @staticmethod
    def zeros(
        batch: int, heads: int, dk: int, dv: int, device: torch.device | str | None = None
    ) -> LinearAttentionState:
        return LinearAttentionState(
            torch.zeros(batch, heads, dk, dv, dtype=torch.float32, device=device),
            torch.zeros(batch, heads, dk, dtype=torch.float32, device=device),
        )


def check_state(state: object, *, batch: int, heads: int, dk: int, dv: int, device: torch.device, what: str) -> None:
    """ValueError naming the values unless ``state`` is a (S [B, H, Dk, Dv], z [B, H, Dk]) pair on ``device``."""
    if not isinstance(state, tuple) or len(state) != 2:
        raise ValueError(f"{what} must be a LinearAttentionState(S, z)")
    S, z = state
    if tuple(S.shape) != (batch, heads, dk, dv) or tuple(z.shape) != (batch, heads, dk):
        raise ValueError(
            f"{what} shapes S {tuple(S.shape)}, z {tuple(z.shape)} do not match "
            f"expected S {(batch, heads, dk, dv)}, z {(batch, heads, dk)}"
        )
    if S.device != device or z.device != device:
        raise ValueError(f"{what} is on {S.device}/{z.device} but the inputs are on {device}")
