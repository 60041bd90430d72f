"""A whole encoder block's step in one C call (kernels/block/block.c) against its PyTorch reference in float64:
output, attention state and conv cache out, over streams and chunk lengths (the 4-frame specialisation of the
attention step and the general loop), with and without the conv module, decay, RMS output norm, each feature
map, float16 and float32 panels; several chunks in a row carry the state; the argument checks."""

from __future__ import annotations

import pytest
import torch

from kernels import gemm
from kernels.block import (
    BlockAttention,
    BlockConv,
    BlockLinear,
    BlockNorm,
    FusedBlock,
    block_step,
    block_step_reference,
)
from kernels.linear_attention import LinearAttentionState, chunk_gates


def _linear(g, k, n, *, bias=True, half=False):
    w = torch.randn(k, n, generator=g) / k**0.5
    if half:
        w = w.half().float()
    b = torch.randn(n, generator=g) * 0.1 if bias else None
    return BlockLinear(w, b, gemm.pack(w, half=half))


def _norm(g, d):
    return BlockNorm(1.0 + 0.1 * torch.randn(d, generator=g), 0.1 * torch.randn(d, generator=g), 1e-5)


def _block(seed, *, heads=4, dim=48, ff=96, kernel=15, conv=True, rms=True, phi="elu+1", half=False):
    g = torch.Generator().manual_seed(seed)
    d = heads * dim
    attention = BlockAttention(
        _norm(g, d), _linear(g, d, 3 * d, half=half), _linear(g, d, d, half=half), heads, dim, 1e-6, phi,
        1e-5 if rms else None,
    )  # fmt: skip
    conv_module = None
    if conv:
        conv_module = BlockConv(
            _norm(g, d), _linear(g, d, 2 * d, bias=False, half=half), 0.1 * torch.randn(2 * d, generator=g),
            torch.randn(kernel, d, generator=g) / kernel**0.5, 0.1 * torch.randn(d, generator=g), _norm(g, d),
            _linear(g, d, d, half=half),
        )  # fmt: skip
    return FusedBlock(attention, conv_module, _norm(g, d), _linear(g, d, ff, half=half), _linear(g, ff, d, half=half))


def _inputs(block, b, c, seed):
    g = torch.Generator().manual_seed(seed)
    a = block.attention
    x = torch.randn(b, c, block.d, generator=g)
    S = torch.rand(b, a.heads, a.head_dim, a.head_dim, generator=g)
    z = torch.rand(b, a.heads, a.head_dim, generator=g) + 1.0
    cache = None if block.conv is None else torch.randn(b, block.conv_kernel - 1, block.d, generator=g)
    return x, S, z, cache


def _gates(heads, c, decay):
    if not decay:
        return None
    log_g = torch.log(torch.linspace(0.9, 0.999, heads)).view(1, heads, 1).expand(1, heads, c)
    return type(chunk_gates(log_g))(*(t.contiguous() for t in chunk_gates(log_g)))


def _close(got, ref, tol=2e-5):
    err = (got.double() - ref).abs().max().item()
    assert err <= tol * (1.0 + ref.abs().max().item()), err


@pytest.mark.parametrize(("b", "c"), [(1, 4), (2, 4), (1, 1), (1, 3), (2, 5), (3, 2)])
@pytest.mark.parametrize("conv", [True, False])
@pytest.mark.parametrize("decay", [True, False])
def test_block_step_matches_the_reference(b, c, conv, decay):
    block = _block(b * 10 + c, conv=conv)
    x, S, z, cache = _inputs(block, b, c, seed=c)
    gates = _gates(4, c, decay)
    state = LinearAttentionState(S.double(), z.double())
    ref_x, ref_state, ref_cache = block_step_reference(
        block, x.double(), state, gates, None if cache is None else cache.double()
    )
    new_cache = block_step(block, x, S, z, gates, cache)
    _close(x, ref_x)
    _close(S, ref_state.S)
    _close(z, ref_state.z)
    if conv:
        assert new_cache.shape == cache.shape
        _close(new_cache, ref_cache, tol=1e-6)  # the gate's output, copied
    else:
        assert new_cache is None


@pytest.mark.parametrize("phi", ["elu+1", "relu"])
@pytest.mark.parametrize("rms", [True, False])
@pytest.mark.parametrize("half", [True, False])
def test_options_and_a_stream_of_chunks(phi, rms, half):
    """Five chunks in a row: the state and cache C writes are what the next chunk reads, as the reference's."""
    block = _block(7, heads=2, dim=32, ff=64, kernel=7, rms=rms, phi=phi, half=half)
    x, S, z, cache = _inputs(block, 2, 4, seed=1)
    state = LinearAttentionState(S.double(), z.double())
    ref_cache = cache.double()
    gates = _gates(2, 4, True)
    g = torch.Generator().manual_seed(11)
    for _ in range(5):
        x = torch.randn(2, 4, block.d, generator=g)
        ref_x, state, ref_cache = block_step_reference(block, x.double(), state, gates, ref_cache)
        cache = block_step(block, x, S, z, gates, cache)
        _close(x, ref_x)
    _close(S, state.S)
    _close(cache, ref_cache)


def test_argument_checks():
    block = _block(1, heads=2, dim=16, ff=32, kernel=3)
    x, S, z, cache = _inputs(block, 1, 4, seed=2)
    before = x.clone()
    with pytest.raises(ValueError, match="x must be"):
        block_step(block, x.transpose(0, 1).contiguous().view(4, 1, -1)[:, :, :16], S, z, None, cache)
    with pytest.raises(ValueError, match="the state must be"):
        block_step(block, x, S[:, :1], z, None, cache)
    with pytest.raises(ValueError, match="contiguous"):
        block_step(block, x, S.transpose(2, 3), z, None, cache)
    with pytest.raises(ValueError, match="float32"):
        block_step(block, x.double(), S, z, None, cache)
    with pytest.raises(ValueError, match="gates.pair"):
        block_step(block, x, S, z, _gates(2, 3, True), cache)
    with pytest.raises(ValueError, match="cache must be"):
        block_step(block, x, S, z, None, cache[:, :1])
    with pytest.raises(ValueError, match="pass its cache"):
        block_step(block, x, S, z, None, None)
    assert torch.equal(x, before)  # nothing written by a refused call
    with pytest.raises(ValueError, match="feature maps"):
        FusedBlock(
            BlockAttention(
                block.attention.norm, block.attention.qkv, block.attention.out, 2, 16, 1e-6, "positive_random", None
            ),
            None, block.ff_norm, block.ff_inner, block.ff_outer,
        )  # fmt: skip
    with pytest.raises(ValueError, match="attention.qkv must be"):
        FusedBlock(
            BlockAttention(block.attention.norm, block.attention.out, block.attention.out, 2, 16, 1e-6, "relu", None),
            None, block.ff_norm, block.ff_inner, block.ff_outer,
        )  # fmt: skip
