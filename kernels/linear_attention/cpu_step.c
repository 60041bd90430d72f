/* The recurrent form's chunk step, fused for the CPU: one pass over each (stream, head) state.
 *
 * Same maths as recurrent_chunk_step (recurrent.py), for float32 and inference only. With the chunk's decay
 * factors (chunk_gates: pair P[t][s] = exp(c_t - c_s), query a_t = exp(c_t), key b_s = exp(c_T - c_s),
 * whole w = exp(c_T); all ones without decay):
 *     A[t][s] = (q_t . k_s) P[t][s]   (s <= t)
 *     y_t     = (sum_s A[t][s] v_s + a_t q_t S) / (sum_s A[t][s] + a_t q_t . z + eps)
 *     S      <- w S + sum_s b_s k_s v_s^T,   z <- w z + sum_s b_s k_s
 * optionally followed by y_t <- y_t / sqrt(mean(y_t^2) + rms_eps) (the attention's per-head RMS output norm,
 * gains folded elsewhere), and optionally with the feature map applied to q and k on the way in (phi = 1:
 * kernels.feature_maps.elu_plus_one, elu(x) + 1, with kernels/vexp.h's exp; 2: relu; 0: q and k come mapped), so the projection's output is
 * read as it is.
 *
 * Why: in PyTorch the step is ~15 batched ops, five of which sweep the state (read-out, decay, update: read
 * and write), which for a big batch is the step's largest memory traffic. Here each row of S is loaded once,
 * used for every query of the chunk, decayed, updated and stored: one read and one write of the state.
 * The inner loops run over the value dimension (contiguous), so the compiler vectorises them without
 * reassociating any sum (no -ffast-math: the order of additions per element is fixed).
 *
 * Layout: q, k [B, H, T, Dk] and v, out [B, H, T, Dv] with any strides (in elements) but a contiguous last
 * dimension, so the caller can pass views of a projection's output; S [B, H, Dk, Dv] and z [B, H, Dk]
 * contiguous, updated in place; gates contiguous [G, H, T, T], [G, H, T], [G, H, T], [G, H] with G = 1 (one
 * decay for all streams) or B (per stream; gstride = 1), or all NULL (no decay).
 */
#include <math.h>
#include <stdlib.h>

#include "vexp.h"

typedef struct {
    const float *base;
    long sb, sh, st; /* strides of the batch, head and time dimensions, in elements */
} view4;

static inline const float *row(view4 x, long b, long h, long t) { return x.base + b * x.sb + h * x.sh + t * x.st; }

/* The kernel's arguments (sizes named T, DK, DV), shared by the entry point and its specialisations. */
#define STEP_PARAMS(T, DK, DV)                                                                                \
    long B, long H, long T, long DK, long DV, const float *q, long qsb, long qsh, long qst, const float *k,   \
        long ksb, long ksh, long kst, const float *v, long vsb, long vsh, long vst, float *S, float *z,      \
        const float *pair, const float *query, const float *key, const float *whole, long gstride, float *out, \
        long osb, long osh, long ost, float eps, int rms, float rms_eps, int phi

/* A chunk of 4 frames (160 ms at 40 ms per frame: the streaming default) with a common head size gets its own
 * fully unrolled copy; anything else the general loop. */
#define STEP_NAME step_4_16
#define FIXED_T 4
#define FIXED_D 16
#include "cpu_step_body.h"
#define STEP_NAME step_4_32
#define FIXED_T 4
#define FIXED_D 32
#include "cpu_step_body.h"
#define STEP_NAME step_4_48
#define FIXED_T 4
#define FIXED_D 48
#include "cpu_step_body.h"
#define STEP_NAME step_4_64
#define FIXED_T 4
#define FIXED_D 64
#include "cpu_step_body.h"
#define STEP_NAME step_any
#include "cpu_step_body.h"

typedef void step_fn(STEP_PARAMS(T, Dk, Dv), float *restrict work);

/* The workspace (floats) the general loop needs, and the specialisation for a chunk's sizes. */
static inline long chunk_step_work(long T, long Dk, long Dv) { return 2 * Dk * T + T * Dv + T; }

static step_fn *chunk_step_for(long T, long Dk, long Dv) {
    if (T == 4 && Dk == Dv) {
        switch (Dk) {
            case 16: return step_4_16;
            case 32: return step_4_32;
            case 48: return step_4_48;
            case 64: return step_4_64;
        }
    }
    return step_any;
}

/* Returns 0, or 1 when the workspace could not be allocated (nothing was written then). */
int chunk_step_f32(STEP_PARAMS(T, Dk, Dv)) {
    float *work = malloc(sizeof(float) * (size_t)chunk_step_work(T, Dk, Dv));
    if (work == NULL) return 1;
    step_fn *step = chunk_step_for(T, Dk, Dv);
    step(B, H, T, Dk, Dv, q, qsb, qsh, qst, k, ksb, ksh, kst, v, vsb, vsh, vst, S, z, pair, query, key, whole, gstride,
         out, osb, osh, ost, eps, rms, rms_eps, phi, work);
    free(work);
    return 0;
}
