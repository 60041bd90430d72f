/* The subsampling's first convolution with its SiLU, for the CPU streaming step (subsampling_kernel.py).
 *
 * One input channel, a 3x3 kernel, stride 2 in time and frequency, no padding (the streaming step supplies the
 * cached frame as the first input row): out[b, t, f, c] = silu(bias[c] + sum_{i,j} x[b, 2t + i, 2f + j] w[i, j, c]).
 * In PyTorch this is a window gather, a matmul with an inner dimension of 10 (which BLAS runs poorly), and a
 * SiLU pass over the biggest activation of the step (20 MB for 256 streams); here each output row of C channels
 * is accumulated in registers and activated before it is stored, once, wherever the caller wants it (the
 * rows after the cached one in the buffer the second conv reads).
 *
 * The SiLU's exp is kernels/vexp.h's (vectorisable, ~2 ulp).
 */
#include "vexp.h"

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
