/* The conv module's pointwise parts for the CPU streaming step (block_kernel.py):
 * bias_glu:        y <- (x[:, :d] + b[:d]) * sigmoid(x[:, d:] + b[d:]) after the inner matmul, written where the
 *                  caller wants it: after the cached rows of the buffer the depthwise conv reads, so the gate's
 *                  output is never concatenated with the cache;
 * dwconv_ln_silu:  the causal depthwise conv, LayerNorm and SiLU in one pass over that buffer.
 * Their exp is kernels/vexp.h's (vectorisable, ~2 ulp). (A bias + SiLU pass for the feed-forward was measured
 * too: no faster than PyTorch's addmm and SiLU.)
 */
#include <math.h>

#include "vexp.h"

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

/* The conv module's middle after its gate: the causal depthwise conv over K taps, LayerNorm over d, SiLU.
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
            float mean = 0.0f, var = 0.0f;
#pragma omp simd reduction(+ : mean)
            for (long j = 0; j < d; j++) mean += o[j];
            mean /= (float)d;
#pragma omp simd reduction(+ : var)
            for (long j = 0; j < d; j++) var += (o[j] - mean) * (o[j] - mean);
            const float r = 1.0f / sqrtf(var / (float)d + eps);
            for (long j = 0; j < d; j++) o[j] = silu_approx((o[j] - mean) * r * g[j] + s[j]);
        }
    }
}
