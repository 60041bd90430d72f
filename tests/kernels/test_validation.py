"""Bad input raises ValueError naming the offending values, for every entry point."""

from __future__ import annotations

import pytest
import torch

from kernels import LinearAttentionState, causal_linear_attention, noncausal_linear_attention, recurrent_step

B, T, H, D = 2, 5, 3, 4


def _qkv(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return (
        torch.rand(B, T, H, D, generator=g).to(dtype),
        torch.rand(B, T, H, D, generator=g).to(dtype),
        torch.randn(B, T, H, D + 1, generator=g).to(dtype),
    )


def test_mismatched_shapes():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"q \(2, 5, 3, 4\) and k \(2, 6, 3, 4\)"):
        causal_linear_attention(q, torch.rand(B, T + 1, H, D), v)
    with pytest.raises(ValueError, match=r"v \(2, 5, 2, 5\)"):
        causal_linear_attention(q, k, v[:, :, :2])
    with pytest.raises(ValueError, match=r"\[B, T, H, D\], got shape \(2, 5, 12\)"):
        causal_linear_attention(q.flatten(2), k, v)
    with pytest.raises(ValueError, match="torch.Tensor"):
        causal_linear_attention(q.tolist(), k, v)


def test_mismatched_dtypes_and_integer_input():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"torch.float32, torch.float16, torch.float32"):
        causal_linear_attention(q, k.half(), v)
    with pytest.raises(ValueError, match="floating point, got dtype torch.int64"):
        causal_linear_attention(q, k, v.long())


def test_mismatched_devices():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="cpu, meta, cpu"):
        causal_linear_attention(q, k.to("meta"), v)


def test_empty_sequence():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"T must be >= 1.*\(2, 0, 3, 4\)"):
        causal_linear_attention(q[:, :0], k[:, :0], v[:, :0])


def test_wrong_state_shape_and_dtype():
    q, k, v = _qkv()
    bad = LinearAttentionState(torch.zeros(B, H, D, D), torch.zeros(B, H, D))  # Dv is D + 1
    with pytest.raises(ValueError, match=r"S \(2, 3, 4, 4\).*expected S \(2, 3, 4, 5\)"):
        causal_linear_attention(q, k, v, initial_state=bad)
    half = LinearAttentionState(torch.zeros(B, H, D, D + 1).half(), torch.zeros(B, H, D).half())
    with pytest.raises(ValueError, match="float32.*torch.float16"):
        causal_linear_attention(q, k, v, initial_state=half)
    with pytest.raises(ValueError, match="LinearAttentionState"):
        causal_linear_attention(q, k, v, initial_state=torch.zeros(B, H, D, D + 1))


@pytest.mark.parametrize("value", [0.0, 1.5, -0.1, float("nan")])
def test_per_head_decay_outside_unit_interval(value):
    q, k, v = _qkv()
    decay = torch.tensor([0.9, value, 1.0])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        causal_linear_attention(q, k, v, decay=decay)


def test_per_step_gates_must_be_log_space():
    q, k, v = _qkv()
    gates = torch.full((B, T, H), -0.1)
    gates[1, 2, 0] = 0.25  # log g > 0 would be g > 1
    with pytest.raises(ValueError, match=r"<= 0.*0\.25"):
        causal_linear_attention(q, k, v, decay=gates)
    with pytest.raises(ValueError, match=r"\[H\]=\(3,\).*got \(5, 3\)"):
        causal_linear_attention(q, k, v, decay=gates[0])


def test_unknown_backend_and_bad_chunk_size():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="'cuda_fast'"):
        causal_linear_attention(q, k, v, backend="cuda_fast")
    with pytest.raises(ValueError, match="chunk_size.*0"):
        causal_linear_attention(q, k, v, chunk_size=0)


def test_gpu_only_backend_without_cuda(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="triton.*device cpu"):
        causal_linear_attention(q, k, v, backend="triton")


def test_recurrent_step_bad_state_and_gate():
    q, k, v = _qkv()
    state = LinearAttentionState.zeros(B, H, D, D + 1)
    with pytest.raises(ValueError, match=r"S \(2, 3, 4, 4\)"):
        recurrent_step(q[:, 0], k[:, 0], v[:, 0], LinearAttentionState.zeros(B, H, D, D))
    with pytest.raises(ValueError, match=r"log_g_t must be a \[B, H\]=\(2, 3\).*\(3,\)"):
        recurrent_step(q[:, 0], k[:, 0], v[:, 0], state, log_g_t=torch.zeros(H))
    with pytest.raises(ValueError, match=r"q_t \(2, 3, 4\), k_t \(2, 3, 5\)"):
        recurrent_step(q[:, 0], v[:, 0], v[:, 0], state)
    with pytest.raises(ValueError, match=r"\[B, H, D\] tensor, got \(2, 5, 3, 4\)"):
        recurrent_step(q, k, v, state)


def test_noncausal_bad_mask():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="bool tensor.*torch.float32"):
        noncausal_linear_attention(q, k, v, key_padding_mask=torch.zeros(B, T))
    with pytest.raises(ValueError, match=r"\[B, T\]=\(2, 5\), got \(2, 4\)"):
        noncausal_linear_attention(q, k, v, key_padding_mask=torch.zeros(B, T - 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"T must be >= 1"):
        noncausal_linear_attention(q[:, :0], k[:, :0], v[:, :0])
