/* Convolution ops in C for small inference steps on the CPU; kernels/conv/__init__.py has their Python entry
 * points and plain PyTorch references. No speech knowledge: images, channels and taps only.
 *
 * conv1_silu:      a 3x3, stride-2 convolution of a one-channel image and its SiLU, channels-last out. In
 *                  PyTorch this is a window gather, a matmul with an inner dimension of 10 (which BLAS runs
 *                  poorly) and a SiLU pass over a big activation; here each output row of C channels is
 *                  accumulated in registers and activated before it is stored, once, wherever the caller wants
 *                  it (e.g. after a cached row of the buffer a following convolution reads).
 * bias_glu:        y <- (x[:, :d] + b[:d]) * sigmoid(x[:, d:] + b[d:]), written where the caller wants it (e.g.
 *                  after the cached rows of the buffer a causal depthwise convolution reads, so the gate's
 *                  output is never concatenated with the cache).
 * dwconv_ln_silu:  a causal depthwise convolution over K taps, LayerNorm over the channels and SiLU in one pass.
 *                  (A bias + SiLU pass for a feed-forward was measured too: no faster than PyTorch's addmm and
 *                  SiLU.)
 * Their exp is kernels/vexp.h's (vectorisable, ~2 ulp).
 */
#include <math.h>

#include "vexp.h"

/* conv1_silu: out[b, t, f, c] = silu(bias[c] + sum_{i,j} x[b, 2t + i, 2f + j] w[i, j, c]), no padding.
 * x[b, r, f] at x + b * xsb + r * xst + f; w [9, C] (tap i * 3 + j); out[b, t, f, c] at out + b * osb + t * ost +
 * f * C + c, for t < T1 and f < F1 (the caller guarantees the input rows 2 * T1 + 1 and columns 2 * F1 + 1). */
static inline __attribute__((always_inline)) void conv1_silu(long B, long T1, long F1, const long C, const float *x,
                                                           long xsb, long xst, const float *w, const float *bias,
                                                           float *out, long osb, long ost) {
    for (long b = 0; b < B; b++) {
        for (long t = 0; t < T1; t++) {
            const float *x0 = x + b * xsb + 2 * t * xst;
            float *o = out + b * osb + t * ost;
            for (long f = 0; f < F1; f++, o += C) {
                float taps[9];
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) taps[i * 3 + j] = x0[i * xst + 2 * f + j];
                for (long c = 0; c < C; c++) { /* vectorised over channels: 9 broadcast taps, one store */
                    float a = bias[c];
                    for (int k = 0; k < 9; k++) a += taps[k] * w[k * C + c];
                    o[c] = silu_approx(a);
                }
            }
        }
    }
}

/* The entry point: common channel counts get a copy with C a constant (whole-register loops, no masking). */
void conv1_silu_f32(long B, long T1, long F1, long C, const float *x, long xsb, long xst, const float *w,
                    const float *bias, float *out, long osb, long ost) {
    switch (C) {
        case 32: conv1_silu(B, T1, F1, 32, x, xsb, xst, w, bias, out, osb, ost); return;
        case 64: conv1_silu(B, T1, F1, 64, x, xsb, xst, w, bias, out, osb, ost); return;
        case 128: conv1_silu(B, T1, F1, 128, x, xsb, xst, w, bias, out, osb, ost); return;
        default: conv1_silu(B, T1, F1, C, x, xsb, xst, w, bias, out, osb, ost);
    }
}

/* x [B * T, 2d] with rows ld apart; y[b, t, :] at y + b * ysb + t * yst (a contiguous row of d). */
void bias_glu_f32(long B, long T, long d, const float *x, long ld, const float *bias, float *y, long ysb,
                  long yst) {
    for (long b = 0; b < B; b++) {
        for (long t = 0; t < T; t++) {
            const float *xr = x + (b * T + t) * ld;
            float *yr = y + b * ysb + t * yst;
            for (long j = 0; j < d; j++) yr[j] = (xr[j] + bias[j]) * sigmoid_approx(xr[d + j] + bias[d + j]);
        }
    }
}

/* LayerNorm's statistics of a row of d: its mean (into *mean) and 1 / sqrt(variance about it + eps), in float32. */
static inline float layer_norm_scale(const float *x, long d, float eps, float *mean) {
    float m = 0.0f, var = 0.0f;
#pragma omp simd reduction(+ : m)
    for (long j = 0; j < d; j++) m += x[j];
    m /= (float)d;
#pragma omp simd reduction(+ : var)
    for (long j = 0; j < d; j++) var += (x[j] - m) * (x[j] - m);
    *mean = m;
    return 1.0f / sqrtf(var / (float)d + eps);
}

/* The causal depthwise conv over K taps, LayerNorm over d, SiLU.
 * x[b, r, :] at x + b * xsb + r * xst (rows r = t .. t + K - 1 feed output t: the cached rows then the chunk's);
 * w [K, d] (tap-major), bias [d], LayerNorm gain g and shift s [d]; out [B * T, d] contiguous: one pass where
 * PyTorch makes three (a oneDNN conv, a layer norm, a SiLU) and two intermediate tensors. */
void dwconv_ln_silu_f32(long B, long T, long K, long d, const float *x, long xsb, long xst, const float *w,
                        const float *bias, const float *g, const float *s, float eps, float *out) {
    for (long b = 0; b < B; b++) {
        for (long t = 0; t < T; t++) {
            float *o = out + (b * T + t) * d;
            for (long j = 0; j < d; j++) o[j] = bias[j];
            for (long k = 0; k < K; k++) {
                const float *xr = x + b * xsb + (t + k) * xst, *wk = w + k * d;
                for (long j = 0; j < d; j++) o[j] += wk[j] * xr[j];
            }
            float mean;
            const float r = layer_norm_scale(o, d, eps, &mean);
            for (long j = 0; j < d; j++) o[j] = silu_approx((o[j] - mean) * r * g[j] + s[j]);
        }
    }
}
