/* A whole encoder block's streaming step in one call, float32 on the CPU; kernels/block/__init__.py has the
 * Python entry point and the weights' description, asr/model/inference/block.py the packing of a model's block.
 *
 * A streaming step of one stream (a 160 ms chunk: 4 frames) runs each block as ~20 small operations: three
 * LayerNorms, six few-row matrix products (kernels/gemm), the linear attention's chunk step (kernels/
 * linear_attention/cpu_step.c), the conv module's gate, depthwise conv, norm and SiLU (kernels/conv), the
 * feed-forward's SiLU and three residual adds. Their arithmetic is a few microseconds each; from Python each
 * also pays a call, argument checks and a fresh tensor. Here the same kernels (the very same code: their
 * sources are included) run back to back on a per-call workspace, so a block is one call:
 *
 *     x += out(attention(qkv(LN_a(x)), S, z))                              (S, z updated in place)
 *     full = [cache, GLU(conv_in(LN_c(x)) + b)];  x += conv_out(SiLU(LN_t(dwconv(full))))   (optional)
 *     x += ff_out(SiLU(ff_in(LN_f(x))))
 *
 * x [M = B * C, d] contiguous (updated in place); the attention's q, k, v are read where the qkv product wrote
 * them and its output written where the out product reads it ([B, C, H, D] rows); the conv module's new cache
 * is the last K - 1 rows of each stream's `full` [B, K - 1 + C, d] (contiguous), which the caller allocates.
 * LayerNorm: mean, then the variance about it, in float32 (as PyTorch's, up to rounding); SiLU with vexp.h's exp.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv/conv.c"
#include "gemm/gemm.c"
#include "linear_attention/cpu_step.c"

typedef struct {
    const void *panels; /* [ceil(N / 16), K, 16] float32 or float16 (kernels/gemm) */
    const float *bias;  /* [N] or NULL */
    long K, N;
    int half; /* the panels are float16 */
} block_linear;

typedef struct {
    const float *weight, *bias; /* [d] each */
    float eps;
} block_norm;

/* Mirrored field by field by kernels/block/__init__.py (_Weights): change both together. */
typedef struct {
    long d, heads, head_dim, ff_dim, conv_kernel; /* conv_kernel 0: no conv module */
    block_norm attention_norm, conv_norm, conv_tail_norm, ff_norm;
    block_linear qkv, out, conv_in, conv_out, ff_in, ff_out;
    const float *conv_in_bias; /* [2d], added by the gate */
    const float *depthwise;    /* [K, d] tap-major */
    const float *depthwise_bias;
    float attention_eps, rms_eps;
    int rms; /* per-head RMS output norm (gains folded into out) */
    int phi; /* feature map inside the step: 1 elu + 1, 2 relu */
} block_weights;

static void block_gemm(const block_linear *w, long M, const float *x, float *y, int accumulate) {
    if (w->half)
        gemm_small_f16(M, w->K, w->N, x, w->K, (const uint16_t *)w->panels, w->bias, y, w->N, accumulate);
    else
        gemm_small_f32(M, w->K, w->N, x, w->K, (const float *)w->panels, w->bias, y, w->N, accumulate);
}

static void block_layer_norm(long M, long d, const float *x, const block_norm *n, float *y) {
    for (long m = 0; m < M; m++) {
        const float *xr = x + m * d;
        float *yr = y + m * d;
        float mean;
        const float r = layer_norm_scale(xr, d, n->eps, &mean);
        for (long j = 0; j < d; j++) yr[j] = (xr[j] - mean) * r * n->weight[j] + n->bias[j];
    }
}

/* The workspace (floats) of a step of M = B * C rows. */
static long block_work(const block_weights *w, long M, long C) {
    return M * (7 * w->d + w->ff_dim) + chunk_step_work(C, w->head_dim, w->head_dim);
}

/* One block's step for B streams of C frames. Gates: the per-head decay's chunk factors (kernels.linear_attention.
 * chunk_gates for C frames: pair [H, C, C], query [H, C], key [H, C], whole [H]), or all NULL for no decay.
 * cache: the conv module's K - 1 cached rows of stream b at cache + b * csb + r * cst (contiguous rows of d);
 * full [B, K - 1 + C, d] receives them and the chunk's gate (the new cache is its last K - 1 rows); both
 * ignored without a conv module. Returns 0, or 1 when the workspace could not be allocated (nothing written). */
int block_step_f32(const block_weights *w, long B, long C, float *x, float *S, float *z, const float *pair,
                   const float *query, const float *key, const float *whole, const float *cache, long csb, long cst,
                   float *full) {
    const long d = w->d, H = w->heads, D = w->head_dim, M = B * C, K1 = w->conv_kernel - 1;
    float *work = malloc(sizeof(float) * (size_t)block_work(w, M, C));
    if (work == NULL) return 1;
    float *h = work, *qkv = h + M * d, *o = qkv + M * 3 * d, *gate = o + M * d, *f = gate + M * 2 * d;
    float *step_work = f + M * w->ff_dim;

    /* attention: q, k, v as [B, H, C, D] views of the qkv rows, the output into [B, C, H, D] rows */
    block_layer_norm(M, d, x, &w->attention_norm, h);
    block_gemm(&w->qkv, M, h, qkv, 0);
    const long ld = w->qkv.N; /* 3d */
    chunk_step_for(C, D, D)(B, H, C, D, D, qkv, C * ld, D, ld, qkv + d, C * ld, D, ld, qkv + 2 * d, C * ld, D, ld, S,
                            z, pair, query, key, whole, 0, o, C * d, D, d, w->attention_eps, w->rms, w->rms_eps,
                            w->phi, step_work);
    block_gemm(&w->out, M, o, x, 1);

    if (w->conv_kernel > 0) {
        const long rows = K1 + C;
        block_layer_norm(M, d, x, &w->conv_norm, h);
        block_gemm(&w->conv_in, M, h, gate, 0);
        for (long b = 0; b < B; b++)
            for (long r = 0; r < K1; r++) memcpy(full + (b * rows + r) * d, cache + b * csb + r * cst, sizeof(float) * d);
        bias_glu_f32(B, C, d, gate, 2 * d, w->conv_in_bias, full + K1 * d, rows * d, d);
        dwconv_ln_silu_f32(B, C, w->conv_kernel, d, full, rows * d, d, w->depthwise, w->depthwise_bias,
                           w->conv_tail_norm.weight, w->conv_tail_norm.bias, w->conv_tail_norm.eps, h);
        block_gemm(&w->conv_out, M, h, x, 1);
    }

    block_layer_norm(M, d, x, &w->ff_norm, h);
    block_gemm(&w->ff_in, M, h, f, 0);
    for (long i = 0; i < M * w->ff_dim; i++) f[i] = silu_approx(f[i]);
    block_gemm(&w->ff_out, M, f, x, 1);
    free(work);
    return 0;
}
