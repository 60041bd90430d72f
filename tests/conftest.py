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
