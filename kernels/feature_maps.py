"""Feature maps phi for linear attention: sim(q, k) = phi(q) . phi(k).

    elu_plus_one         phi(x) = elu(x) + 1  (paper Eq. 7; the default). Strictly positive, so the
                         normaliser phi(q) . z is > 0; output dim = input dim.
    relu                 phi(x) = max(x, 0). Sparse and cheap, but a query or key can map to all zeros;
                         the attention kernels' ``eps`` then keeps 0 / (0 + eps) = 0 finite. No extra
                         eps here: adding one would make every padded (zero) key count in the normaliser.
    positive_random      phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)  (FAVOR+, Choromanski et al. 2021): an
                         unbiased positive estimate of exp(q . k), with m (orthogonal) Gaussian projections W
                         drawn once from a seed and stored as a buffer (so they travel in the state_dict).

Each map is an ``nn.Module`` (so a model can hold it as a submodule) with ``out_dim(in_dim)``; the plain
functions are exported too. ``get_feature_map(name, ...)`` builds one from its name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FEATURE_MAPS",
    "EluPlusOne",
    "PositiveRandomFeatures",
    "ReLUFeatures",
    "elu_plus_one",
    "elu_plus_one_reference",
    "get_feature_map",
    "orthogonal_gaussian",
    "positive_random_features",
    "relu",
]


def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1 > 0 (paper Eq. 7), computed as exp(min(x, 0)) + max(x, 0): x + 1 (x > 0) or exp(x).

    Written this way because F.elu(x) + 1 rounds to exactly 0 in float32 below x ~ -17 (elu(x) = -1 + tiny),
    which would make a key invisible to the normaliser; exp(x) stays > 0 down to x ~ -87.
    With autograd tracking x, the gradient comes from the output alone: d phi / dx = 1 for x > 0 and exp(x) for
    x <= 0, which is min(phi, 1) exactly (phi = x + 1 >= 1 above 0, phi = exp(x) <= 1 at and below it, so the
    gradient at x = 0 is 1, both branches' slope). ``elu_plus_one_reference`` is the same function as a torch.where
    of the two branches: the same values and gradients bit for bit but at x = 0 exactly, where its clamp passes no
    gradient (tests/kernels/test_feature_maps.py); it costs more in training (three torch.where, an exp and a mask
    forward and back, against two clamps, an exp and an add forward and a clamp and a multiply back). The C step
    kernel (kernels/linear_attention/cpu_step_body.h, phi = 1) computes this same function.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return _EluPlusOne.apply(x)
    return _elu_plus_one_values(x)


def _elu_plus_one_values(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x.clamp(max=0.0)).add_(x.clamp(min=0.0))


class _EluPlusOne(torch.autograd.Function):
    """elu(x) + 1 whose backward needs only the saved output: grad * min(phi, 1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        phi = _elu_plus_one_values(x)
        ctx.save_for_backward(phi)
        return phi

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (phi,) = ctx.saved_tensors
        return grad * phi.clamp(max=1.0)


def elu_plus_one_reference(x: torch.Tensor) -> torch.Tensor:
    """elu(x) + 1 as torch.where of its two branches (the clamp keeps the unused exp branch finite, so its zero
    gradient never becomes 0 * inf = NaN; at x = 0 exactly the clamp also stops the gradient, which is then 0):
    the plain form ``elu_plus_one`` is tested against."""
    return torch.where(x > 0, x + 1.0, torch.exp(torch.clamp(x, max=0.0)))


def relu(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = max(x, 0); may be all zero for a row (the kernels' eps handles it)."""
    return F.relu(x)


def orthogonal_gaussian(num_features: int, dim: int, *, seed: int) -> torch.Tensor:
    """[num_features, dim] Gaussian projections, orthogonal within each block of ``dim`` rows, with row
    norms drawn like those of a Gaussian vector (so each row is marginally N(0, I)). Deterministic in seed."""
    if num_features < 1 or dim < 1:
        raise ValueError(f"num_features and dim must be >= 1, got num_features={num_features}, dim={dim}")
    gen = torch.Generator().manual_seed(seed)
    blocks = []
    for _ in range(-(-num_features // dim)):
        gauss = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
        ortho, r = torch.linalg.qr(gauss)
        ortho = ortho * torch.sign(torch.diagonal(r)).unsqueeze(0)  # a uniformly random rotation
        blocks.append(ortho.T)
    rows = torch.cat(blocks, dim=0)[:num_features]
    norms = torch.randn(num_features, dim, generator=gen, dtype=torch.float64).norm(dim=1, keepdim=True)
    return (rows * norms).to(torch.float32)


def positive_random_features(
    x: torch.Tensor,  # [..., D]
    projection: torch.Tensor,  # [m, D]
    *,
    stabilize: bool = False,
) -> torch.Tensor:
    """FAVOR+ positive random features [..., m], computed in float32 (float64 for float64 x), x's dtype out.

    E[phi(q) . phi(k)] = exp(q . k). Scale q and k first (e.g. by D^-1/4) as softmax attention would.
    ``stabilize=True`` subtracts each row's max exponent: use it for *queries* only, where a per-row factor
    cancels between numerator and denominator (up to eps); a per-key factor would change the weights.
    """
    if projection.dim() != 2 or projection.shape[1] != x.shape[-1]:
        raise ValueError(
            f"projection must be [m, D] with D = x.shape[-1] = {x.shape[-1]}, got {tuple(projection.shape)}"
        )
    cdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xf = x.to(cdtype)
    w = projection.to(device=x.device, dtype=cdtype)
    expo = xf @ w.T - 0.5 * (xf * xf).sum(-1, keepdim=True)  # [..., m]
    if stabilize:
        expo = expo - expo.amax(-1, keepdim=True).detach()
    return (torch.exp(expo) / math.sqrt(w.shape[0])).to(x.dtype)


class EluPlusOne(nn.Module):
    """phi(x) = elu(x) + 1 (paper Eq. 7)."""

    def forward(self, x: torch.Tensor, *, is_query: bool = False) -> torch.Tensor:
        return elu_plus_one(x)

    def out_dim(self, in_dim: int) -> int:
        return in_dim


class ReLUFeatures(nn.Module):
    """phi(x) = max(x, 0)."""

    def forward(self, x: torch.Tensor, *, is_query: bool = False) -> torch.Tensor:
        return relu(x)

    def out_dim(self, in_dim: int) -> int:
        return in_dim


class PositiveRandomFeatures(nn.Module):
    """FAVOR+ positive random features with a seeded, stored projection [num_features, dim]."""

    def __init__(self, *, dim: int, num_features: int, seed: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.num_features = num_features
        self.seed = seed
        self.register_buffer("projection", orthogonal_gaussian(num_features, dim, seed=seed))

    def forward(self, x: torch.Tensor, *, is_query: bool = False) -> torch.Tensor:
        """x [..., dim] -> [..., num_features]; queries get the per-row stabiliser (exact in the ratio)."""
        return positive_random_features(x, self.projection, stabilize=is_query)

    def out_dim(self, in_dim: int) -> int:
        if in_dim != self.dim:
            raise ValueError(f"PositiveRandomFeatures was built for dim={self.dim}, got {in_dim}")
        return self.num_features

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_features={self.num_features}, seed={self.seed}"


FEATURE_MAPS = ("elu_plus_one", "relu", "positive_random")
_ALIASES = {
    "elu+1": "elu_plus_one",
    "elu": "elu_plus_one",
    "favor+": "positive_random",
    "prf": "positive_random",
}


def get_feature_map(name: str, *, dim: int | None = None, num_features: int | None = None, seed: int = 0) -> nn.Module:
    """Build a feature map by name (``FEATURE_MAPS`` or an alias: elu+1, favor+, prf).

    ``positive_random`` needs ``dim`` (the input head dim); ``num_features`` defaults to dim.
    """
    key = _ALIASES.get(name, name)
    if key == "elu_plus_one":
        return EluPlusOne()
    if key == "relu":
        return ReLUFeatures()
    if key == "positive_random":
        if dim is None:
            raise ValueError("feature map 'positive_random' needs dim (the input head dimension)")
        return PositiveRandomFeatures(dim=dim, num_features=num_features or dim, seed=seed)
    raise ValueError(f"unknown feature map {name!r}; expected one of {FEATURE_MAPS} (aliases {sorted(_ALIASES)})")
