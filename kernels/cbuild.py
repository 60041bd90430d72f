"""Build a C source into a shared library on first use and load it with ctypes (the CPU kernels' loader).

The library is compiled with the system's C compiler (``$CC``, else ``cc``; Debian: gcc) for this CPU
(``-O3 -march=native``) and cached under a hash of the sources (headers included), flags, compiler version
and CPU flags in ``$TRANSCURRENT_KERNEL_CACHE`` (default ``~/.cache/transcurrent/kernels``): one compile per
machine, about a second (no PyTorch headers). A failure raises :class:`CKernelUnavailable` with the cause and
the remedy; nothing half-built is left in the cache.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["FLAGS", "FLOAT", "INT", "LONG", "PTR", "CKernelUnavailable", "build", "cache_dir", "check_float32_cpu"]

log = logging.getLogger(__name__)

FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-std=c11", "-shared", "-fPIC")
VEXP = Path(__file__).with_name("vexp.h")  # shared by every kernel (on the include path, part of every key)


class CKernelUnavailable(RuntimeError):
    """A C kernel cannot be built or loaded here (no C compiler, say)."""


def cache_dir() -> Path:
    root = os.environ.get("TRANSCURRENT_KERNEL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "transcurrent" / "kernels"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


LONG, PTR, FLOAT, INT = ctypes.c_long, ctypes.c_void_p, ctypes.c_float, ctypes.c_int  # for signatures


def build(
    name: str,
    source: Path,
    headers: tuple[Path, ...] = (),
    *,
    functions: dict[str, tuple[Any, list[Any]]],
    fallback: str,
) -> ctypes.CDLL:
    """Compile ``source`` (which includes ``headers``, and may include kernels/vexp.h) once per content,
    compiler and CPU, load it, and declare ``functions`` (name -> (restype, argtypes)) for ctypes.
    ``fallback`` completes the error message: what the user can do instead."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise CKernelUnavailable(
            f"the {name} kernel needs a C compiler and {cc!r} was not found: install one (Debian: apt-get install "
            f"gcc libc6-dev; `make` does it as root) or set $CC, or {fallback}"
        )
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    headers = (*headers, VEXP)
    sources = [path.read_bytes() for path in (source, *headers)]
    key = hashlib.sha256(b"\0".join([*sources, " ".join(FLAGS).encode(), version.encode(), _cpu_flags().encode()]))
    path = cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                built = Path(tmp) / path.name
                command = [cc, *FLAGS, f"-I{VEXP.parent}", str(source), "-o", str(built), "-lm"]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    raise CKernelUnavailable(f"compiling {source.name} with {cc} failed:\n{done.stderr.strip()}")
                os.replace(built, path)  # atomic: a concurrent builder's copy is the same library
        except OSError as e:  # an unwritable cache folder, say
            raise CKernelUnavailable(
                f"cannot build the {name} kernel in {path.parent} ({e}): set $TRANSCURRENT_KERNEL_CACHE to a "
                f"writable folder, or {fallback}"
            ) from e
        log.info("compiled the %s kernel: %s", name, path)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise CKernelUnavailable(f"loading {path} failed: {e}") from e
    for function, (restype, argtypes) in functions.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    return lib


def check_float32_cpu(**tensors: Any) -> None:
    """The C kernels read raw float32 host memory: refuse anything else by name (before any is written)."""
    for name, x in tensors.items():
        if x.dtype != torch.float32 or x.device.type != "cpu":
            raise ValueError(f"{name} must be a float32 CPU tensor, got {x.dtype} on {x.device}")
