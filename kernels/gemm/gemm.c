/* A matrix product for the few rows of a streaming step: y = x @ w + bias, or y += x @ w + bias, float32 on the
 * CPU; kernels/gemm/__init__.py has the Python entry points, the weight packing and a plain PyTorch reference.
 *
 * One stream's 160 ms chunk is 4 model frames, so each linear layer of a streaming step multiplies a [4, K]
 * activation by a [K, N] weight. There the cost is the weight's trip from memory, not the arithmetic: the
 * bundled model's weights (~19 MB in float32) do not stay in the caches between chunks, and a BLAS GEMM built
 * for big products reads them with strides and packs them on every call. Here the weight is packed once into
 * column panels, [ceil(N / 16), K, 16], each panel one contiguous run that is read exactly once per call, while
 * a block of up to 4 rows x 16 columns of y stays in registers for the whole of K. Weights that are exact in
 * float16 (a model stored in float16, as the bundled one) may be packed in float16: half the bytes to read, and
 * the same products, since widening a float16 to float32 is exact.
 *
 * x [M, K] with rows ldx apart; panels as above (the last one zero-padded); bias [N] or NULL; y [M, N] with rows
 * ldy apart (y may not overlap x). Each y element's sum over k runs in order k = 0 .. K-1, in float32.
 */
#include <stdint.h>
#include <string.h>

#define PANEL 16

/* float16 bits -> float32, exactly (subnormals, infinities and NaNs included): the path without F16C. */
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu, bits;
    if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        exponent = 113u;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            exponent--;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Writes one block's rows x 16 results (acc, bias already added) into y, only the first `cols` columns. */
static inline void store_block(int rows, int cols, const float acc[4][PANEL], float *y, long ldy, int accumulate) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) y[r * ldy + c] = accumulate ? y[r * ldy + c] + acc[r][c] : acc[r][c];
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VECTOR_PATH 1

static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
#if defined(__F16C__)
#define F16C_PATH 1
static inline __m256 load8_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
#else
#define F16C_PATH 0
static inline __m256 load8_f16(const uint16_t *p) {
    float f[8];
    for (int i = 0; i < 8; i++) f[i] = half_to_float(p[i]);
    return _mm256_loadu_ps(f);
}
#endif

/* rows (<= 4) x 16 columns of y from one panel: 2 vectors of 8 per row in registers for all of K. */
#define DEFINE_BLOCK(NAME, WTYPE, LOAD8)                                                                       \
    static inline __attribute__((always_inline)) void NAME(int rows, int cols, long K, const float *x,        \
                                                           long ldx, const WTYPE *panel, const float *bias,    \
                                                           float *y, long ldy, int accumulate) {               \
        __m256 acc[4][2];                                                                                      \
        for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();                               \
        for (long k = 0; k < K; k++) {                                                                         \
            const __m256 w0 = LOAD8(panel + k * PANEL), w1 = LOAD8(panel + k * PANEL + 8);                     \
            for (int r = 0; r < rows; r++) { /* unrolled for each constant `rows` */                           \
                const __m256 xv = _mm256_broadcast_ss(x + r * ldx + k);                                        \
                acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);                                                \
                acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);                                                \
            }                                                                                                  \
        }                                                                                                      \
        if (cols == PANEL) {                                                                                   \
            const __m256 b0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();                              \
            const __m256 b1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();                          \
            for (int r = 0; r < rows; r++) {                                                                   \
                float *yr = y + r * ldy;                                                                       \
                __m256 y0 = _mm256_add_ps(acc[r][0], b0), y1 = _mm256_add_ps(acc[r][1], b1);                   \
                if (accumulate) {                                                                              \
                    y0 = _mm256_add_ps(_mm256_loadu_ps(yr), y0);                                               \
                    y1 = _mm256_add_ps(_mm256_loadu_ps(yr + 8), y1);                                           \
                }                                                                                              \
                _mm256_storeu_ps(yr, y0);                                                                      \
                _mm256_storeu_ps(yr + 8, y1);                                                                  \
            }                                                                                                  \
            return;                                                                                            \
        }                                                                                                      \
        float out[4][PANEL]; /* the last, partial panel: through memory, only its real columns stored */       \
        for (int r = 0; r < rows; r++) {                                                                       \
            _mm256_storeu_ps(out[r], acc[r][0]);                                                               \
            _mm256_storeu_ps(out[r] + 8, acc[r][1]);                                                           \
            for (int c = 0; c < cols; c++) out[r][c] += bias ? bias[c] : 0.0f;                                 \
        }                                                                                                      \
        store_block(rows, cols, out, y, ldy, accumulate);                                                      \
    }
DEFINE_BLOCK(block_f32, float, load8_f32)
DEFINE_BLOCK(block_f16, uint16_t, load8_f16)

#define DEFINE_GEMM(NAME, BLOCK, WTYPE)                                                                        \
    void NAME(long M, long K, long N, const float *x, long ldx, const WTYPE *panels, const float *bias,        \
              float *y, long ldy, int accumulate) {                                                            \
        for (long n = 0; n < N; n += PANEL) { /* each panel from memory once, then from L1 for every row */   \
            const int cols = N - n < PANEL ? (int)(N - n) : PANEL;                                             \
            const WTYPE *p = panels + n * K; /* panel n / 16 */                                                \
            const float *b = bias ? bias + n : NULL;                                                           \
            for (long m = 0; m < M; m += 4) {                                                                  \
                const int rows = M - m < 4 ? (int)(M - m) : 4;                                                 \
                const float *xm = x + m * ldx;                                                                 \
                float *ym = y + m * ldy;                                                                       \
                switch (rows) {                                                                                \
                    case 4: BLOCK(4, cols, K, xm, ldx, p, b, ym + n, ldy, accumulate); break;                  \
                    case 3: BLOCK(3, cols, K, xm, ldx, p, b, ym + n, ldy, accumulate); break;                  \
                    case 2: BLOCK(2, cols, K, xm, ldx, p, b, ym + n, ldy, accumulate); break;                  \
                    default: BLOCK(1, cols, K, xm, ldx, p, b, ym + n, ldy, accumulate);                        \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }
DEFINE_GEMM(gemm_small_f32, block_f32, float)
DEFINE_GEMM(gemm_small_f16, block_f16, uint16_t)

#else /* no AVX2 + FMA: the same panels and order of summation in plain loops */
#define VECTOR_PATH 0
#define F16C_PATH 0
static inline float load_f32(const float *p) { return *p; }
static inline float load_f16(const uint16_t *p) { return half_to_float(*p); }

#define DEFINE_GEMM(NAME, WTYPE, LOAD)                                                                         \
    void NAME(long M, long K, long N, const float *x, long ldx, const WTYPE *panels, const float *bias,        \
              float *y, long ldy, int accumulate) {                                                            \
        for (long m = 0; m < M; m += 4) {                                                                      \
            const int rows = M - m < 4 ? (int)(M - m) : 4;                                                     \
            for (long n = 0; n < N; n += PANEL) {                                                              \
                const int cols = N - n < PANEL ? (int)(N - n) : PANEL;                                         \
                const WTYPE *p = panels + n * K;                                                               \
                float acc[4][PANEL] = {{0.0f}};                                                                \
                for (long k = 0; k < K; k++)                                                                   \
                    for (int r = 0; r < rows; r++)                                                             \
                        for (int c = 0; c < PANEL; c++) acc[r][c] += x[(m + r) * ldx + k] * LOAD(p + k * PANEL + c); \
                for (int r = 0; r < rows; r++)                                                                 \
                    for (int c = 0; c < cols; c++) acc[r][c] += bias ? bias[n + c] : 0.0f;                     \
                store_block(rows, cols, acc, y + m * ldy + n, ldy, accumulate);                                \
            }                                                                                                  \
        }                                                                                                      \
    }
DEFINE_GEMM(gemm_small_f32, float, load_f32)
DEFINE_GEMM(gemm_small_f16, uint16_t, load_f16)
#endif

/* Which paths this build has: bit 0 the AVX2 + FMA vector blocks, bit 1 F16C's float16 loads. */
int gemm_small_features(void) { return VECTOR_PATH | (F16C_PATH << 1); }
