"""What the packed layers share: weights copied out of the modules, LayerNorm parameters, the kernel choice."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Norm", "copied", "layer_norm", "transposed", "use_c"]


def transposed(weight: torch.Tensor) -> torch.Tensor:
    """A Linear weight [out, in] -> a detached contiguous [in, out] copy (MKL's small-M GEMM runs it ~1.3x faster)."""
    return weight.detach().t().contiguous()


def copied(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone()


class Norm(NamedTuple):
    """A LayerNorm's parameters, copied."""

    weight: torch.Tensor  # [d]
    bias: torch.Tensor  # [d]
    eps: float

    @staticmethod
    def pack(module: nn.LayerNorm) -> Norm:
        return Norm(copied(module.weight), copied(module.bias), float(module.eps))


def layer_norm(x: torch.Tensor, norm: Norm) -> torch.Tensor:
    return F.layer_norm(x, norm.weight.shape, norm.weight, norm.bias, norm.eps)


def use_c(kernel: str, x: torch.Tensor) -> bool:
    """Whether a packed layer runs its C kernels on ``x``: kernel "c" (resolved by PackedStep for the CPU) and
    float32 data (a float64 model steps through the PyTorch ops)."""
    return kernel == "c" and x.dtype == torch.float32
