"""Shared helpers for the benchmark tools: machine info, timing, byte counts, peak memory, growth prediction,
output files.

The tools import this file as a sibling (``import _bench_common as bc``): Python puts a script's own folder
first on ``sys.path``, and the project is installed (``pip install -e .``, as ``make test`` does), so no tool
edits ``sys.path``.

Timing
------
``Clock`` is the one timer: wall time and CPU time of a block (this thread's, or the whole process's), the
device synchronised at both ends. ``time_call`` repeats a call through it.

Peak memory
-----------
CUDA: ``torch.cuda.max_memory_allocated()`` minus the memory allocated before the call (the caching
allocator's own counters, exact for tensors).

CPU: torch has no CPU allocator statistics and ``tracemalloc`` does not see its allocations, so the peak is
read from the kernel: a separate worker process (``MemoryWorker``) runs each call once and reports
``VmHWM - VmRSS``, the growth of its peak resident set over the resident set just before the call. Before
the call it (1) runs glibc's ``malloc_trim(0)``, which hands every free page of every malloc arena back to
the kernel, so memory freed by earlier calls cannot be reused without being counted again, and (2) writes
``5`` to ``/proc/self/clear_refs``, which resets VmHWM to the current resident set. The worker also runs with
``MALLOC_MMAP_THRESHOLD_=65536`` (every allocation of 64 KiB or more gets its own mmap, unmapped on free).
The figure counts every page the call touches (outputs, saved activations, gradients, temporaries, library
scratch), not the inputs that existed before it; it is the resident memory the call costs, page-granular
(tiny calls can read 0). The timing runs stay in the parent process with the default allocator settings.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

GIB = 1024**3
MIB = 1024**2

# The worker's glibc maps every allocation >= 64 KiB on its own (returned on free); its idle OpenMP threads
# sleep instead of spinning, so they do not steal cores from the timing runs in the parent.
WORKER_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "65536",
    "MALLOC_TRIM_THRESHOLD_": "131072",
    "OMP_WAIT_POLICY": "PASSIVE",
}


# --------------------------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def default_mem_cap_gib(device: torch.device) -> float:
    """A safe default memory cap: 80% of the GPU's memory, or 40% of the host's available memory."""
    if device.type == "cuda":
        return 0.8 * torch.cuda.get_device_properties(device).total_memory / GIB
    avail = _mem_available_bytes()
    return 0.4 * avail / GIB if avail else 4.0


_THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "KMP_BLOCKTIME")


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = os.cpu_count()
    avail = _mem_available_bytes()
    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "mem_available_gib": round(avail / GIB, 2) if avail else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton_version,
        # threading settings that change CPU timings a lot (OMP_WAIT_POLICY=PASSIVE on busy machines)
        "env": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
        "device": str(device),
        "device_name": _cpu_model(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["device_name"] = props.name
        info["device_memory_gib"] = round(props.total_memory / GIB, 2)
        info["cuda"] = torch.version.cuda
    return info


# ---------------------------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    median_s: float  # median wall time of one call over the timed repeats
    min_s: float  # fastest timed repeat
    times_s: tuple[float, ...]  # every timed repeat's wall time, in order
    cpu_median_s: float  # median process CPU time (all threads) of one call: robust to other processes
    warmup: int  # untimed calls made first (when 0, times_s holds the one over-the-cap warm-up call)


class Clock:
    """Wall time and CPU time of the block it wraps: ``with Clock(device) as clock: ...``, then ``clock.wall``
    and ``clock.cpu`` (seconds); ``device`` is synchronised at both ends.

    CPU time is this thread's (``time.thread_time``): with one torch thread the work done, whatever else runs on
    the machine (a shared machine's load inflates the wall time only); on CUDA, where that says nothing of the
    GPU's work, it is the wall time. ``process=True``: the whole process's CPU time (every torch thread) as
    measured, on any device."""

    def __init__(self, device: torch.device, *, process: bool = False) -> None:
        self.device = device
        self.process = process
        self._cpu_time = time.process_time if process else time.thread_time

    def __enter__(self) -> Clock:
        synchronize(self.device)
        self._wall, self._cpu = time.perf_counter(), self._cpu_time()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.wall = time.perf_counter() - self._wall
        self.cpu = self._cpu_time() - self._cpu
        if self.device.type == "cuda" and not self.process:
            self.cpu = self.wall


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    with Clock(device, process=True) as clock:
        fn()
    return clock.wall, clock.cpu


def time_call(
    fn: Callable[[], object], *, device: torch.device, warmup: int, repeats: int, budget_s: float,
    cap_s: float = math.inf,
) -> Timing:
    """Median wall time of ``fn()`` after ``warmup`` untimed calls.

    At least one warm-up call is always made; its duration sets how many of the ``repeats`` fit in
    ``budget_s`` seconds (never fewer than one), so that slow points do not dominate the run. A warm-up
    call longer than ``cap_s`` ends the measurement at once: that call's time is returned (``repeats`` 0).
    """
    warm_times = []
    for _ in range(max(1, warmup)):
        wall, cpu = _timed(fn, device)
        warm_times.append(wall)
        if wall > cap_s:
            return Timing(wall, wall, (wall,), cpu, len(warm_times) - 1)
    n = max(1, min(repeats, int(budget_s / max(min(warm_times), 1e-9))))
    walls, cpus = zip(*(_timed(fn, device) for _ in range(n)))
    return Timing(statistics.median(walls), min(walls), tuple(walls), statistics.median(cpus), max(1, warmup))


# ------------------------------------------------------------------------------------------ byte counts


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor in a (nested) state: tensors, NamedTuples, tuples, lists, dicts (anything else: 0)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (tuple, list)):
        return sum(tensor_bytes(x) for x in obj)
    if isinstance(obj, dict):
        return sum(tensor_bytes(x) for x in obj.values())
    return 0


def rss_bytes(*, trim: bool = False) -> int:
    """Resident set size of this process (Linux: /proc/self/statm). ``trim``: glibc's free pages handed back to
    the kernel first (``malloc_trim``), so memory freed but still held by malloc does not count."""
    if trim:
        _malloc_trim()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------ peak memory


def _proc_status_bytes(keys: Sequence[str]) -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in keys:
                out[key] = int(rest.split()[0]) * 1024  # reported in kB
    return out


def cpu_peak_supported() -> tuple[bool, str]:
    """Whether the VmHWM reset (Linux /proc/self/clear_refs) works in this environment."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _proc_status_bytes(("VmHWM", "VmRSS"))
    except OSError as exc:
        return False, f"cannot reset peak RSS via /proc/self/clear_refs ({exc})"
    return True, ""


def _malloc_trim() -> None:
    """Return the free pages of every glibc malloc arena to the kernel (no-op without glibc)."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - raises AttributeError on a libc without it
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: ctypes.CDLL | bool | None = None


def cpu_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak resident memory added while ``fn()`` runs (call inside a ``MemoryWorker`` for honest figures)."""
    _malloc_trim()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = _proc_status_bytes(("VmRSS",))["VmRSS"]
    fn()
    return max(0, _proc_status_bytes(("VmHWM",))["VmHWM"] - before)


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak CUDA memory allocated by ``fn()`` beyond what was allocated before it."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


class MemoryWorkerDied(RuntimeError):
    """The worker process exited (most likely killed for memory) while measuring."""


class MemoryWorker:
    """A child process that measures CPU peak memory of one request at a time.

    The child is ``python SCRIPT --memory-worker`` (the script answers with ``serve_memory_requests``),
    started with ``WORKER_ENV`` and the parent's thread count. Requests and replies are JSON lines.
    """

    def __init__(self, script: str | Path, *, num_threads: int) -> None:
        self._cmd = [sys.executable, str(script), "--memory-worker", "--threads", str(num_threads)]
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, **WORKER_ENV}
        return subprocess.Popen(
            self._cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1
        )

    def measure(self, request: dict[str, Any]) -> int:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            code = self._proc.wait()
            self._proc = None
            raise MemoryWorkerDied(f"memory worker exited with code {code} measuring {request}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"memory worker failed on {request}: {reply['error']}")
        return int(reply["peak_bytes"])

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        self._proc = None

    def __enter__(self) -> MemoryWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_memory_requests(make_call: Callable[[dict[str, Any]], Callable[[], object]]) -> int:
    """Worker loop: for each JSON request on stdin, build the call (inputs allocated outside the
    measurement), run it once as warm-up when ``request["warmup"]`` is true (lazy library initialisation
    and first-call caches then stay out of the figure), then once measured; answer ``{"peak_bytes": N}``."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            fn = make_call(request)
            if request.get("warmup", True):
                fn()
            peak = cpu_peak_bytes(fn)
            del fn
            reply: dict[str, Any] = {"peak_bytes": peak}
        except Exception as exc:  # reported to the parent, which records it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


# ------------------------------------------------------------------------------------ growth prediction


def predict_next(
    points: Sequence[tuple[int, float]], t_next: int, *, min_exponent: float, max_exponent: float = 2.0
) -> float | None:
    """Extrapolate a cost to ``t_next`` from the last two measured (T, cost) points.

    The growth exponent is the one observed between the last two points, clamped to
    [min_exponent, max_exponent]; with a single point, ``max_exponent`` (the pessimistic growth) is used.
    """
    pts = [(t, c) for t, c in points if c is not None and c > 0]
    if not pts:
        return None
    t1, c1 = pts[-1]
    if len(pts) >= 2:
        t0, c0 = pts[-2]
        e = math.log(c1 / c0) / math.log(t1 / t0)
        e = min(max(e, min_exponent), max_exponent)
    else:
        e = max_exponent
    return c1 * (t_next / t1) ** e


# --------------------------------------------------------------------------------------------- outputs


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def format_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def format_bytes(b: int | None) -> str:
    if b is None:
        return "-"
    if b < 10 * MIB:
        return f"{b / MIB:.2f} MiB"
    if b < 10 * GIB:
        return f"{b / MIB:.0f} MiB"
    return f"{b / GIB:.1f} GiB"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool = False) -> str:
    """A plain-text (aligned) or markdown table."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def plot_sweep(
    results: Sequence[dict[str, Any]],
    labels: dict[str, str],
    panels: Sequence[tuple[str, str, str]],
    path: Path,
    *,
    title: str,
    x_key: str = "T",
    x_label: str = "sequence length T",
) -> str | None:
    """Log-log curves of result rows (``method``, ``mode``, ``status``, x_key, measures) into a PNG.

    ``labels``: method -> legend label, in plotting order. ``panels``: (mode, measure key, panel title), laid
    out two per row; ``*_bytes`` measures are drawn in MiB, the others in seconds. Returns why no plot was
    written (matplotlib missing), or None.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"matplotlib unavailable ({exc})"
    nrows = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(nrows, 2, figsize=(11, 4 * nrows), sharex=True, squeeze=False)
    for ax, (mode, key, panel_title) in zip(axes.flat, panels):
        in_mib = key.endswith("_bytes")
        for method, label in labels.items():
            pts = [
                (r[x_key], r[key] / MIB if in_mib else r[key])
                for r in results
                if r["method"] == method and r["mode"] == mode and r["status"] == "ok" and r.get(key)
            ]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(panel_title)
        ax.set_ylabel("MiB" if in_mib else "s")
    for ax in axes[-1]:
        ax.set_xlabel(x_label)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    save_figure(fig, path, title=title)
    return None


def save_figure(fig: Any, path: Path, *, title: str | None = None, dpi: int = 110) -> None:
    """A tool's figure: its title (if any), a tight layout, written to ``path`` (folder created), closed."""
    import matplotlib.pyplot as plt

    if title is not None:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
