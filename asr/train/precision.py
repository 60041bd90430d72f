"""Which arithmetic a training step runs in: bf16 autocast or float32, and why.

``precision: auto`` picks bf16 autocast on CUDA and on CPUs whose matmuls run bf16 natively (AMX-BF16 or
AVX512-BF16: oneDNN's bf16 kernels); elsewhere float32, since bf16 on a CPU without them is emulated (converted
to float32 and back) and slower than float32. The weights, the optimiser state and the gradients stay float32
(autocast casts per op); the linear attention's state is float32 under autocast too (the kernel switches
autocast off inside), as on CUDA. ``precision: bf16`` forces autocast anyway (for measuring the emulation).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

_NATIVE_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's feature flags (empty when the file is missing, e.g. not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_native_bf16(flags: frozenset[str] | None = None) -> tuple[bool, str]:
    """``(native, description)``: whether this CPU has bf16 matmul instructions, and what was found."""
    flags = cpu_flags() if flags is None else flags
    capability = torch.backends.cpu.get_cpu_capability()
    found = [name for flag, name in _NATIVE_FLAGS.items() if flag in flags]
    if found:
        return True, f"{' and '.join(found)} in the CPU flags (torch CPU capability {capability})"
    return False, f"no AMX-BF16 or AVX512-BF16 in the CPU flags (torch CPU capability {capability})"


@dataclass(frozen=True)
class PrecisionChoice:
    dtype: torch.dtype | None  # torch.bfloat16 for autocast, None for float32
    reason: str  # why, for the log

    @property
    def name(self) -> str:
        return "bf16" if self.dtype is not None else "fp32"

    def autocast(self, device: torch.device):
        """The context a forward pass runs in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def choose_precision(precision: str, device: torch.device, *, flags: frozenset[str] | None = None) -> PrecisionChoice:
    """Resolve ``precision`` ("auto", "fp32" or "bf16") for ``device``."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "fp32":
        return PrecisionChoice(None, "precision: fp32 asked for")
    if device.type != "cpu":
        return PrecisionChoice(torch.bfloat16, f"precision: {precision} on {device.type}")
    native, found = cpu_native_bf16(flags)
    if precision == "bf16":
        how = "native" if native else "emulated: expect it slower than fp32"
        return PrecisionChoice(torch.bfloat16, f"precision: bf16 asked for, on a CPU with {found} ({how})")
    if native:
        return PrecisionChoice(torch.bfloat16, f"precision auto: bf16 autocast, {found}")
    return PrecisionChoice(None, f"precision auto: fp32, {found}, so bf16 would be emulated and slower")
