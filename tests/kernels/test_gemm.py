"""The few-row matrix product in C (kernels/gemm/gemm.c) against its PyTorch reference in float64: row counts
around the 4-row blocks, column counts around the 16-column panels (a partial last panel, fewer than 16 in all),
strided rows in and out, bias or none, accumulation into a residual, float16 panels (exact widening, subnormals
included), the portable build without AVX2, and the argument checks."""

from __future__ import annotations

import ctypes
import platform
import subprocess

import pytest
import torch

from kernels import gemm


def _close(out: torch.Tensor, ref: torch.Tensor, k: int) -> None:
    # float32 sums of k products, in order: error grows with k and the terms' size
    err = (out.double() - ref).abs().max().item()
    assert err <= 4e-7 * k * (1.0 + ref.abs().max().item()), err


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7, 8, 16])
@pytest.mark.parametrize(("k", "n"), [(192, 768), (768, 192), (37, 41), (5, 7), (16, 16), (3, 33)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_the_reference(m, k, n, bias):
    g = torch.Generator().manual_seed(m * 1000 + k + n)
    x, w = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    b = torch.randn(n, generator=g) if bias else None
    panels = gemm.pack(w)
    assert not panels.half  # random float32 weights are not exact in float16
    out = gemm.linear(x, panels, b)
    assert out.shape == (m, n) and out.dtype == torch.float32
    _close(out, gemm.linear_reference(x.double(), w.double(), None if b is None else b.double()), k)


@pytest.mark.parametrize("half", [False, True])
def test_strided_rows_and_accumulation_into_a_residual(half):
    g = torch.Generator().manual_seed(3)
    m, k, n = 6, 40, 50
    store = torch.randn(m, k + 9, generator=g)
    x = store[:, 2 : 2 + k]  # rows k + 9 apart
    w = torch.randn(k, n, generator=g).half().float()  # exact in float16
    b = torch.randn(n, generator=g)
    residual = torch.full((m, n + 5), float("nan"))
    residual[:, :n] = torch.randn(m, n, generator=g)
    before = residual.clone()
    panels = gemm.pack(w, half=half)
    assert panels.half == half
    out = gemm.linear(x, panels, b, out=residual[:, :n], accumulate=True)
    assert out.data_ptr() == residual.data_ptr()
    assert torch.isnan(residual[:, n:]).all()  # the columns past out's untouched
    ref = before[:, :n].double() + x.double() @ w.double() + b.double()
    _close(residual[:, :n], ref, k)


def test_float16_panels_are_exact_and_half_the_bytes():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(64, 48, generator=g).half()
    w[0, :8] = torch.tensor([2.0**-24, -(2.0**-20), 2.0**-14, 65504.0, -65504.0, 0.0, -0.0, 1.0], dtype=torch.half)
    w = w.float()  # subnormals, the largest float16s, signed zeros
    x = torch.zeros(1, 64)
    x[0, 0] = 1.0  # reads row 0 of the weight back exactly
    panels = gemm.pack(w, half=True)
    assert panels.panels.dtype == torch.float16
    full = gemm.pack(w, half=False).panels
    assert 2 * panels.panels.numel() * panels.panels.element_size() == full.numel() * full.element_size()
    assert torch.equal(gemm.linear(x, panels)[0], w[0])
    y = torch.randn(3, 64, generator=g)
    assert torch.equal(gemm.linear(y, panels), gemm.linear(y, gemm.pack(w, half=False)))  # same products, same order


def test_pack_chooses_float16_only_where_it_is_exact():
    exact = torch.randn(8, 20).half().float()
    assert gemm.pack(exact).half == gemm.features()["f16c"]  # auto: exact and widened in hardware
    assert not gemm.pack(exact, half=False).half
    with pytest.raises(ValueError, match="not exact in float16"):
        gemm.pack(exact + 1e-4, half=True)
    assert not gemm.pack(exact + 1e-4).half


def test_this_machine_builds_the_vector_path():
    """On x86-64 with AVX2, FMA and F16C (every machine the project runs on so far) the fast paths must be the
    ones compiled, or the benchmark figures are not of this code; elsewhere the portable loops."""
    flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith(("flags", "Features"))).split())
    x86 = platform.machine() in ("x86_64", "AMD64")
    assert gemm.features() == {
        "vector": x86 and {"avx2", "fma"} <= flags,
        "f16c": x86 and {"avx2", "fma", "f16c"} <= flags,
    }


def test_the_portable_build_gives_the_same_results(tmp_path):
    """gemm.c compiled for plain x86-64 (no AVX2, FMA or F16C): its loops and software float16 widening."""
    lib_path = tmp_path / "gemm_portable.so"
    subprocess.run(
        ["cc", "-O2", "-march=x86-64", "-std=c11", "-shared", "-fPIC", str(gemm._SOURCE), "-o", str(lib_path)],
        check=True,
    )
    lib = ctypes.CDLL(str(lib_path))
    assert lib.gemm_small_features() == 0
    g = torch.Generator().manual_seed(9)
    for m, k, n in [(4, 192, 100), (3, 17, 5), (9, 32, 48)]:
        x, w, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g).half().float(), torch.randn(n)
        w[0, 0] = 2.0**-24  # a float16 subnormal, widened in software
        for half, entry in ((False, lib.gemm_small_f32), (True, lib.gemm_small_f16)):
            panels = gemm.pack(w, half=half)
            out = torch.full((m, n), 7.0)
            entry.argtypes = [ctypes.c_long] * 3 + [ctypes.c_void_p, ctypes.c_long] + [ctypes.c_void_p] * 3 + [
                ctypes.c_long, ctypes.c_int]  # fmt: skip
            entry(m, k, n, x.data_ptr(), k, panels.panels.data_ptr(), b.data_ptr(), out.data_ptr(), n, 1)
            _close(out, 7.0 + x.double() @ w.double() + b.double(), k)


def test_bad_arguments_are_refused():
    w = torch.randn(8, 5)
    panels = gemm.pack(w)
    with pytest.raises(ValueError, match="float32"):
        gemm.linear(torch.randn(2, 8, dtype=torch.float64), panels)
    with pytest.raises(ValueError, match=r"x must be \[M, 8\]"):
        gemm.linear(torch.randn(2, 7), panels)
    with pytest.raises(ValueError, match="contiguous rows"):
        gemm.linear(torch.randn(8, 2).t(), panels)
    with pytest.raises(ValueError, match=r"bias must be a contiguous \[5\]"):
        gemm.linear(torch.randn(2, 8), panels, torch.randn(6))
    with pytest.raises(ValueError, match=r"out must be \[2, 5\]"):
        gemm.linear(torch.randn(2, 8), panels, out=torch.empty(2, 6))
    with pytest.raises(ValueError, match="pass out"):
        gemm.linear(torch.randn(2, 8), panels, accumulate=True)
    with pytest.raises(ValueError, match="non-empty"):
        gemm.pack(torch.empty(0, 4))
    with pytest.raises(ValueError, match="float32"):
        gemm.pack(w.double())
    assert gemm.linear(torch.empty(0, 8), panels).shape == (0, 5)
