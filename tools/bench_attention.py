#!/usr/bin/env python
"""Benchmark causal linear attention backends against softmax SDPA: time and peak memory versus T.

For every T (powers of two, 256 .. 32768 by default) and every method, measures the forward pass and the
forward+backward pass: median wall time over repeats after warm-up, and peak memory (see
tools/_bench_common.py for how, on CPU and CUDA). Methods: each available ``kernels.causal_linear_attention``
backend (reference, chunked, recurrent; triton on CUDA) and ``torch.nn.functional.scaled_dot_product_attention
(is_causal=True)``, the softmax attention the product replaces, on the same [B, T, H, D] sizes.

A method stops at larger T once a measurement exceeded --time-cap, or once the growth seen so far predicts
it would exceed --time-cap or --mem-cap; those points are recorded as "skipped (reason)".

Writes DIR/bench_attention.json (machine, config, every point, target checks), DIR/bench_attention.png
(log-log time and memory versus T) and DIR/bench_attention.md (the tables), and prints the tables and the
issue's target checks as PASS/FAIL lines.

    python tools/bench_attention.py                    # full CPU run (several minutes on 2 cores)
    python tools/bench_attention.py --quick            # a few small T, for `make demo`
    python tools/bench_attention.py --device cuda      # adds the triton backend
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _bench_common as bc
import torch
import torch.nn.functional as F

MODES = ("fwd", "fwd+bwd")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
DEFAULT_T = [256 * 2**i for i in range(8)]  # 256 .. 32768
QUICK_T = [256, 512, 1024]
QUICK_RECURRENT_MAX_T = 256


@dataclass(frozen=True)
class MethodSpec:
    label: str  # how tables and plots name it
    min_time_exponent: float  # lower bound on time growth used when extrapolating to the next T
    min_mem_exponent: float  # lower bound on memory growth used when extrapolating (2: T^2 by construction)


METHODS = {
    "reference": MethodSpec("reference (quadratic)", 1.0, 2.0),
    "chunked": MethodSpec("chunked", 1.0, 1.0),
    "recurrent": MethodSpec("recurrent", 1.0, 1.0),
    "triton": MethodSpec("triton", 1.0, 1.0),
    "sdpa": MethodSpec("SDPA softmax (baseline)", 1.0, 1.0),
}


# ----------------------------------------------------------------------------------------------- calls


def build_call(
    method: str, *, T: int, B: int, H: int, D: int, dtype: torch.dtype, device: torch.device, mode: str,
    chunk_size: int,
) -> Callable[[], None]:
    """One benchmark call with its inputs already allocated. ``mode``: "fwd" or "fwd+bwd"."""
    gen = torch.Generator().manual_seed(T)
    grad = mode == "fwd+bwd"
    if method == "sdpa":
        shape = (B, H, T, D)  # SDPA's own layout, so no transpose is charged to it
        q, k, v = (torch.randn(shape, generator=gen) for _ in range(3))
    else:
        shape = (B, T, H, D)
        q, k = (F.elu(torch.randn(shape, generator=gen)) + 1 for _ in range(2))  # feature-mapped, > 0
        v = torch.randn(shape, generator=gen)
    q, k, v = (x.to(device=device, dtype=dtype).requires_grad_(grad) for x in (q, k, v))

    if method == "sdpa":

        def forward() -> torch.Tensor:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        from kernels import causal_linear_attention

        def forward() -> torch.Tensor:
            return causal_linear_attention(q, k, v, backend=method, chunk_size=chunk_size)[0]

    if not grad:

        def call() -> None:
            with torch.no_grad():
                forward()

        return call

    grad_out = torch.randn(shape, generator=gen).to(device=device, dtype=dtype)

    def call_bwd() -> None:
        for x in (q, k, v):
            x.grad = None
        forward().backward(grad_out)

    return call_bwd


def _call_from_request(req: dict[str, Any]) -> Callable[[], None]:
    return build_call(
        req["method"], T=req["T"], B=req["B"], H=req["H"], D=req["D"], dtype=DTYPES[req["dtype"]],
        device=torch.device("cpu"), mode=req["mode"], chunk_size=req["chunk_size"],
    )


def _backend_unavailable(name: str, device: torch.device) -> str | None:
    """Why a kernels backend cannot be benchmarked here, or None."""
    if name == "triton" and device.type != "cuda":
        return "triton needs CUDA (TRITON_INTERPRET=1 on CPU is far too slow to benchmark)"
    from kernels import available_backends

    if name not in available_backends(device):
        return f"not available on {device}"
    try:
        importlib.import_module(f"kernels.linear_attention.{name}")
    except ImportError as exc:
        return f"backend module not importable ({exc})"
    return None


# ------------------------------------------------------------------------------------------- the sweep


@dataclass
class _Track:
    """Per (method, mode): measured points so far, and why the method stopped (if it did)."""

    times: list[tuple[int, float]]
    mems: list[tuple[int, float]]
    stopped: str | None = None


def run_sweep(args: argparse.Namespace, methods: list[str], device: torch.device) -> list[dict[str, Any]]:
    dtype_name = args.dtype
    mem_cap = args.mem_cap * bc.GIB
    tracks = {(m, mode): _Track([], []) for m in methods for mode in MODES}
    cpu_mem_ok, cpu_mem_why = bc.cpu_peak_supported() if device.type == "cpu" else (False, "")
    if args.no_memory:
        cpu_mem_ok = False
    elif device.type == "cpu" and not cpu_mem_ok:
        print(f"note: CPU peak memory not measured: {cpu_mem_why}", file=sys.stderr)
    worker = bc.MemoryWorker(__file__, num_threads=torch.get_num_threads()) if cpu_mem_ok else None
    results: list[dict[str, Any]] = []
    try:
        for T in args.t:
            for method in methods:
                spec = METHODS[method]
                for mode in MODES:
                    tr = tracks[(method, mode)]
                    row: dict[str, Any] = {"method": method, "mode": mode, "T": T}
                    results.append(row)
                    if tr.stopped is None and method == "recurrent" and T > args.recurrent_max_t:
                        tr.stopped = f"recurrent is a Python loop: capped at T <= {args.recurrent_max_t}"
                    if tr.stopped is None:
                        pred_t = bc.predict_next(tr.times, T, min_exponent=spec.min_time_exponent)
                        pred_m = bc.predict_next(tr.mems, T, min_exponent=spec.min_mem_exponent)
                        if pred_t is not None and pred_t > args.time_cap:
                            tr.stopped = f"predicted {pred_t:.0f} s > time cap {args.time_cap:g} s"
                        elif pred_m is not None and pred_m > mem_cap:
                            cap = f"memory cap {args.mem_cap:.1f} GiB"
                            tr.stopped = f"predicted {bc.format_bytes(int(pred_m))} > {cap}"
                    if tr.stopped is not None:
                        row.update(status="skipped", reason=tr.stopped)
                        continue
                    _measure_point(args, row, tr, device, dtype_name, worker, first=not tr.times)
                    if row["status"] == "ok":
                        print(
                            f"  {method:>9} {mode:>7} T={T:>6}: {bc.format_seconds(row['time_s']):>9}  "
                            f"peak {bc.format_bytes(row['peak_bytes']):>9}",
                            file=sys.stderr, flush=True,
                        )
                    else:
                        print(f"  {method:>9} {mode:>7} T={T:>6}: {row['reason']}", file=sys.stderr,
                              flush=True)
    finally:
        if worker is not None:
            worker.close()
    return results


def _measure_point(
    args: argparse.Namespace, row: dict[str, Any], tr: _Track, device: torch.device, dtype_name: str,
    worker: bc.MemoryWorker | None, *, first: bool,
) -> None:
    method, mode, T = row["method"], row["mode"], row["T"]
    sizes = dict(T=T, B=args.batch, H=args.heads, D=args.dim)
    peak = None
    if worker is not None:  # CPU: peak memory in the worker process, before the parent runs anything big
        req = dict(method=method, mode=mode, dtype=dtype_name, chunk_size=args.chunk_size, warmup=first,
                   **sizes)
        try:
            peak = worker.measure(req)
        except bc.MemoryWorkerDied as exc:
            tr.stopped = f"failed at T={T}: {exc} (out of memory?)"
            row.update(status="failed", reason=tr.stopped)
            return
        except RuntimeError as exc:  # the call itself raised in the worker: recorded, the sweep goes on
            tr.stopped = f"failed at T={T}: {exc}"
            row.update(status="failed", reason=tr.stopped)
            return
    fn = build_call(method, dtype=DTYPES[dtype_name], device=device, mode=mode, chunk_size=args.chunk_size,
                    **sizes)
    try:
        timing = bc.time_call(fn, device=device, warmup=args.warmup, repeats=args.repeats,
                              budget_s=args.point_budget, cap_s=args.time_cap)
        if device.type == "cuda" and not args.no_memory:
            peak = bc.cuda_peak_bytes(fn, device)
    except torch.cuda.OutOfMemoryError as exc:
        tr.stopped = f"out of memory at T={T} ({str(exc).splitlines()[0]})"
        row.update(status="failed", reason=tr.stopped)
        return
    except Exception as exc:  # a backend that raises (or fails to compile) is recorded, not fatal to the sweep
        tr.stopped = f"failed at T={T}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        row.update(status="failed", reason=tr.stopped)
        return
    finally:
        del fn
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row.update(
        status="ok", time_s=timing.median_s, time_min_s=timing.min_s, times_s=list(timing.times_s),
        cpu_time_s=timing.cpu_median_s, warmup=timing.warmup, peak_bytes=peak,
    )
    tr.times.append((T, timing.median_s))
    if peak is not None:
        tr.mems.append((T, float(peak)))
        if peak > args.mem_cap * bc.GIB:
            tr.stopped = f"T={T} used {bc.format_bytes(peak)} > memory cap {args.mem_cap:.1f} GiB"
    if timing.median_s > args.time_cap:
        tr.stopped = f"T={T} took {timing.median_s:.1f} s > time cap {args.time_cap:g} s"


# ------------------------------------------------------------------------------------- target checks


def _point(results: list[dict[str, Any]], method: str, mode: str, T: int) -> dict[str, Any] | None:
    for r in results:
        if (r["method"], r["mode"], r["T"]) == (method, mode, T) and r["status"] == "ok":
            return r
    return None


def _ratio_check(
    results: list[dict[str, Any]], name: str, num: tuple[str, int], den: tuple[str, int], key: str, op: str,
    target: float, applies: bool, why_not: str, also_cpu_time: bool = False,
) -> dict[str, Any]:
    """``num`` / ``den`` of ``key`` on the fwd+bwd pass against ``target``; with ``also_cpu_time`` the same
    ratio of process CPU times is added (``value_cpu``, ``status_cpu``): it holds up when other processes
    share the cores, which wall time does not."""
    check: dict[str, Any] = {"name": name, "target": f"{op} {target:g}x", "measure": key}
    if not applies:
        return {**check, "status": "N/A", "detail": why_not}
    a, b = _point(results, num[0], "fwd+bwd", num[1]), _point(results, den[0], "fwd+bwd", den[1])
    missing = [f"{m} T={t}" for (m, t), p in ((num, a), (den, b)) if p is None or p.get(key) is None]
    if missing:
        return {**check, "status": "N/A", "detail": "not measured: " + ", ".join(missing)}

    def verdict(value: float) -> str:
        return "PASS" if (value >= target if op == ">=" else value <= target) else "FAIL"

    check.update(value=a[key] / b[key], status=verdict(a[key] / b[key]))
    if also_cpu_time and a.get("cpu_time_s") and b.get("cpu_time_s"):
        value_cpu = a["cpu_time_s"] / b["cpu_time_s"]
        check.update(value_cpu=value_cpu, status_cpu=verdict(value_cpu))
    return check


def target_checks(results: list[dict[str, Any]], device: torch.device) -> list[dict[str, Any]]:
    """The issue's targets (issue 2, section 4); all on the forward+backward pass."""
    cpu, cuda = device.type == "cpu", device.type == "cuda"
    return [
        _ratio_check(results, "CPU: chunked fwd+bwd speed-up vs SDPA at T=8192", ("sdpa", 8192),
                     ("chunked", 8192), "time_s", ">=", 4.0, cpu, "the target is set for the CPU", True),
        _ratio_check(results, "CPU: chunked fwd+bwd time growth T=2048 -> 16384 (linear: 8x)",
                     ("chunked", 16384), ("chunked", 2048), "time_s", "<=", 10.0, cpu,
                     "the target is set for the CPU", True),
        _ratio_check(results, "chunked fwd+bwd peak-memory growth T=2048 -> 16384 (linear: 8x)",
                     ("chunked", 16384), ("chunked", 2048), "peak_bytes", "<=", 10.0, True, ""),
        _ratio_check(results, "CUDA: triton fwd+bwd speed-up vs chunked at T=8192", ("chunked", 8192),
                     ("triton", 8192), "time_s", ">=", 5.0, cuda, "needs a CUDA device"),
    ]


# ------------------------------------------------------------------------------------------- reporting


def tables(results: list[dict[str, Any]], methods: list[str], t_list: list[int], *, markdown: bool) -> str:
    """Per pass: median wall time, median process CPU time and peak memory, one column per method."""
    index = {(r["method"], r["mode"], r["T"]): r for r in results}
    measures = (
        ("time_s", "median wall time", bc.format_seconds),
        ("cpu_time_s", "median process CPU time (all threads)", bc.format_seconds),
        ("peak_bytes", "peak memory", bc.format_bytes),
    )
    out = []
    for mode in MODES:
        for key, what, fmt in measures:
            rows = []
            for T in t_list:
                cells = []
                for m in methods:
                    r = index[(m, mode, T)]
                    cells.append(fmt(r.get(key)) if r["status"] == "ok" else r["status"])
                rows.append([str(T), *cells])
            title = f"{'forward' if mode == 'fwd' else 'forward + backward'}: {what}"
            out.append(f"{'#### ' if markdown else ''}{title}\n")
            out.append(bc.render_table(["T", *methods], rows, markdown=markdown) + "\n")
    reasons = {(r["method"], r["mode"]): r["reason"] for r in results if r["status"] != "ok"}
    if reasons:
        out.append("Skipped / failed (first reason per method and pass):\n")
        out += [f"{'- ' if markdown else '  '}{m} {mode}: {why}" for (m, mode), why in reasons.items()]
    return "\n".join(out)


def check_lines(checks: list[dict[str, Any]]) -> str:
    lines = []
    for c in checks:
        if "value" not in c:
            value = c.get("detail", "")
        else:
            value = f"{c['value']:.2f}x" + (" wall time" if c["measure"] == "time_s" else "")
            if "value_cpu" in c:
                value += f"; {c['value_cpu']:.2f}x process CPU time ({c['status_cpu']})"
        lines.append(f"{c['status']:>4}  {c['name']}: {value} (target {c['target']})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("-B", "--batch", type=int, default=1)
    p.add_argument("-H", "--heads", type=int, default=4)
    p.add_argument("-D", "--dim", type=int, default=64, help="head dimension (q, k and v)")
    p.add_argument("-T", "--t", type=int, nargs="+", default=None,
                   help="sequence lengths (default 256 .. 32768)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per point, median reported (default 5; 3 with --quick)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls before timing, at least 1 (default 2; 1 with --quick)")
    p.add_argument("--point-budget", type=float, default=20.0,
                   help="seconds of timed repeats per point; slow points get fewer repeats (at least 1)")
    p.add_argument("--time-cap", type=float, default=20.0,
                   help="seconds: stop a method once one call took (or is predicted to take) longer")
    p.add_argument("--mem-cap", type=float, default=None,
                   help="GiB: stop a method once it would exceed this (default: 40%% of available RAM "
                        "on CPU, 80%% of GPU memory)")
    p.add_argument("--no-memory", action="store_true", help="time only: skip the peak-memory measurements")
    p.add_argument("--recurrent-max-t", type=int, default=None,
                   help=f"largest T for the recurrent backend, a Python loop over time "
                        f"(default 8192; {QUICK_RECURRENT_MAX_T} with --quick)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all usable cores)")
    p.add_argument("--quick", action="store_true",
                   help=f"T={QUICK_T}, 3 repeats, 1 warm-up, recurrent up to T={QUICK_RECURRENT_MAX_T} "
                        "(for `make demo`; explicit flags still win)")
    p.add_argument("--out", type=Path, default=Path("runs/bench_attention"), help="output directory")
    p.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        defaults = dict(t=QUICK_T, repeats=3, warmup=1, recurrent_max_t=QUICK_RECURRENT_MAX_T)
    else:
        defaults = dict(t=DEFAULT_T, repeats=5, warmup=2, recurrent_max_t=8192)
    for name, value in defaults.items():  # flags given explicitly win over --quick
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.t = sorted(set(args.t))
    for name in ("batch", "heads", "dim", "chunk_size", "repeats", "recurrent_max_t"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if min(args.t) < 1:
        raise SystemExit(f"sequence lengths must be >= 1, got {args.t}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(args.threads or usable or 1)
    if args.memory_worker:
        return bc.serve_memory_requests(_call_from_request)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available")
    if args.mem_cap is None:
        args.mem_cap = bc.default_mem_cap_gib(device)
    methods, notes = [], []
    for m in args.methods:
        why = None if m == "sdpa" else _backend_unavailable(m, device)
        if why:
            notes.append(f"{m}: skipped on {device}: {why}")
            print(f"note: {notes[-1]}", file=sys.stderr)
        else:
            methods.append(m)
    if not methods:
        raise SystemExit("no method to benchmark")

    machine = bc.machine_info(device)
    config = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in vars(args).items() if k != "memory_worker"}
    print(f"bench_attention on {machine['device_name']} ({device}), torch {machine['torch']}, "
          f"{machine['torch_num_threads']} threads; B={args.batch} H={args.heads} D={args.dim} {args.dtype}; "
          f"time cap {args.time_cap:g} s, memory cap {args.mem_cap:.1f} GiB", file=sys.stderr)

    busy = machine["load_average_1m"] is not None and machine["load_average_1m"] > (machine["cpus_usable"] or 1)
    if device.type == "cpu" and torch.get_num_threads() > 1 and busy and "OMP_WAIT_POLICY" not in os.environ:
        notes.append(
            f"load average {machine['load_average_1m']:.1f} > {machine['cpus_usable']} usable CPUs with "
            f"{torch.get_num_threads()} spinning OpenMP threads: timings can be many times too slow; "
            "OMP_WAIT_POLICY=PASSIVE (or --threads 1) gives figures that hold up on a busy machine"
        )
        print(f"note: {notes[-1]}", file=sys.stderr)
    results = run_sweep(args, methods, device)
    checks = target_checks(results, device)
    memory_method = (bc.__doc__.split("Peak memory\n-----------\n", 1)[1].strip()
                     if bc.__doc__ else "see tools/_bench_common.py")

    args.out.mkdir(parents=True, exist_ok=True)
    text = tables(results, methods, args.t, markdown=False)
    md = tables(results, methods, args.t, markdown=True)
    title = (f"causal attention, B={args.batch} H={args.heads} D={args.dim} {args.dtype}, "
             f"{machine['device_name']} ({device}, torch threads: {machine['torch_num_threads']})")
    labels = {m: METHODS[m].label for m in methods}
    panels = [(mode, key, f"{'forward' if mode == 'fwd' else 'forward + backward'}: {what}")
              for mode in MODES for key, what in (("time_s", "median time"), ("peak_bytes", "peak memory"))]
    plot_note = bc.plot_sweep(results, labels, panels, args.out / "bench_attention.png", title=title)
    if plot_note:
        notes.append(f"no plot: {plot_note}")
    payload = {
        "tool": "tools/bench_attention.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else " ".join(argv),
        "machine": machine,
        "config": config,
        "methods": methods,
        "memory_method": memory_method,
        "notes": notes,
        "results": results,
        "checks": checks,
    }
    bc.write_json(args.out / "bench_attention.json", payload)
    (args.out / "bench_attention.md").write_text(f"{title}\n\n{md}\n\n{check_lines(checks)}\n")

    print(f"\n{title}\n")
    print(text)
    for n in notes:
        print(f"note: {n}")
    print("\nTarget checks (issue 2, section 4):")
    print(check_lines(checks))
    print(f"\nwrote {args.out / 'bench_attention.json'}, {args.out / 'bench_attention.png'}, "
          f"{args.out / 'bench_attention.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
