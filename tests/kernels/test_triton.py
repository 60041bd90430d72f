"""The triton backend against the float64 reference: outputs, final state and every gradient.

On a machine without CUDA the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set by
tests/kernels/conftest.py); with CUDA they are compiled and run on the GPU. The interpreter is slow, so sizes
are small (B=1, H=2, D=16) while chunk boundaries (T = 1, 2, 63, 64, 65 at chunk 64), multi-chunk state
passing (T = 100, 256; chunks 16, 32, 64) and masked block tails (Dk = 20, 72; Dv = 40, 80) are all exercised.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kernels import LinearAttentionState, causal_linear_attention

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Normalised max error max|a - ref| / max|ref| allowed, by (input dtype, result dtype). Low-precision results
# are one rounding away from the reference (the interpreter rounds toward zero: up to 2^-7 in bfloat16);
# float32 results from bfloat16 inputs go through split-bfloat16 matmuls (~16 mantissa bits).
_TOL = {
    (torch.float32, torch.float32): 1e-4,
    (torch.bfloat16, torch.bfloat16): 1.6e-2,
    (torch.bfloat16, torch.float32): 1e-3,
    (torch.float16, torch.float16): 2e-3,
    (torch.float16, torch.float32): 1e-4,
}


def _case(*, T, decay, dtype=torch.float32, with_state=True, dk=16, dv=16, B=1, H=2, seed=0):
    """float64 master inputs, exactly representable in ``dtype``, and loss weights for every output."""
    g = torch.Generator().manual_seed(seed)

    def rep(x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype).double()

    case = {
        "q": rep(torch.rand(B, T, H, dk, generator=g) + 0.05),
        "k": rep(torch.rand(B, T, H, dk, generator=g) + 0.05),
        "v": rep(torch.randn(B, T, H, dv, generator=g)),
        "w_out": rep(torch.randn(B, T, H, dv, generator=g)),  # dout arrives in the output's dtype
        "w_S": torch.randn(B, H, dk, dv, generator=g, dtype=torch.float64),
        "w_z": torch.randn(B, H, dk, generator=g, dtype=torch.float64),
    }
    if decay == "gates":  # per-step log gates, some strong
        case["decay"] = -1.5 * torch.rand(B, T, H, generator=g, dtype=torch.float64)
    elif decay == "head":  # per-head constants, 1.0 included
        case["decay"] = torch.linspace(0.6, 1.0, H, dtype=torch.float64)
    if with_state:
        case["S0"] = torch.randn(B, H, dk, dv, generator=g, dtype=torch.float64)
        case["z0"] = torch.rand(B, H, dk, generator=g, dtype=torch.float64) + 0.5
    return case


def _run(case: dict, *, backend: str, dtype: torch.dtype, device: str, chunk_size: int = 64) -> dict:
    """Forward, then backward of a loss touching the output and the final state; returns values and grads."""
    state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    leaves = {}
    for name in ("q", "k", "v"):
        leaves[name] = case[name].to(device=device, dtype=dtype).requires_grad_()
    for name in ("decay", "S0", "z0"):
        if name in case:
            leaves[name] = case[name].to(device=device, dtype=state_dtype).requires_grad_()
    state = LinearAttentionState(leaves["S0"], leaves["z0"]) if "S0" in leaves else None
    out, final = causal_linear_attention(
        leaves["q"], leaves["k"], leaves["v"], initial_state=state, decay=leaves.get("decay"),
        backend=backend, chunk_size=chunk_size,
    )  # fmt: skip
    w = {name: case[name].to(device) for name in ("w_out", "w_S", "w_z")}
    loss = (out.double() * w["w_out"]).sum() + (final.S.double() * w["w_S"]).sum()
    loss = loss + (final.z.double() * w["w_z"]).sum()
    loss.backward()
    result = {"out": out, "S": final.S, "z": final.z}
    result.update({f"d{name}": leaf.grad for name, leaf in leaves.items()})
    return result


def _check_against_reference(case: dict, *, dtype: torch.dtype, chunk_size: int = 64) -> None:
    got = _run(case, backend="triton", dtype=dtype, device=DEVICE, chunk_size=chunk_size)
    want = _run(case, backend="reference", dtype=torch.float64, device="cpu")
    assert got["out"].dtype == dtype
    assert got["S"].dtype == got["z"].dtype == torch.float32
    assert set(got) == set(want)
    for name, expected in want.items():
        actual = got[name]
        assert actual is not None, f"no gradient for {name}"
        assert actual.shape == expected.shape, name
        assert torch.isfinite(actual).all(), f"{name} has non-finite values"
        err = (actual.double().cpu() - expected).abs().max().item() / max(expected.abs().max().item(), 1e-30)
        tol = _TOL[(dtype, actual.dtype)]
        assert err <= tol, f"{name}: normalised max error {err:.2e} > {tol:.0e}"


def test_kernels_are_interpreted_on_cpu():
    import triton.language as tl

    if DEVICE == "cpu":
        assert type(tl.zeros).__name__ == "InterpretedFunction", (
            "triton.language was imported before tests/kernels/conftest.py set TRITON_INTERPRET=1: "
            "set it in the environment, or in a conftest that pytest loads earlier"
        )
    module = importlib.import_module("kernels.linear_attention.triton")
    kind = type(module._fwd_state_kernel).__name__
    assert (kind == "InterpretedFunction") == (DEVICE == "cpu"), kind


@pytest.mark.parametrize("decay", [None, "gates", "head"])
@pytest.mark.parametrize("T", [1, 2, 63, 64, 65, 256])
def test_float32_matches_reference(T, decay):
    _check_against_reference(_case(T=T, decay=decay, seed=T), dtype=torch.float32)


@pytest.mark.parametrize("decay", [None, "gates", "head"])
@pytest.mark.parametrize("T", [1, 65, 256])
def test_bfloat16_matches_reference(T, decay):
    _check_against_reference(_case(T=T, decay=decay, dtype=torch.bfloat16, seed=T), dtype=torch.bfloat16)


@pytest.mark.parametrize("decay", [None, "gates", "head"])
def test_without_initial_state(decay):
    _check_against_reference(_case(T=65, decay=decay, with_state=False, B=2), dtype=torch.float32)


@pytest.mark.parametrize("chunk_size", [16, 32])
def test_other_chunk_sizes(chunk_size):
    case = _case(T=100, decay="gates", B=2, H=3)
    _check_against_reference(case, dtype=torch.float32, chunk_size=chunk_size)


@pytest.mark.parametrize(
    ("dk", "dv", "dtype"),
    [(20, 80, torch.float32), (20, 80, torch.bfloat16), (72, 40, torch.float32)],
)
def test_odd_head_dims(dk, dv, dtype):
    """Masked tails in Dk and Dv, two Dv blocks in the gradient kernel (64 wide, or 32 when Dk > 64), several
    state blocks."""
    case = _case(T=40, decay="gates", dtype=dtype, dk=dk, dv=dv, B=2)
    _check_against_reference(case, dtype=dtype, chunk_size=16)


def test_float16():
    _check_against_reference(_case(T=65, decay="gates", dtype=torch.float16), dtype=torch.float16)


def test_carried_state_continues_exactly():
    case = _case(T=100, decay="gates", with_state=False)
    q, k, v, g = (case[name].float().to(DEVICE) for name in ("q", "k", "v", "decay"))
    full, full_state = causal_linear_attention(q, k, v, decay=g, backend="triton", chunk_size=32)
    first, state = causal_linear_attention(q[:, :37], k[:, :37], v[:, :37], decay=g[:, :37], backend="triton")
    second, end = causal_linear_attention(
        q[:, 37:], k[:, 37:], v[:, 37:], decay=g[:, 37:], initial_state=state, backend="triton", chunk_size=16
    )
    torch.testing.assert_close(torch.cat([first, second], 1), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(end.S, full_state.S, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(end.z, full_state.z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 7, 8, 24, 128])
def test_rejects_unsupported_chunk_size(chunk_size):
    x = torch.rand(1, 4, 1, 16, device=DEVICE)
    with pytest.raises(ValueError, match=f"got {chunk_size}"):
        causal_linear_attention(x, x, x, backend="triton", chunk_size=chunk_size)


def test_rejects_float64_and_wide_keys():
    x = torch.rand(1, 4, 1, 16, device=DEVICE, dtype=torch.float64)
    with pytest.raises(ValueError, match="float64"):
        causal_linear_attention(x, x, x, backend="triton")
    wide = torch.rand(1, 4, 1, 129, device=DEVICE)
    with pytest.raises(ValueError, match="129"):
        causal_linear_attention(wide, wide, wide[..., :16], backend="triton")


# Compiles the gradient kernel, the one with the most shared memory, for an H100 (sm_90) without a GPU, in a
# process without TRITON_INTERPRET (interpreted kernels cannot be compiled). Prints the shared memory it needs.
_COMPILE_FOR_H100 = textwrap.dedent(
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    import kernels.linear_attention.triton as m

    DK = DV = 128
    C = 64
    _, _, bk, bv = m._tiles(DK, DV)
    consts = dict(DK=DK, DV=DV, C=C, BK=bk, BV=bv, NV=triton.cdiv(DV, bv), HAS_DECAY=True,
                  DOT_BF16=False, DOT_EMULATE=False, DOT_PRECISION="tf32x3")
    fn = m._bwd_dqkv_kernel
    sig = {a: "constexpr" if a in consts else ("i32" if a in ("T", "N", "H") else "*fp32") for a in fn.arg_names}
    kernel = triton.compile(ASTSource(fn, sig, constexprs=consts), target=GPUTarget("cuda", 90, 32),
                            options=m._dqkv_launch(bk, C))
    print(kernel.metadata.shared)
    """
)


@pytest.mark.slow
def test_largest_gradient_kernel_compiles_for_h100():
    """float32, Dk = Dv = 128, chunk 64 lowers for sm_90 and fits its 227 KiB of shared memory per block."""
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE_FOR_H100], env=env, cwd=Path(__file__).resolve().parents[2],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    shared = int(done.stdout.split()[-1])
    assert 0 < shared <= 227 * 1024, f"needs {shared} bytes of shared memory"
