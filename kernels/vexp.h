/* exp for vectorised loops, shared by the C kernels (kernels/cbuild.py puts this folder on the include path).
 *
 * A call to libm's expf stops the compiler from vectorising a loop; this is a Cephes-style range reduction
 * (x = n ln 2 + r, ln 2 in two parts, n rounded with the 1.5 * 2^23 trick, which needs no -ffast-math) and a
 * degree-6 polynomial for exp(r): relative error ~1e-7 (about 2 ulp) over the clamped range [-87, 88].
 */
#ifndef TRANSCURRENT_VEXP_H
#define TRANSCURRENT_VEXP_H

#include <stdint.h>
#include <string.h>

static inline float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;              /* x - n ln 2 */
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

static inline float silu_approx(float a) { return a / (1.0f + exp_approx(-a)); }

static inline float sigmoid_approx(float a) { return 1.0f / (1.0f + exp_approx(-a)); }

#endif
