"""A run stopped by ``max_steps`` inside an epoch ends with the weights of its last step, not an average of
earlier epochs that would throw the last steps away."""

from __future__ import annotations

import pytest
import torch
from _train_helpers import train_argv
from safetensors.torch import load_file

from asr.cli import main as cli_main

pytestmark = pytest.mark.slow


def test_max_steps_mid_epoch_keeps_the_last_step(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    assert cli_main(train_argv(tiny_corpus, run, "max_steps=3", "checkpoint_every_steps=100")) == 0
    ckpt = run / "checkpoints"
    assert (ckpt / "latest").read_text().strip() == "step-0000003"  # written when max_steps stopped the run
    assert sorted(p.name for p in ckpt.glob("epoch-*.safetensors")) == ["epoch-001.safetensors"]
    final, last = load_file(run / "final.safetensors"), load_file(ckpt / "step-0000003.safetensors")
    assert sorted(final) == sorted(last)
    assert all(torch.equal(final[k], last[k]) for k in final)
