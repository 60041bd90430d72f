"""Suite-wide settings.

- One intra-op thread per process: the tests run many tiny tensor ops, for which thread hand-offs cost more than
  they save on the 2-core machines (measured: up to 20x slower per op with 2 threads under load), and subprocess
  tests (CLI, 2-process DDP, the microphone path) must not oversubscribe the cores. Subprocesses inherit
  OMP_NUM_THREADS.
- Without CUDA, Triton kernels run in Triton's interpreter. TRITON_INTERPRET must be set before
  triton.language is first imported (its jit'd helpers such as tl.zeros are bound then), so it is set here,
  before any test module is collected. kernels.available_backends("cpu") then lists "triton"; tests name
  their backends explicitly.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


# Uninitialised float memory is poisoned with NaN for the whole suite: the C kernels (and some PyTorch paths)
# write their results into torch.empty buffers, and an element a kernel forgets to write would otherwise hold
# whatever the allocator left there (often zeros, or a plausible old value), which a test could not see.
_empty, _empty_like, _new_empty = torch.empty, torch.empty_like, torch.Tensor.new_empty


def _poison(x: torch.Tensor) -> torch.Tensor:
    if x.is_floating_point() or x.is_complex():
        with torch.no_grad():
            x.fill_(float("nan"))
    return x


def _poisoned_empty(*args, **kwargs) -> torch.Tensor:
    return _poison(_empty(*args, **kwargs))


def _poisoned_empty_like(*args, **kwargs) -> torch.Tensor:
    return _poison(_empty_like(*args, **kwargs))


def _poisoned_new_empty(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return _poison(_new_empty(self, *args, **kwargs))


torch.empty = _poisoned_empty
torch.empty_like = _poisoned_empty_like
torch.Tensor.new_empty = _poisoned_new_empty
