"""What the packed layers share: weights copied out of the modules, linear layers, LayerNorm parameters, the kernel
choice."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from kernels import gemm
from kernels.block import BlockLinear

__all__ = ["Linear", "Norm", "copied", "layer_norm", "transposed", "use_c"]


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


class Linear:
    """A linear layer of the packed step: ``y = x @ weight + bias`` (``linear(x)``) or ``y += ...``
    (``linear.add_to(y, x)``, a residual branch added in place).

    ``weight`` [in, out] (a Linear's weight transposed) for PyTorch's GEMM; with the C kernels (kernel "c", a
    float32 weight) also its column panels for ``kernels.gemm``, which run products of up to ``gemm.SMALL_ROWS``
    rows (a few streams' chunks): there reading the weight is the cost, and the panels read it once, in float16
    where that is exact (a model stored in float16). More rows (a big batch of streams) go to PyTorch's GEMM.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, kernel: str) -> None:
        self.weight, self.bias = weight, bias
        self.panels = None
        if kernel == "c" and weight.dtype == torch.float32:
            if bias is not None and (bias.dtype != torch.float32 or not bias.is_contiguous()):
                raise ValueError(f"a float32 layer needs a contiguous float32 bias, got {bias.dtype}")
            self.panels = gemm.pack(weight)
        self.in_features, self.out_features = weight.shape

    def fused(self) -> BlockLinear:
        """This layer for ``kernels.block`` (its C panels: kernel "c", float32 weights)."""
        if self.panels is None:
            raise ValueError("this layer has no C panels (kernel 'torch' or a float64 weight)")
        return BlockLinear(self.weight, self.bias, self.panels)

    def _small(self, x: torch.Tensor) -> bool:
        """Whether x goes to the panel kernel (checked here: the kernel itself checks nothing; panels exist only for
        a model on the CPU, whose step inputs check_step_inputs keeps there)."""
        return (
            self.panels is not None
            and 0 < x.shape[0] <= gemm.SMALL_ROWS
            and x.dtype == torch.float32
            and x.dim() == 2
            and x.shape[1] == self.in_features
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._small(x):
            out = torch.empty(x.shape[0], self.out_features, dtype=torch.float32)
            return gemm.linear_unchecked(x if x.stride(1) == 1 else x.contiguous(), self.panels, self.bias, out, False)
        if self.bias is None:
            return torch.mm(x, self.weight)
        return torch.addmm(self.bias, x, self.weight)

    def add_to(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y [M, out] += x [M, in] @ weight + bias, in place (y must not overlap x); returns y."""
        if (
            self._small(x)
            and y.dtype == torch.float32
            and y.shape == (x.shape[0], self.out_features)
            and y.stride(1) == 1
        ):
            return gemm.linear_unchecked(x if x.stride(1) == 1 else x.contiguous(), self.panels, self.bias, y, True)
        y.addmm_(x, self.weight)
        return y if self.bias is None else y.add_(self.bias)
