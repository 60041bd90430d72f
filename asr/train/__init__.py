"""Training: one code path for every recipe (config dataclasses, data, loop, checkpoints, DDP)."""
