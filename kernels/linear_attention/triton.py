"""Triton backend: fused chunkwise causal linear attention, forward and backward.

Runs on CUDA, and on the CPU under TRITON_INTERPRET=1 (slowly: that is how it is tested without a GPU).

Per batch row b and head h, chunk n holds the steps nC .. nC+C-1. Inside a chunk, c_t is the cumulative
log gate from the chunk start up to and including t, gamma_t = exp(c_t), beta_t = exp(c_last - c_t):

    S_{n+1} = exp(c_last) S_n + sum_s beta_s k_s v_s^T      z_{n+1} = exp(c_last) z_n + sum_s beta_s k_s
    A_ts    = (q_t . k_s) exp(c_t - c_s) for s <= t (same chunk), 0 otherwise
    num_t   = gamma_t q_t S_n + sum_s A_ts v_s               den_t   = gamma_t q_t . z_n + sum_s A_ts
    out_t   = num_t / (den_t + eps)                          (paper Eq. 12 with gates)

The normaliser z is the state of an all-ones value column, carried beside S without materialising that column.
Every exponent is <= 0, so nothing overflows however strong the decay.

Forward:  _fwd_state   one program per (b*h, Dk block, Dv block) walks the chunks in order, writing S_n, z_n.
          _fwd_output  one program per (chunk, b*h, Dv block): outputs and r_t = 1 / (den_t + eps).
Backward, with dnum_t = dout_t r_t and dden_t = -r_t (dout_t . out_t):
          _bwd_state   the reverse walk: dS_n, the gradient of the state leaving chunk n,
                       dS_{n-1} = exp(c_last) dS_n + sum_t gamma_t q_t dnum_t^T (seeded by the final
                       state's gradient), ending with the initial state's gradient.
          _bwd_dqkv    one program per (chunk, b*h): dq, dk, dv and, with gates,
                       dc_t = q_t . dq_t - k_t . dk_t; the gradient of log g_r is sum_{t >= r} dc_t
                       (plus the final state's term at t = T - 1).

Accumulation and states are float32. Matmul operands are bfloat16 for bfloat16 inputs (tensor cores), float32
otherwise (float16 states and scores would overflow). An operand that is a float32 intermediate (scores, states,
their gradients) meets a bfloat16 input as two bfloat16 parts (high + low), so bfloat16 results are one rounding
from exact. float32 matmuls follow torch.get_float32_matmul_precision(): "highest" -> TF32x3 (~float32),
otherwise TF32.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from kernels.linear_attention import triton_available
from kernels.linear_attention.state import LinearAttentionState

__all__ = ["causal_linear_attention_triton", "CHUNK_SIZES", "MAX_DK"]

# Powers of two: tl.dot needs >= 16. At 128 the gradient kernel outgrows a block's shared memory on an H100
# (compiled for sm_90, float32, Dk = 128: 384 KiB needed, 227 KiB available).
CHUNK_SIZES = (16, 32, 64)
MAX_DK = 128  # q and k rows live in one register tile
_STATE_BLOCK = 32  # Dk and Dv block of the sequential state kernels (more programs in flight)
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@triton.jit
def _mm16(a, b, DOT_EMULATE: tl.constexpr):
    """bfloat16 tiles multiplied with float32 accumulation."""
    if DOT_EMULATE:
        # The interpreter cannot multiply bfloat16 tiles; their products are exact in float32.
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        acc = tl.dot(a, b)
    return acc


@triton.jit
def _dot(a, b, SPLIT: tl.constexpr, DOT_BF16: tl.constexpr, DOT_EMULATE: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """a @ b accumulated in float32.

    float32 mode: both operands float32. bfloat16 mode (bfloat16 inputs, tensor cores): the operand that is an
    input (q, k, v or dout) is exact in bfloat16; the other one, a float32 intermediate named by SPLIT
    (0: none, 1: a, 2: b), is split into bfloat16 high and low parts, which keeps ~16 mantissa bits.
    """
    if DOT_BF16:
        if SPLIT == 1:
            a_hi = a.to(tl.bfloat16)
            a_lo = (a - a_hi.to(tl.float32)).to(tl.bfloat16)
            b16 = b.to(tl.bfloat16)
            acc = _mm16(a_hi, b16, DOT_EMULATE) + _mm16(a_lo, b16, DOT_EMULATE)
        elif SPLIT == 2:
            b_hi = b.to(tl.bfloat16)
            b_lo = (b - b_hi.to(tl.float32)).to(tl.bfloat16)
            a16 = a.to(tl.bfloat16)
            acc = _mm16(a16, b_hi, DOT_EMULATE) + _mm16(a16, b_lo, DOT_EMULATE)
        else:
            acc = _mm16(a.to(tl.bfloat16), b.to(tl.bfloat16), DOT_EMULATE)
    else:
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision=DOT_PRECISION)
    return acc


@triton.jit
def _chunk_gates(g_ptr, rows, m_t):
    """Cumulative log gates within the chunk [C] and their total (0 on rows past T)."""
    b_g = tl.load(g_ptr + rows, mask=m_t, other=0.0)
    return tl.cumsum(b_g, axis=0), tl.sum(b_g, axis=0)


@triton.jit(do_not_specialize=["T", "N"])
def _fwd_state_kernel(
    k_ptr,  # [B, T, H, DK]
    v_ptr,  # [B, T, H, DV]
    g_ptr,  # [B, T, H] float32 log gates (HAS_DECAY)
    s0_ptr,  # [B, H, DK, DV] float32 (HAS_INITIAL)
    z0_ptr,  # [B, H, DK] float32 (HAS_INITIAL)
    hs_ptr,  # [B, H, N, DK, DV] float32 out: state entering each chunk
    zs_ptr,  # [B, H, N, DK] float32 out
    st_ptr,  # [B, H, DK, DV] float32 out: final state
    zt_ptr,  # [B, H, DK] float32 out
    T,
    N,
    H,
    DK: tl.constexpr,
    DV: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    HAS_INITIAL: tl.constexpr,
    DOT_BF16: tl.constexpr,
    DOT_EMULATE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_bh, i_k, i_v = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    o_t = tl.arange(0, C)
    m_k, m_v = o_k < DK, o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    m_z = m_k & (i_v == 0)  # z is written by the first Dv block only
    bh = i_bh.to(tl.int64)
    p_kv = o_k[:, None] * DV + o_v[None, :]

    b_s = tl.zeros([BK, BV], dtype=tl.float32)
    b_z = tl.zeros([BK], dtype=tl.float32)
    if HAS_INITIAL:
        b_s = tl.load(s0_ptr + bh * DK * DV + p_kv, mask=m_kv, other=0.0)
        b_z = tl.load(z0_ptr + bh * DK + o_k, mask=m_k, other=0.0)
    for n in range(N):
        p_n = bh * N + n
        tl.store(hs_ptr + p_n * DK * DV + p_kv, b_s, mask=m_kv)
        tl.store(zs_ptr + p_n * DK + o_k, b_z, mask=m_z)
        t = n * C + o_t
        m_t = t < T
        rows = (i_b.to(tl.int64) * T + t) * H + i_h  # [C] row index into [B, T, H]
        b_kt = tl.load(k_ptr + rows[None, :] * DK + o_k[:, None], mask=m_k[:, None] & m_t[None, :], other=0.0)
        b_kt = b_kt.to(tl.float32)  # [BK, C]
        b_v = tl.load(v_ptr + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        if HAS_DECAY:
            b_c, c_last = _chunk_gates(g_ptr, rows, m_t)
            b_kt = b_kt * tl.exp(c_last - b_c)[None, :]
            b_s = b_s * tl.exp(c_last)
            b_z = b_z * tl.exp(c_last)
        b_s += _dot(b_kt, b_v, 1, DOT_BF16, DOT_EMULATE, DOT_PRECISION)
        b_z += tl.sum(b_kt, axis=1)
    tl.store(st_ptr + bh * DK * DV + p_kv, b_s, mask=m_kv)
    tl.store(zt_ptr + bh * DK + o_k, b_z, mask=m_z)


@triton.jit(do_not_specialize=["T", "N"])
def _fwd_output_kernel(
    q_ptr,  # [B, T, H, DK]
    k_ptr,  # [B, T, H, DK]
    v_ptr,  # [B, T, H, DV]
    g_ptr,  # [B, T, H] float32 (HAS_DECAY)
    hs_ptr,  # [B, H, N, DK, DV] float32
    zs_ptr,  # [B, H, N, DK] float32
    o_ptr,  # [B, T, H, DV] out
    o32_ptr,  # [B, T, H, DV] float32 out (STORE_F32): the output before rounding, for the backward
    r_ptr,  # [B, T, H] float32 out: 1 / (den + eps)
    T,
    N,
    eps,
    H,
    DK: tl.constexpr,
    DV: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    STORE_F32: tl.constexpr,
    DOT_BF16: tl.constexpr,
    DOT_EMULATE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_nbh, i_v = tl.program_id(0), tl.program_id(1)
    i_bh, i_n = i_nbh // N, i_nbh % N
    i_b, i_h = i_bh // H, i_bh % H
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    o_t = tl.arange(0, C)
    m_k, m_v = o_k < DK, o_v < DV
    t = i_n * C + o_t
    m_t = t < T
    rows = (i_b.to(tl.int64) * T + t) * H + i_h
    m_tk = m_t[:, None] & m_k[None, :]
    m_tv = m_t[:, None] & m_v[None, :]

    b_q = tl.load(q_ptr + rows[:, None] * DK + o_k[None, :], mask=m_tk, other=0.0)  # [C, BK]
    b_k = tl.load(k_ptr + rows[:, None] * DK + o_k[None, :], mask=m_tk, other=0.0)  # [C, BK]
    b_v = tl.load(v_ptr + rows[:, None] * DV + o_v[None, :], mask=m_tv, other=0.0)  # [C, BV]
    p_n = i_bh.to(tl.int64) * N + i_n
    b_s = tl.load(
        hs_ptr + p_n * DK * DV + o_k[:, None] * DV + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0
    )
    b_z = tl.load(zs_ptr + p_n * DK + o_k, mask=m_k, other=0.0)  # [BK]

    b_a = _dot(b_q, tl.trans(b_k), 0, DOT_BF16, DOT_EMULATE, DOT_PRECISION)  # [C, C]
    b_o = _dot(b_q, b_s, 2, DOT_BF16, DOT_EMULATE, DOT_PRECISION)  # [C, BV] inter-chunk numerator
    b_d = tl.sum(b_q.to(tl.float32) * b_z[None, :], axis=1)  # [C] inter-chunk denominator
    causal = o_t[:, None] >= o_t[None, :]
    if HAS_DECAY:
        b_c, c_last = _chunk_gates(g_ptr, rows, m_t)
        b_gamma = tl.exp(b_c)
        b_o = b_o * b_gamma[:, None]
        b_d = b_d * b_gamma
        b_a = b_a * tl.exp(tl.where(causal, b_c[:, None] - b_c[None, :], float("-inf")))
    b_a = tl.where(causal, b_a, 0.0)
    b_o += _dot(b_a, b_v, 1, DOT_BF16, DOT_EMULATE, DOT_PRECISION)
    b_d += tl.sum(b_a, axis=1)
    b_r = 1.0 / (b_d + eps)
    b_o = b_o * b_r[:, None]
    p_o = rows[:, None] * DV + o_v[None, :]
    tl.store(o_ptr + p_o, b_o.to(o_ptr.dtype.element_ty), mask=m_tv)
    if STORE_F32:
        tl.store(o32_ptr + p_o, b_o, mask=m_tv)
    tl.store(r_ptr + rows, b_r, mask=m_t & (i_v == 0))


@triton.jit(do_not_specialize=["T", "N"])
def _bwd_state_kernel(
    q_ptr,  # [B, T, H, DK]
    g_ptr,  # [B, T, H] float32 (HAS_DECAY)
    do_ptr,  # [B, T, H, DV] gradient of out
    r_ptr,  # [B, T, H] float32: 1 / (den + eps)
    dd_ptr,  # [B, T, H] float32: gradient of den
    dst_ptr,  # [B, H, DK, DV] float32: gradient of the final state
    dzt_ptr,  # [B, H, DK] float32
    dhs_ptr,  # [B, H, N, DK, DV] float32 out: gradient of the state leaving each chunk
    dzs_ptr,  # [B, H, N, DK] float32 out
    ds0_ptr,  # [B, H, DK, DV] float32 out: gradient of the initial state
    dz0_ptr,  # [B, H, DK] float32 out
    T,
    N,
    H,
    DK: tl.constexpr,
    DV: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    DOT_BF16: tl.constexpr,
    DOT_EMULATE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_bh, i_k, i_v = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    o_t = tl.arange(0, C)
    m_k, m_v = o_k < DK, o_v < DV
    m_kv = m_k[:, None] & m_v[None, :]
    m_z = m_k & (i_v == 0)
    bh = i_bh.to(tl.int64)
    p_kv = o_k[:, None] * DV + o_v[None, :]

    b_ds = tl.load(dst_ptr + bh * DK * DV + p_kv, mask=m_kv, other=0.0)  # [BK, BV]
    b_dz = tl.load(dzt_ptr + bh * DK + o_k, mask=m_k, other=0.0)  # [BK]
    for i in range(N):
        n = N - 1 - i
        p_n = bh * N + n
        tl.store(dhs_ptr + p_n * DK * DV + p_kv, b_ds, mask=m_kv)
        tl.store(dzs_ptr + p_n * DK + o_k, b_dz, mask=m_z)
        t = n * C + o_t
        m_t = t < T
        rows = (i_b.to(tl.int64) * T + t) * H + i_h
        b_qt = tl.load(q_ptr + rows[None, :] * DK + o_k[:, None], mask=m_k[:, None] & m_t[None, :], other=0.0)
        b_qt = b_qt.to(tl.float32)  # [BK, C]
        b_do = tl.load(do_ptr + rows[:, None] * DV + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        b_r = tl.load(r_ptr + rows, mask=m_t, other=0.0)
        b_dd = tl.load(dd_ptr + rows, mask=m_t, other=0.0)
        if HAS_DECAY:
            b_c, c_last = _chunk_gates(g_ptr, rows, m_t)
            b_qt = b_qt * tl.exp(b_c)[None, :]
            b_ds = b_ds * tl.exp(c_last)
            b_dz = b_dz * tl.exp(c_last)
        # dnum_t = r_t dout_t: r goes on the q side so that dout enters the dot exactly
        b_ds += _dot(b_qt * b_r[None, :], b_do, 1, DOT_BF16, DOT_EMULATE, DOT_PRECISION)
        b_dz += tl.sum(b_qt * b_dd[None, :], axis=1)
    tl.store(ds0_ptr + bh * DK * DV + p_kv, b_ds, mask=m_kv)
    tl.store(dz0_ptr + bh * DK + o_k, b_dz, mask=m_z)


@triton.jit(do_not_specialize=["T", "N"])
def _bwd_dqkv_kernel(
    q_ptr,  # [B, T, H, DK]
    k_ptr,  # [B, T, H, DK]
    v_ptr,  # [B, T, H, DV]
    g_ptr,  # [B, T, H] float32 (HAS_DECAY)
    hs_ptr,  # [B, H, N, DK, DV] float32: state entering each chunk
    zs_ptr,  # [B, H, N, DK] float32
    dhs_ptr,  # [B, H, N, DK, DV] float32: gradient of the state leaving each chunk
    dzs_ptr,  # [B, H, N, DK] float32
    do_ptr,  # [B, T, H, DV]
    r_ptr,  # [B, T, H] float32
    dd_ptr,  # [B, T, H] float32
    dq_ptr,  # [B, T, H, DK] out
    dk_ptr,  # [B, T, H, DK] out
    dv_ptr,  # [B, T, H, DV] out
    dc_ptr,  # [B, T, H] float32 out (HAS_DECAY): gradient of the cumulative log gate at t
    T,
    N,
    H,
    DK: tl.constexpr,
    DV: tl.constexpr,
    C: tl.constexpr,
    BK: tl.constexpr,
    BV: tl.constexpr,
    NV: tl.constexpr,
    HAS_DECAY: tl.constexpr,
    DOT_BF16: tl.constexpr,
    DOT_EMULATE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    i_nbh = tl.program_id(0)
    i_bh, i_n = i_nbh // N, i_nbh % N
    i_b, i_h = i_bh // H, i_bh % H
    o_k = tl.arange(0, BK)
    o_t = tl.arange(0, C)
    m_k = o_k < DK
    t = i_n * C + o_t
    m_t = t < T
    rows = (i_b.to(tl.int64) * T + t) * H + i_h
    m_tk = m_t[:, None] & m_k[None, :]
    p_n = i_bh.to(tl.int64) * N + i_n

    b_q = tl.load(q_ptr + rows[:, None] * DK + o_k[None, :], mask=m_tk, other=0.0)  # [C, BK]
    b_k = tl.load(k_ptr + rows[:, None] * DK + o_k[None, :], mask=m_tk, other=0.0)  # [C, BK]
    b_r = tl.load(r_ptr + rows, mask=m_t, other=0.0)  # [C]
    b_dd = tl.load(dd_ptr + rows, mask=m_t, other=0.0)  # [C]
    causal = o_t[:, None] >= o_t[None, :]
    b_a = _dot(b_q, tl.trans(b_k), 0, DOT_BF16, DOT_EMULATE, DOT_PRECISION)  # [C, C]
    if HAS_DECAY:
        b_c, c_last = _chunk_gates(g_ptr, rows, m_t)
        b_gamma = tl.exp(b_c)
        b_beta = tl.exp(c_last - b_c)
        b_a = b_a * tl.exp(tl.where(causal, b_c[:, None] - b_c[None, :], float("-inf")))
    b_a = tl.where(causal, b_a, 0.0)

    b_ar = tl.trans(b_a * b_r[:, None])  # [C, C] (A_ts r_t)^T: dv_s = sum_t A_ts r_t dout_t
    b_da = tl.zeros([C, C], dtype=tl.float32)  # dout_t . v_s, then the gradient of A
    b_dq = tl.zeros([C, BK], dtype=tl.float32)  # dout_t S^T, then the inter-chunk part of dq
    b_dk = tl.zeros([C, BK], dtype=tl.float32)  # inter-chunk part of dk, before beta
    for i_v in range(NV):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < DV
        m_tv = m_t[:, None] & m_v[None, :]
        m_kv = m_k[:, None] & m_v[None, :]
        b_v = tl.load(v_ptr + rows[:, None] * DV + o_v[None, :], mask=m_tv, other=0.0)  # [C, BV]
        b_do = tl.load(do_ptr + rows[:, None] * DV + o_v[None, :], mask=m_tv, other=0.0)
        b_s = tl.load(hs_ptr + p_n * DK * DV + o_k[:, None] * DV + o_v[None, :], mask=m_kv, other=0.0)
        b_ds = tl.load(dhs_ptr + p_n * DK * DV + o_k[:, None] * DV + o_v[None, :], mask=m_kv, other=0.0)
        b_da += _dot(b_do, tl.trans(b_v), 0, DOT_BF16, DOT_EMULATE, DOT_PRECISION)
        b_dq += _dot(b_do, tl.trans(b_s), 2, DOT_BF16, DOT_EMULATE, DOT_PRECISION)
        b_dk += _dot(b_v, tl.trans(b_ds), 2, DOT_BF16, DOT_EMULATE, DOT_PRECISION)
        b_dv_inter = _dot(b_k, b_ds, 2, DOT_BF16, DOT_EMULATE, DOT_PRECISION)  # [C, BV]
        if HAS_DECAY:
            b_dv_inter = b_dv_inter * b_beta[:, None]
        b_dv = _dot(b_ar, b_do, 1, DOT_BF16, DOT_EMULATE, DOT_PRECISION) + b_dv_inter
        tl.store(dv_ptr + rows[:, None] * DV + o_v[None, :], b_dv.to(dv_ptr.dtype.element_ty), mask=m_tv)

    b_z = tl.load(zs_ptr + p_n * DK + o_k, mask=m_k, other=0.0)  # [BK]
    b_dz = tl.load(dzs_ptr + p_n * DK + o_k, mask=m_k, other=0.0)  # [BK]
    # dnum_t = r_t dout_t; dden_t = -r_t (dout_t . out_t) cancels most of r_t (dout_t . v_s), both in float32
    b_dq = b_dq * b_r[:, None] + b_dd[:, None] * b_z[None, :]
    b_dk = b_dk + b_dz[None, :]
    b_da = b_da * b_r[:, None] + b_dd[:, None]  # den_t = sum_s A_ts: an all-ones value column
    if HAS_DECAY:
        b_dq = b_dq * b_gamma[:, None]
        b_dk = b_dk * b_beta[:, None]
        b_da = b_da * tl.exp(tl.where(causal, b_c[:, None] - b_c[None, :], float("-inf")))  # recomputed: registers
    b_da = tl.where(causal, b_da, 0.0)
    b_dq += _dot(b_da, b_k, 1, DOT_BF16, DOT_EMULATE, DOT_PRECISION)
    b_dk += _dot(tl.trans(b_da), b_q, 1, DOT_BF16, DOT_EMULATE, DOT_PRECISION)
    tl.store(dq_ptr + rows[:, None] * DK + o_k[None, :], b_dq.to(dq_ptr.dtype.element_ty), mask=m_tk)
    tl.store(dk_ptr + rows[:, None] * DK + o_k[None, :], b_dk.to(dk_ptr.dtype.element_ty), mask=m_tk)
    if HAS_DECAY:
        b_dc = tl.sum(b_q.to(tl.float32) * b_dq, axis=1) - tl.sum(b_k.to(tl.float32) * b_dk, axis=1)
        tl.store(dc_ptr + rows, b_dc, mask=m_t)


def _block(n: int, cap: int) -> int:
    return min(cap, max(16, triton.next_power_of_2(n)))


def _tiles(dk: int, dv: int) -> tuple[int, int, int, int]:
    """Block sizes (bks, bvs) of the state kernels, (bk = all of Dk, bv) of the output and gradient kernels."""
    bk = _block(dk, MAX_DK)
    # With Dk = 128 a narrower Dv block keeps the gradient kernel's registers and shared memory in bounds.
    return _block(dk, _STATE_BLOCK), _block(dv, _STATE_BLOCK), bk, _block(dv, 64 if bk <= 64 else 32)


def _warps(bk: int, chunk_size: int) -> int:
    return 8 if bk * chunk_size >= 64 * 64 else 4


def _dqkv_launch(bk: int, chunk_size: int) -> dict:
    # One stage: pipelining the Dv loop's loads overflows shared memory at Dk = 128 (384 KiB in float32).
    return {"num_warps": _warps(bk, chunk_size), "num_stages": 1}


def _dot_config(dtype: torch.dtype) -> dict:
    interpreted = type(_fwd_state_kernel).__name__ == "InterpretedFunction"
    # "highest": three TF32 products (~float32 accuracy on tensor cores); IEEE FMA tiles spill registers
    precision = "tf32x3" if torch.get_float32_matmul_precision() == "highest" else "tf32"
    return {
        "DOT_BF16": dtype == torch.bfloat16,
        "DOT_EMULATE": interpreted,
        "DOT_PRECISION": precision,
    }


class _ChunkLinearAttention(torch.autograd.Function):
    """Inputs are contiguous; log gates [B, T, H] and the initial state are float32 (or None)."""

    @staticmethod
    def forward(ctx, q, k, v, log_gates, s0, z0, eps, chunk_size):
        B, T, H, DK = q.shape
        DV = v.shape[-1]
        C = chunk_size
        N = triton.cdiv(T, C)
        f32 = dict(dtype=torch.float32, device=q.device)
        dot = _dot_config(q.dtype)
        has_decay, has_initial = log_gates is not None, s0 is not None
        g = log_gates if has_decay else q  # dummy pointer when unused
        bks, bvs, bk, bv = _tiles(DK, DV)

        hs = torch.empty(B, H, N, DK, DV, **f32)
        zs = torch.empty(B, H, N, DK, **f32)
        s_t = torch.empty(B, H, DK, DV, **f32)
        z_t = torch.empty(B, H, DK, **f32)
        _fwd_state_kernel[(B * H, triton.cdiv(DK, bks), triton.cdiv(DV, bvs))](
            k, v, g, s0 if has_initial else q, z0 if has_initial else q, hs, zs, s_t, z_t,
            T, N, H=H, DK=DK, DV=DV, C=C, BK=bks, BV=bvs,
            HAS_DECAY=has_decay, HAS_INITIAL=has_initial, **dot, num_warps=4,
        )  # fmt: skip
        out = torch.empty_like(v)
        # dden = -r (dout . out) cancels against r (dout . v): it needs the output before rounding
        out32 = out if out.dtype == torch.float32 else torch.empty(B, T, H, DV, **f32)
        rden = torch.empty(B, T, H, **f32)
        _fwd_output_kernel[(N * B * H, triton.cdiv(DV, bv))](
            q, k, v, g, hs, zs, out, out32, rden, T, N, float(eps),
            H=H, DK=DK, DV=DV, C=C, BK=bk, BV=bv, HAS_DECAY=has_decay, STORE_F32=out32 is not out, **dot,
            num_warps=_warps(bk, C),
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, log_gates, hs, zs, out32, rden, s_t, z_t)
        ctx.chunk_size = C
        ctx.has_initial = has_initial
        return out, s_t, z_t

    @staticmethod
    def backward(ctx, d_out, d_st, d_zt):
        q, k, v, log_gates, hs, zs, out32, rden, s_t, z_t = ctx.saved_tensors
        B, T, H, DK = q.shape
        DV = v.shape[-1]
        C = ctx.chunk_size
        N = triton.cdiv(T, C)
        f32 = dict(dtype=torch.float32, device=q.device)
        dot = _dot_config(q.dtype)
        has_decay = log_gates is not None
        g = log_gates if has_decay else q
        bks, bvs, bk, bv = _tiles(DK, DV)

        d_out = d_out.contiguous()
        d_st = d_st.float().contiguous()
        d_zt = d_zt.float().contiguous()
        dden = -(d_out.float() * out32).sum(-1) * rden  # [B, T, H]
        dhs = torch.empty(B, H, N, DK, DV, **f32)
        dzs = torch.empty(B, H, N, DK, **f32)
        ds0 = torch.empty(B, H, DK, DV, **f32)
        dz0 = torch.empty(B, H, DK, **f32)
        _bwd_state_kernel[(B * H, triton.cdiv(DK, bks), triton.cdiv(DV, bvs))](
            q, g, d_out, rden, dden, d_st, d_zt, dhs, dzs, ds0, dz0, T, N,
            H=H, DK=DK, DV=DV, C=C, BK=bks, BV=bvs, HAS_DECAY=has_decay, **dot, num_warps=4,
        )  # fmt: skip
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        dc = torch.empty(B, T, H, **f32) if has_decay else q
        _bwd_dqkv_kernel[(N * B * H,)](
            q, k, v, g, hs, zs, dhs, dzs, d_out, rden, dden, dq, dk, dv, dc, T, N,
            H=H, DK=DK, DV=DV, C=C, BK=bk, BV=bv, NV=triton.cdiv(DV, bv), HAS_DECAY=has_decay, **dot,
            **_dqkv_launch(bk, C),
        )  # fmt: skip
        d_gates = None
        if has_decay:
            # The final state carries exp(c_T): its gradient lands on the last step.
            dc[:, -1] += (d_st * s_t).sum((-2, -1)) + (d_zt * z_t).sum(-1)
            d_gates = dc.flip(1).cumsum(1).flip(1)
        if not ctx.has_initial:
            ds0 = dz0 = None
        return dq, dk, dv, d_gates, ds0, dz0, None, None


def causal_linear_attention_triton(
    q: torch.Tensor,  # [B, T, H, Dk]
    k: torch.Tensor,  # [B, T, H, Dk]
    v: torch.Tensor,  # [B, T, H, Dv]
    *,
    log_decay: torch.Tensor | None = None,  # [B, T, H] float32, log g_t <= 0
    initial_state: LinearAttentionState | None = None,
    eps: float = 1e-6,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Fused chunkwise causal linear attention; differentiable in q, k, v, log_decay and initial_state.

    Returns out [B, T, H, Dv] in q's dtype and the final state in float32.
    """
    if not isinstance(chunk_size, int) or chunk_size not in CHUNK_SIZES:
        raise ValueError(f"triton backend: chunk_size must be one of {CHUNK_SIZES}, got {chunk_size!r}")
    if q.dtype not in _DTYPES:
        raise ValueError(f"triton backend: inputs must be float32, bfloat16 or float16, got {q.dtype}")
    if q.shape[-1] > MAX_DK:
        raise ValueError(f"triton backend: Dk must be <= {MAX_DK}, got q of shape {tuple(q.shape)}")
    ok, why = triton_available(q.device)
    if not ok:
        raise ValueError(f"backend 'triton' is unavailable: {why}")
    B, T, H, _ = q.shape
    if log_decay is not None and tuple(log_decay.shape) != (B, T, H):
        raise ValueError(f"log_decay must be [B, T, H]=({B}, {T}, {H}), got {tuple(log_decay.shape)}")
    gates = None if log_decay is None else log_decay.to(torch.float32).contiguous()
    s0 = z0 = None
    if initial_state is not None:
        s0 = initial_state.S.to(torch.float32).contiguous()
        z0 = initial_state.z.to(torch.float32).contiguous()
    # Triton launches on the current CUDA device; autograd's backward threads set it themselves.
    guard = torch.cuda.device(q.device) if q.device.type == "cuda" else contextlib.nullcontext()
    with guard:
        out, s_t, z_t = _ChunkLinearAttention.apply(
            q.contiguous(), k.contiguous(), v.contiguous(), gates, s0, z0, float(eps), chunk_size
        )
    return out, LinearAttentionState(s_t, z_t)
