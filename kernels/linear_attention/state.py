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
