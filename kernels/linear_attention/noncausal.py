"""Non-causal linear attention (paper Eq. 6) for bidirectional encoders.

    out_i = q_i (sum_j k_j v_j^T) / (q_i . sum_j k_j + eps)

One global state per sequence and head: O(T D^2) time, O(D^2) extra memory, no chunks needed.
Padded keys (``key_padding_mask`` True) are dropped from both sums; padded query rows are still computed
(against the valid keys) and are the caller's to ignore.
"""

from __future__ import annotations

import torch

from kernels.linear_attention import _validate

__all__ = ["linear_attention"]


def linear_attention(
    q: torch.Tensor,  # [B, T, H, Dk] feature-mapped (non-negative)
    k: torch.Tensor,  # [B, T, H, Dk]
    v: torch.Tensor,  # [B, T, H, Dv]
    *,
    key_padding_mask: torch.Tensor | None = None,  # [B, T] bool, True = padding
    eps: float = 1e-6,
) -> torch.Tensor:
    """Bidirectional linear attention. Returns out [B, T, H, Dv] in q's dtype.

    Computes in float32 (float64 for float64 inputs). A sequence whose keys are all padding gives 0.
    """
    _validate(q, k, v, None, eps)
    B, T, H, _ = q.shape
    cdtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    qf, kf, vf = q.to(cdtype), k.to(cdtype), v.to(cdtype)
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
            mask = key_padding_mask
            what = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"key_padding_mask must be a bool tensor (True = padding), got {what}")
        if tuple(key_padding_mask.shape) != (B, T):
            raise ValueError(
                f"key_padding_mask must be [B, T]=({B}, {T}), got {tuple(key_padding_mask.shape)}"
            )
        if key_padding_mask.device != q.device:
            raise ValueError(f"key_padding_mask is on {key_padding_mask.device} but q is on {q.device}")
        keep = (~key_padding_mask).to(cdtype)[:, :, None, None]  # [B, T, 1, 1]
        kf = kf * keep
        vf = vf.masked_fill(key_padding_mask[:, :, None, None], 0.0)  # also clears non-finite padding
    kv = torch.einsum("bthd,bthe->bhde", kf, vf)  # [B, H, Dk, Dv]
    z = kf.sum(1)  # [B, H, Dk]
    num = torch.einsum("bthd,bhde->bthe", qf, kv)  # [B, T, H, Dv]
    den = torch.einsum("bthd,bhd->bth", qf, z).unsqueeze(-1)  # [B, T, H, 1]
    return (num / (den + eps)).to(q.dtype)
