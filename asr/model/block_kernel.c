/* The conv module's gate for the CPU streaming step (block_kernel.py):
 *     y <- (x[:, :d] + b[:d]) * sigmoid(x[:, d:] + b[d:])
 * after its pointwise matmul, written where the caller wants it: after the cached rows of the buffer the
 * depthwise conv reads, so the gate's output is never concatenated with the cache (~5-9% of that part of a
 * block for 256 streams, measured). The sigmoid's exp is kernels/vexp.h's (vectorisable, ~2 ulp).
 * (A bias + SiLU pass for the feed-forward was measured too: no faster than PyTorch's addmm and SiLU.)
 */
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
