/* LRSA attention vs dense causal attention on the CPU: forward + backward time at one sequence
 * length with SmolLM2-like heads (Hq = 9, Hkv = 3, D = 64), S = 16, L = 128,
 * keep = 1/8 and 1/4. Prints times, the attended-key fraction and the time ratio.
 * usage: bench_attention_cpu [T (default 8192)] [repeats (default 1)]
 * Set OPENBLAS_NUM_THREADS to fix the BLAS thread count (the figures depend on it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/error.h"
#include "base/rng.h"
#include "kernels/attention/attention.h"
#include "kernels/lagkv/lagkv.h"
#include "kernels/lrsa_attention/lrsa_attention.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Visible (query, key) pairs of one head under the LRSA rule, over those of dense causal. */
static double attended_fraction(int T, const lrsa_lagkv_params *p) {
    int S = p->sink, L = p->lag, kk = lrsa_lagkv_k(p);
    double lrsa = 0, dense = 0;
    for (int i = 0; i < T; i++) {
        dense += i + 1;
        if (i < S + 2 * L) {
            lrsa += i + 1;
            continue;
        }
        int c = (i - S) / L;
        lrsa += S + (double)kk * (c - 1) + (i - (S + (c - 1) * L) + 1);
    }
    return lrsa / dense;
}

typedef struct {
    float *qkv, *dqkv, *out, *dout, *lse;
    lrsa_attn_dims d;
} buffers;

int main(int argc, char **argv) {
    if (argc > 1 && (argv[1][0] == '-')) {
        printf("usage: bench_attention_cpu [T (default 8192)] [repeats (default 1)]\n");
        return 0;
    }
    int T = argc > 1 ? atoi(argv[1]) : 8192, reps = argc > 2 ? atoi(argv[2]) : 1;
    if (T < 1 || reps < 1) {
        fprintf(stderr, "bench_attention_cpu: T and repeats must be positive integers\n");
        return 2;
    }
    const int Hq = 9, Hkv = 3, D = 64;
    int64_t qs = (int64_t)(Hq + 2 * Hkv) * D, os = (int64_t)Hq * D;
    buffers b = {.d = {1, T, Hq, Hkv, D, qs, qs, os, 1.0f / sqrtf((float)D)}};
    b.qkv = lrsa_malloc(sizeof(float) * (size_t)(T * qs));
    b.dqkv = lrsa_malloc(sizeof(float) * (size_t)(T * qs));
    b.out = lrsa_malloc(sizeof(float) * (size_t)(T * os));
    b.dout = lrsa_malloc(sizeof(float) * (size_t)(T * os));
    b.lse = lrsa_malloc(sizeof(float) * (size_t)Hq * T);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 1);
    for (int64_t i = 0; i < T * qs; i++) b.qkv[i] = lrsa_rng_normal(&rng);
    for (int64_t i = 0; i < T * os; i++) b.dout[i] = lrsa_rng_normal(&rng);
    float *q = b.qkv, *k = b.qkv + Hq * D, *v = b.qkv + (Hq + Hkv) * D;
    float *dq = b.dqkv, *dk = b.dqkv + Hq * D, *dv = b.dqkv + (Hq + Hkv) * D;
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    printf("attention CPU bench: B=1 T=%d Hq=%d Hkv=%d D=%d, OPENBLAS_NUM_THREADS=%s, best of %d\n",
           T, Hq, Hkv, D, thr ? thr : "(unset)", reps);

    double dense_f = INFINITY, dense_b = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        lrsa_attention_forward_cpu(b.out, b.lse, q, k, v, &b.d);
        double t1 = now_s();
        lrsa_attention_backward_cpu(dq, dk, dv, b.dout, q, k, v, b.out, b.lse, &b.d);
        double t2 = now_s();
        dense_f = fmin(dense_f, t1 - t0), dense_b = fmin(dense_b, t2 - t1);
    }
    printf("dense causal      : fwd %.3f s  bwd %.3f s  total %.3f s\n", dense_f, dense_b,
           dense_f + dense_b);

    const float keeps[2] = {0.125f, 0.25f};
    for (int x = 0; x < 2; x++) {
        lrsa_lagkv_params p = {16, 128, keeps[x], 1.0f};
        int ns = lrsa_lagkv_num_scored(T, &p), kk = lrsa_lagkv_k(&p);
        int32_t *sel = lrsa_malloc(sizeof(int32_t) * ((size_t)Hkv * ns * kk + 1));
        double sel_t = INFINITY, f = INFINITY, bw = INFINITY;
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            lrsa_lagkv_select_cpu(sel, NULL, k, v, 1, T, Hkv, D, qs, &p);
            double t1 = now_s();
            lrsa_lrsa_attention_forward_cpu(b.out, b.lse, q, k, v, sel, &b.d, &p);
            double t2 = now_s();
            lrsa_lrsa_attention_backward_cpu(dq, dk, dv, b.dout, q, k, v, b.out, b.lse, sel, &b.d,
                                             &p);
            double t3 = now_s();
            sel_t = fmin(sel_t, t1 - t0), f = fmin(f, t2 - t1), bw = fmin(bw, t3 - t2);
        }
        printf("LRSA keep=%-6g  : fwd %.3f s  bwd %.3f s  total %.3f s  (+ LagKV select %.4f s)"
               "  attended keys %.3f of dense  time ratio LRSA/dense %.3f\n",
               (double)keeps[x], f, bw, f + bw, sel_t, attended_fraction(T, &p),
               (f + bw) / (dense_f + dense_b));
        free(sel);
    }
    free(b.qkv), free(b.dqkv), free(b.out), free(b.dout), free(b.lse);
    return 0;
}
