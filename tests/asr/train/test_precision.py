"""Precision choice (bf16 autocast only where the CPU has native bf16 matmul) and a bf16 training run on the CPU."""

from __future__ import annotations

import logging

import pytest
import torch
from _train_helpers import train_argv
from safetensors.torch import load_file

import kernels
from asr.cli import main as cli_main
from asr.train.precision import choose_precision, cpu_flags, cpu_native_bf16

CPU = torch.device("cpu")


def test_auto_picks_bf16_only_with_native_bf16_matmul(tmp_path):
    amx = frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"})
    avx512 = frozenset({"avx2", "avx512f", "avx512_bf16"})
    zen3 = frozenset({"avx2", "fma", "sse4_2"})
    assert choose_precision("auto", CPU, flags=amx).dtype is torch.bfloat16
    assert "AMX-BF16" in choose_precision("auto", CPU, flags=amx).reason
    assert choose_precision("auto", CPU, flags=avx512).name == "bf16"
    plain = choose_precision("auto", CPU, flags=zen3)
    assert plain.dtype is None and "no AMX-BF16 or AVX512-BF16" in plain.reason and "fp32" in plain.reason
    forced = choose_precision("bf16", CPU, flags=zen3)
    assert forced.name == "bf16" and "emulated" in forced.reason
    assert choose_precision("fp32", CPU, flags=amx).name == "fp32"
    assert choose_precision("auto", torch.device("cuda"), flags=zen3).name == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        choose_precision("fp16", CPU)
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"} and cpu_flags(tmp_path / "missing") == frozenset()


def test_this_machine_follows_its_flags():
    native, found = cpu_native_bf16()
    choice = choose_precision("auto", CPU)
    assert choice.name == ("bf16" if native else "fp32") and found in choice.reason


def test_attention_state_stays_float32_under_cpu_autocast():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.rand(2, 70, 2, 8, generator=g).bfloat16() for _ in range(3))  # what bf16 linears give
    # The reference: the same bf16 values, computed in float32 without autocast.
    ref, (s_ref, z_ref) = kernels.causal_linear_attention(q.float(), k.float(), v.float(), backend="chunked")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (s, z) = kernels.causal_linear_attention(q, k, v, backend="chunked")
    assert out.dtype is torch.bfloat16 and s.dtype is torch.float32 and z.dtype is torch.float32
    torch.testing.assert_close(s, s_ref, rtol=1e-5, atol=1e-5)  # float32 arithmetic, not bf16 matmuls
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref.bfloat16(), rtol=1e-2, atol=1e-2)  # only the output is rounded


@pytest.mark.slow
def test_bf16_run_trains_float32_weights_and_says_why(tiny_corpus, tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="asr.train"):
        assert cli_main(train_argv(tiny_corpus, run, "precision=bf16", "max_steps=3", "epochs=1")) == 0
    assert "precision: bf16 asked for" in caplog.text
    weights = load_file(run / "final.safetensors")
    floats = [t for t in weights.values() if t.is_floating_point()]
    assert floats and all(t.dtype is torch.float32 and torch.isfinite(t).all() for t in floats)
