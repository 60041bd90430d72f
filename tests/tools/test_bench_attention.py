"""Smoke tests for tools/bench_attention.py and its helpers (tiny sizes: the benchmark is not a test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.tools import load_tool

bc = load_tool("_bench_common")


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """bench_attention.main sets torch's thread count: restore it for the rest of the test session."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_quick_run_writes_json_png_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_tool("bench_attention")
    out = tmp_path / "bench"
    argv = ["--quick", "-T", "64", "128", "--repeats", "1", "--methods", "reference", "sdpa"]
    argv += ["--threads", "1", "--out", str(out)]  # one thread: steady on a busy 2-core machine
    assert bench.main(argv) == 0  # peak memory still comes from the worker subprocess
    printed = capsys.readouterr().out
    assert "Target checks" in printed and "N/A" in printed
    assert (out / "bench_attention.png").stat().st_size > 1000
    assert "| T |" in (out / "bench_attention.md").read_text()
    data = json.loads((out / "bench_attention.json").read_text())
    for key in ("cpu_model", "cpu_count", "torch_num_threads", "torch", "triton", "device_name", "date_utc"):
        assert key in data["machine"], key
    assert data["config"]["t"] == [64, 128] and data["config"]["repeats"] == 1
    assert data["methods"] == ["reference", "sdpa"]
    rows = {(r["method"], r["mode"], r["T"]): r for r in data["results"]}
    expected = {(m, mode, t) for m in ("reference", "sdpa") for mode in ("fwd", "fwd+bwd") for t in (64, 128)}
    assert set(rows) == expected
    for r in rows.values():
        assert r["status"] == "ok", r
        assert r["time_s"] > 0 and len(r["times_s"]) == 1
        assert isinstance(r["peak_bytes"], int) and r["peak_bytes"] >= 0  # tiny calls may round to 0 pages
    # the quadratic reference holds at least its [B, H, T, T] fp32 score matrix
    assert rows[("reference", "fwd", 128)]["peak_bytes"] >= 4 * 128 * 128 * 4
    names = [c["name"] for c in data["checks"]]
    assert len(names) == 4 and any("triton" in n for n in names)
    assert all(c["status"] == "N/A" for c in data["checks"])  # T=8192 is not in this run


def test_time_cap_stops_a_method_at_larger_t(tmp_path: Path) -> None:
    bench = load_tool("bench_attention")
    out = tmp_path / "capped"
    argv = ["-T", "32", "64", "--repeats", "1", "--warmup", "1", "--methods", "sdpa"]
    argv += ["--no-memory", "--time-cap", "1e-9", "--threads", "1", "--out", str(out)]
    assert bench.main(argv) == 0
    rows = json.loads((out / "bench_attention.json").read_text())["results"]
    first = [r for r in rows if r["T"] == 32]
    later = [r for r in rows if r["T"] == 64]
    assert all(r["status"] == "ok" for r in first)
    assert all(r["status"] == "skipped" and "time cap" in r["reason"] for r in later)


def test_cpu_peak_bytes_sees_a_torch_allocation() -> None:
    ok, why = bc.cpu_peak_supported()
    if not ok:
        pytest.fail(f"peak-RSS reset unsupported here: {why}")
    n = 64 * bc.MIB

    def alloc() -> None:
        x = torch.ones(n // 4)  # touches every page
        del x

    peak = bc.cpu_peak_bytes(alloc)
    assert n - bc.MIB <= peak < n + 8 * bc.MIB  # RSS may shrink a little around the call


def test_predict_next_uses_observed_growth_within_bounds() -> None:
    assert bc.predict_next([], 512, min_exponent=1.0) is None
    assert bc.predict_next([(256, 1.0)], 512, min_exponent=1.0) == pytest.approx(4.0)  # pessimistic T^2
    assert bc.predict_next([(256, 1.0), (512, 2.0)], 1024, min_exponent=1.0) == pytest.approx(4.0)
    # flat growth (overhead-dominated) is clamped to linear; cubic to quadratic
    assert bc.predict_next([(256, 1.0), (512, 1.0)], 1024, min_exponent=1.0) == pytest.approx(2.0)
    assert bc.predict_next([(256, 1.0), (512, 8.0)], 1024, min_exponent=1.0) == pytest.approx(32.0)


def test_cpu_peak_bytes_counts_reused_heap_memory() -> None:
    """Memory freed earlier and still resident (heap holes) must not make a call look free."""
    keep, holes = [], []
    for i in range(400):  # 32 KiB tensors live on the malloc heap (below the mmap threshold)
        (keep if i % 2 else holes).append(torch.ones(8192))
    del holes  # 200 resident 32 KiB holes between the kept tensors
    n = 150

    def alloc() -> None:
        xs = [torch.ones(8192) for _ in range(n)]  # fits in the holes
        del xs

    peak = bc.cpu_peak_bytes(alloc)
    assert peak >= 0.75 * n * 32 * 1024  # a hole's partly-shared edge pages are not returned, so not all
    assert len(keep) == 200
