"""The fused CPU chunk step (``kernels.linear_attention.cpu_step``, C) against ``recurrent_chunk_step`` in
float64: the output, the state coming out (updated in place), for every decay form, chunk lengths that take
the specialised copies and the general loop, head sizes with Dk != Dv, strided inputs and outputs, the fused
RMS norm; chained over many chunks; the argument checks and the build errors."""

from __future__ import annotations

import pytest
import torch

from kernels import LinearAttentionState
from kernels.linear_attention import cpu_step
from kernels.linear_attention.recurrent import ChunkGates, chunk_gates, recurrent_chunk_step


def _inputs(B, H, T, Dk, Dv, *, seed, strided=False):
    g = torch.Generator().manual_seed(seed)
    if strided:  # views of one [B, T, 3, H, D] projection output, as PackedStep passes them
        D = max(Dk, Dv)
        proj = torch.rand(B, T, 3, H, D, generator=g)
        proj[..., 2, :, :].sub_(0.5)
        q, k, v = proj.permute(2, 0, 3, 1, 4).unbind(0)
        q, k, v = q[..., :Dk], k[..., :Dk], v[..., :Dv]
        assert not q.is_contiguous()
    else:
        q, k = torch.rand(B, H, T, Dk, generator=g), torch.rand(B, H, T, Dk, generator=g)
        v = torch.randn(B, H, T, Dv, generator=g)
    S = torch.randn(B, H, Dk, Dv, generator=g) * 0.1
    z = torch.rand(B, H, Dk, generator=g) + 0.5
    return q, k, v, LinearAttentionState(S, z)


def _gates(decay, B, H, T, seed):
    g = torch.Generator().manual_seed(seed + 1)
    if decay == "none":
        return None
    if decay == "per_head":  # one decay per head for every stream: [1, H, ...]
        log_g = torch.log(torch.linspace(0.8, 0.999, H)).view(1, H, 1).expand(1, H, T)
    else:  # data-dependent: a gate per stream, head and frame
        log_g = torch.nn.functional.logsigmoid(torch.randn(B, H, T, generator=g) + 2)
    return chunk_gates(log_g.contiguous())


def _f64(x):
    return x.double() if isinstance(x, torch.Tensor) else x


def _reference(q, k, v, state, gates, rms_eps):
    """recurrent_chunk_step in float64 (+ the per-head RMS norm)."""
    g64 = None if gates is None else ChunkGates(*(_f64(t) for t in gates))
    st = LinearAttentionState(_f64(state.S), _f64(state.z))
    out, new = recurrent_chunk_step(_f64(q), _f64(k), _f64(v), st, gates=g64, eps=1e-6)
    if rms_eps is not None:
        out = out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + rms_eps)
    return out, new


def _close(a, b, tol=2e-5):
    err = ((a.double() - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
    assert err < tol, err


@pytest.mark.parametrize("decay", ["none", "per_head", "gated"])
@pytest.mark.parametrize(
    ("T", "Dk", "Dv"),
    [(4, 48, 48), (4, 16, 16), (4, 64, 64), (1, 48, 48), (3, 32, 32), (7, 48, 48), (64, 32, 32), (4, 24, 40)],
)
@pytest.mark.parametrize("B", [1, 5])
def test_fused_step_matches_the_float64_recurrence(decay, T, Dk, Dv, B):
    H = 3
    q, k, v, state = _inputs(B, H, T, Dk, Dv, seed=T * 100 + Dk)
    gates = _gates(decay, B, H, T, seed=T)
    ref_out, ref_state = _reference(q, k, v, state, gates, None)
    S, z = state.S.clone(), state.z.clone()
    out, new = cpu_step.fused_chunk_step(q, k, v, LinearAttentionState(S, z), gates=gates, eps=1e-6)
    assert new.S.data_ptr() == S.data_ptr() and new.z.data_ptr() == z.data_ptr()  # updated in place
    _close(out, ref_out)
    _close(new.S, ref_state.S)
    _close(new.z, ref_state.z)


@pytest.mark.parametrize("decay", ["none", "per_head", "gated"])
@pytest.mark.parametrize(("T", "D"), [(4, 48), (5, 20)])
def test_strided_inputs_a_transposed_output_and_the_fused_rms_norm(decay, T, D):
    B, H = 3, 4
    q, k, v, state = _inputs(B, H, T, D, D, seed=7, strided=True)
    gates = _gates(decay, B, H, T, seed=3)
    ref_out, ref_state = _reference(q, k, v, state, gates, rms_eps=1e-5)
    o = torch.full((B, T, H, D), float("nan"))  # the out projection's layout; every element must be written
    out, new = cpu_step.fused_chunk_step(
        q,
        k,
        v,
        LinearAttentionState(state.S.clone(), state.z.clone()),
        gates=gates,
        out=o.transpose(1, 2),
        rms_eps=1e-5,
    )
    assert out.data_ptr() == o.data_ptr() and torch.isfinite(o).all()
    _close(o.transpose(1, 2), ref_out)
    _close(new.S, ref_state.S)


@pytest.mark.parametrize("phi", ["elu+1", "relu"])
@pytest.mark.parametrize(("T", "D"), [(4, 48), (3, 20)])
def test_the_feature_map_applied_in_the_kernel(phi, T, D):
    """Raw projections in (negative values too), phi applied on the way in: equals phi first, then the step."""
    B, H = 2, 4
    g = torch.Generator().manual_seed(11)
    proj = torch.randn(B, T, 3, H, D, generator=g) * 2
    q, k, v = proj.permute(2, 0, 3, 1, 4).unbind(0)
    _, _, _, state = _inputs(B, H, T, D, D, seed=5)
    gates = _gates("per_head", B, H, T, seed=0)
    mapped = (
        (lambda x: torch.nn.functional.elu(x.double()) + 1) if phi == "elu+1" else (lambda x: x.double().clamp(min=0))
    )
    ref_out, ref_state = _reference(mapped(q), mapped(k), v, state, gates, None)
    before = proj.clone()
    out, new = cpu_step.fused_chunk_step(
        q, k, v, LinearAttentionState(state.S.clone(), state.z.clone()), gates=gates, phi=phi
    )
    assert torch.equal(proj, before)  # the projection is read, not mapped in place
    _close(out, ref_out)
    _close(new.S, ref_state.S)
    _close(new.z, ref_state.z)


def test_a_long_stream_of_chunks_equals_the_recurrence():
    """200 chunks through one state (decay per head): errors do not accumulate."""
    B, H, T, D = 2, 4, 4, 48
    g = torch.Generator().manual_seed(0)
    gates = _gates("per_head", B, H, T, seed=0)
    state = LinearAttentionState(torch.zeros(B, H, D, D), torch.zeros(B, H, D))
    ref = LinearAttentionState(torch.zeros(B, H, D, D, dtype=torch.float64), torch.zeros(B, H, D, dtype=torch.float64))
    for _ in range(200):
        q, k = torch.rand(B, H, T, D, generator=g), torch.rand(B, H, T, D, generator=g)
        v = torch.randn(B, H, T, D, generator=g)
        out, state = cpu_step.fused_chunk_step(q, k, v, state, gates=gates)
        ref_out, ref = _reference(q, k, v, ref, gates, None)
        _close(out, ref_out, tol=1e-5)
    _close(state.S, ref.S, tol=1e-5)
    _close(state.z, ref.z, tol=1e-5)


def test_bad_arguments_are_refused_with_the_reason():
    q, k, v, state = _inputs(2, 2, 4, 8, 8, seed=0)
    with pytest.raises(ValueError, match="float32"):
        cpu_step.fused_chunk_step(q.double(), k, v, state)
    with pytest.raises(ValueError, match="contiguous"):
        cpu_step.fused_chunk_step(q, k, v, LinearAttentionState(state.S.transpose(2, 3), state.z))
    with pytest.raises(ValueError, match="state must be"):
        cpu_step.fused_chunk_step(q, k, v, LinearAttentionState(state.S[:1], state.z[:1]))
    with pytest.raises(ValueError, match="last dimension"):
        cpu_step.fused_chunk_step(q.transpose(2, 3).contiguous().transpose(2, 3), k, v, state)
    with pytest.raises(ValueError, match="out must be"):
        cpu_step.fused_chunk_step(q, k, v, state, out=torch.empty(2, 2, 4, 9))
    with pytest.raises(ValueError, match=r"gates\.pair"):
        cpu_step.fused_chunk_step(q, k, v, state, gates=_gates("per_head", 2, 2, 5, seed=0))
    with pytest.raises(ValueError, match=r"must be \[B, H, T, D\]"):
        cpu_step.fused_chunk_step(q[0], k, v, state)
    with pytest.raises(ValueError, match="phi must be one of"):
        cpu_step.fused_chunk_step(q, k, v, state, phi="softmax")
    with pytest.raises(ValueError, match="autograd"):
        cpu_step.fused_chunk_step(q.requires_grad_(), k, v, state)
    S0 = state.S.clone()
    with pytest.raises(ValueError):  # nothing is written when an argument is refused
        cpu_step.fused_chunk_step(q.detach(), k, v.double(), state)
    assert torch.equal(state.S, S0)


def test_build_errors_name_the_cause(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSCURRENT_KERNEL_CACHE", str(tmp_path))
    cpu_step.load.cache_clear()
    try:
        monkeypatch.setenv("CC", "no-such-compiler-xyz")
        with pytest.raises(cpu_step.CpuKernelUnavailable, match="C compiler"):
            cpu_step.load()
        assert not cpu_step.available()
        monkeypatch.setenv("CC", "cc")
        bad = tmp_path / "bad.c"
        bad.write_text("int chunk_step_f32(void) { return syntax error }\n")
        monkeypatch.setattr(cpu_step, "_SOURCE", bad)
        with pytest.raises(cpu_step.CpuKernelUnavailable, match="failed"):
            cpu_step.load()
        assert not list(tmp_path.glob("*.so"))  # no half-built library left in the cache
    finally:
        cpu_step.load.cache_clear()


def test_the_library_is_built_once_and_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSCURRENT_KERNEL_CACHE", str(tmp_path))
    cpu_step.load.cache_clear()
    try:
        cpu_step.load()
        built = list(tmp_path.glob("cpu_step-*.so"))
        assert len(built) == 1
        stamp = built[0].stat().st_mtime_ns
        cpu_step.load.cache_clear()
        cpu_step.load()  # a second process would find it: not rebuilt
        assert built[0].stat().st_mtime_ns == stamp
    finally:
        cpu_step.load.cache_clear()


def test_a_changed_source_or_header_builds_a_new_library(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSCURRENT_KERNEL_CACHE", str(tmp_path / "cache"))
    header = tmp_path / "cpu_step_body.h"
    header.write_bytes(cpu_step._HEADERS[0].read_bytes())
    monkeypatch.setattr(cpu_step, "_HEADERS", (header,))
    cpu_step.load.cache_clear()
    try:
        cpu_step.load()
        header.write_bytes(header.read_bytes() + b"\n/* changed */\n")
        cpu_step.load.cache_clear()
        cpu_step.load()
        assert len(list((tmp_path / "cache").glob("cpu_step-*.so"))) == 2
    finally:
        cpu_step.load.cache_clear()


def test_an_unwritable_cache_folder_is_a_clear_error(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRANSCURRENT_KERNEL_CACHE", str(blocker / "cache"))
    cpu_step.load.cache_clear()
    try:
        with pytest.raises(cpu_step.CpuKernelUnavailable, match="TRANSCURRENT_KERNEL_CACHE"):
            cpu_step.load()
    finally:
        cpu_step.load.cache_clear()
