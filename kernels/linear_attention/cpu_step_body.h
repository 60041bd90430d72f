/* The body of the fused chunk step (cpu_step.c), included once per specialisation.
 *
 * Before including, define STEP_NAME and either FIXED_T and FIXED_D (a chunk of FIXED_T frames, heads of
 * FIXED_D: true compile-time constants, so every short loop unrolls into whole vector operations and the
 * per-row arrays live in registers) or nothing more (the general loop, sizes from the arguments).
 */
static void STEP_NAME(STEP_PARAMS(T_arg, Dk_arg, Dv_arg), float *restrict work) {
#ifdef FIXED_T
    enum { T = FIXED_T, Dk = FIXED_D, Dv = FIXED_D };
    (void)T_arg, (void)Dk_arg, (void)Dv_arg;
#else
    const long T = T_arg, Dk = Dk_arg, Dv = Dv_arg;
#endif
    view4 Q = {q, qsb, qsh, qst}, K = {k, ksb, ksh, kst}, V = {v, vsb, vsh, vst};
    /* per (stream, head) scratch: decayed queries and keys [T][Dk], numerators [T][Dv], their denominators [T]:
     * fixed arrays for a fixed size, else the caller's workspace */
#ifdef FIXED_T
    float qd[T * Dk], kd[T * Dk], num[T * Dv], den[T];
    (void)work;
#else
    float *restrict qd = work, *restrict kd = qd + Dk * T, *restrict num = kd + Dk * T, *restrict den = num + T * Dv;
#endif
    for (long b = 0; b < B; b++) {
        for (long h = 0; h < H; h++) {
            long g = b * gstride;
            const float *P = pair ? pair + (g * H + h) * T * T : NULL;
            const float *qa = query ? query + (g * H + h) * T : NULL;
            const float *kb = key ? key + (g * H + h) * T : NULL;
            float w = whole ? whole[g * H + h] : 1.0f;
            /* the next (stream, head)'s state is fetched while this one computes: a big batch's state does
             * not stay in cache between steps, and one state block is read only once per step */
            if (b * H + h + 1 < B * H) { /* (256 streams, cold state: 22 -> 15 ms for six layers, measured) */
                const char *nS = (const char *)(S + (b * H + h + 1) * Dk * Dv);
                const char *nz = (const char *)(z + (b * H + h + 1) * Dk);
                for (long at = 0; at < Dk * Dv * (long)sizeof(float); at += 64) __builtin_prefetch(nS + at, 1, 2);
                for (long at = 0; at < Dk * (long)sizeof(float); at += 64) __builtin_prefetch(nz + at, 1, 2);
            }
            /* the feature map on q and k (into the scratch rows that become the decayed queries and keys):
             * phi = 1 is kernels.feature_maps.elu_plus_one (x + 1 for x > 0, else exp(x)), 2 is relu */
            for (long t = 0; t < T; t++) {
                const float *qt = row(Q, b, h, t), *kt = row(K, b, h, t);
                float *qf = qd + t * Dk, *kf = kd + t * Dk;
                if (phi == 1) {
                    for (long i = 0; i < Dk; i++) qf[i] = qt[i] > 0.0f ? qt[i] + 1.0f : exp_approx(qt[i]);
                    for (long i = 0; i < Dk; i++) kf[i] = kt[i] > 0.0f ? kt[i] + 1.0f : exp_approx(kt[i]);
                } else if (phi == 2) {
                    for (long i = 0; i < Dk; i++) qf[i] = qt[i] > 0.0f ? qt[i] : 0.0f;
                    for (long i = 0; i < Dk; i++) kf[i] = kt[i] > 0.0f ? kt[i] : 0.0f;
                } else {
                    for (long i = 0; i < Dk; i++) qf[i] = qt[i];
                    for (long i = 0; i < Dk; i++) kf[i] = kt[i];
                }
            }
            /* intra-chunk scores A[t][s] = (q_t . k_s) P[t][s], their row sums and the intra-chunk numerators */
            for (long t = 0; t < T; t++) {
                const float *qt = qd + t * Dk;
                float *nt = num + t * Dv;
                float sum = 0.0f;
                for (long j = 0; j < Dv; j++) nt[j] = 0.0f;
                for (long s = 0; s <= t; s++) {
                    const float *ks = kd + s * Dk;
                    float a = 0.0f;
#pragma omp simd reduction(+ : a)
                    for (long i = 0; i < Dk; i++) a += qt[i] * ks[i];
                    if (P) a *= P[t * T + s];
                    sum += a;
                    const float *vs = row(V, b, h, s);
                    for (long j = 0; j < Dv; j++) nt[j] += a * vs[j];
                }
                den[t] = sum;
            }
            /* queries decayed from the chunk start, keys to its end */
            for (long t = 0; t < T; t++) {
                float at = qa ? qa[t] : 1.0f, bt = kb ? kb[t] : 1.0f;
                for (long i = 0; i < Dk; i++) qd[t * Dk + i] *= at;
                for (long i = 0; i < Dk; i++) kd[t * Dk + i] *= bt;
            }
            float *restrict Sbh = S + (b * H + h) * Dk * Dv;
            float *restrict zbh = z + (b * H + h) * Dk;
            /* the carried state's part of each query's result: q_t . z as short dot products, q_t S in the pass
             * over the state below */
            for (long t = 0; t < T; t++) {
                const float *qt = qd + t * Dk;
                float dz = 0.0f;
#pragma omp simd reduction(+ : dz)
                for (long i = 0; i < Dk; i++) dz += qt[i] * zbh[i];
                den[t] += dz;
            }
            for (long i = 0; i < Dk; i++) {
                float zi = zbh[i] * w;
                for (long s = 0; s < T; s++) zi += kd[s * Dk + i];
                zbh[i] = zi;
            }
            /* one pass over the state: row S[i] is loaded once, read by every query, decayed, updated with the
             * chunk's keys and values, and stored; in column blocks of 16 where Dv allows (one AVX-512
             * register): with fixed sizes each query's accumulator and each value row stay in registers. */
#ifdef FIXED_T
            enum { JB = Dv % 16 == 0 ? 16 : Dv };
#else
            const long JB = Dv % 16 == 0 ? 16 : Dv;
#endif
            for (long jb = 0; jb < Dv; jb += JB) {
                float acc[T][JB], vb[T][JB];
                for (long t = 0; t < T; t++) {
                    const float *vs = row(V, b, h, t) + jb;
                    for (long j = 0; j < JB; j++) acc[t][j] = 0.0f, vb[t][j] = vs[j];
                }
                for (long i = 0; i < Dk; i++) {
                    float *Si = Sbh + i * Dv + jb, si[JB];
                    for (long j = 0; j < JB; j++) si[j] = Si[j];
                    for (long t = 0; t < T; t++) {
                        const float c = qd[t * Dk + i];
                        for (long j = 0; j < JB; j++) acc[t][j] += c * si[j];
                    }
                    for (long j = 0; j < JB; j++) si[j] *= w;
                    for (long s = 0; s < T; s++) {
                        const float c = kd[s * Dk + i];
                        for (long j = 0; j < JB; j++) si[j] += c * vb[s][j];
                    }
                    for (long j = 0; j < JB; j++) Si[j] = si[j];
                }
                for (long t = 0; t < T; t++)
                    for (long j = 0; j < JB; j++) num[t * Dv + jb + j] += acc[t][j];
            }
            /* out = num / (den + eps), then the optional RMS norm */
            for (long t = 0; t < T; t++) {
                float *ot = (float *)row((view4){out, osb, osh, ost}, b, h, t);
                const float *nt = num + t * Dv;
                float d = den[t] + eps;
                for (long j = 0; j < Dv; j++) ot[j] = nt[j] / d;
                if (rms) {
                    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
                    for (long j = 0; j < Dv; j++) ss += ot[j] * ot[j];
                    float r = 1.0f / sqrtf(ss / (float)Dv + rms_eps);
                    for (long j = 0; j < Dv; j++) ot[j] *= r;
                }
            }
        }
    }
}


#undef STEP_NAME
#undef FIXED_T
#undef FIXED_D
