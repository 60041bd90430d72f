"""Suite-wide settings: one intra-op thread per process.

The tests run many tiny tensor ops, for which thread hand-offs cost more than they save on the 2-core machines
(measured: up to 20x slower per op with 2 threads under load), and subprocess tests (CLI, 2-process DDP, the
microphone path) must not oversubscribe the cores. Subprocesses inherit OMP_NUM_THREADS.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
