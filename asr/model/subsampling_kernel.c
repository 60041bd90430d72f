/* The subsampling's first convolution with its SiLU, for the CPU streaming step (subsampling_kernel.py).
 *
 * One input channel, a 3x3 kernel, stride 2 in time and frequency, no padding (the streaming step supplies the
 * cached frame as the first input row): out[b, t, f, c] = silu(bias[c] + sum_{i,j} x[b, 2t + i, 2f + j] w[i, j, c]).
 * In PyTorch this is a window gather, a matmul with an inner dimension of 10 (which BLAS runs poorly), and a
 * SiLU pass over the biggest activation of the step (20 MB for 256 streams); here each output row of C channels
 * is accumulated in registers and activated before it is stored, once, wherever the caller wants it (the
 * rows after the cached one in the buffer the second conv reads).
 *
 * exp is a Cephes-style range reduction and degree-6 polynomial (relative error ~2e-7, i.e. ~2 ulp): the
 * compiler vectorises it, where a call to libm's expf would not be.
 */
#include <stdint.h>
#include <string.h>

static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest (1.5 * 2^23 trick) */
    float r = x - n * 0.693359375f + n * 2.12194440e-4f; /* x - n ln 2, ln 2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float silu(float a) { return a / (1.0f + exp_approx(-a)); }

/* x[b, r, f] at x + b * xsb + r * xst + f; w [9, C] (tap i * 3 + j); out[b, t, f, c] at out + b * osb + t * ost +
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
                    o[c] = silu(a);
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
