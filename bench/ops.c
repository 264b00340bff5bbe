/* CPU op timings at SmolLM2-135M layer sizes, next to the SGEMM rate of the same shapes, to
 * show that the non-GEMM ops are cheap relative to the matrix products of a training step.
 * Usage: bench_ops [rows=1024]   (OPENBLAS_NUM_THREADS controls the BLAS threads) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/error.h"
#include "base/rng.h"
#include "kernels/cpu/cpu_threads.h"
#include "kernels/linear/linear.h"
#include "kernels/lm_head_loss/lm_head_loss.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/rope/rope.h"
#include "kernels/swiglu/swiglu.h"
#include "train/optim.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *randn(int64_t n, float s, lrsa_rng *r) {
    float *x = lrsa_alloc_aligned(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = s * lrsa_rng_normal(r);
    return x;
}

/* Best of a few repetitions, in milliseconds. */
#define TIME_MS(out, reps, stmt)                                                                   \
    do {                                                                                           \
        double best_ = 1e30;                                                                       \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            double t0_ = now();                                                                    \
            stmt;                                                                                  \
            double dt_ = (now() - t0_) * 1e3;                                                      \
            if (dt_ < best_) best_ = dt_;                                                          \
        }                                                                                          \
        (out) = best_;                                                                             \
    } while (0)

int main(int argc, char **argv) {
    int64_t N = argc > 1 ? atoll(argv[1]) : 1024;
    const int C = 576, I = 1536, V = 49152, HQ = 9, HKV = 3, D = 64;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 1);
    float *x = randn(N * C, 1, &rng), *w = randn((int64_t)2 * I * C, 0.02f, &rng);
    float *gu = randn(N * 2 * I, 1, &rng), *y = randn(N * 2 * I, 1, &rng);
    float *dgu = randn(N * 2 * I, 1, &rng), *dw = randn((int64_t)2 * I * C, 1, &rng);
    float *nw = randn(C, 1, &rng), *rstd = randn(N, 1, &rng), *dx = randn(N * C, 1, &rng);
    float *qkv = randn(N * (HQ + 2 * HKV) * D, 1, &rng), inv[32];
    int32_t *pos = lrsa_malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)(i % 2048);
    lrsa_rope_config rc = {.theta = 100000.0f};
    lrsa_rope_inv_freq(inv, D, &rc);

    double t;
    printf("rows N = %lld, hidden %d, intermediate %d, vocab %d\n", (long long)N, C, I, V);
    TIME_MS(t, 3, lrsa_linear_forward_cpu(gu, x, w, NULL, N, C, 2 * I));
    double gflop = 2.0 * N * C * 2 * I * 1e-9;
    printf("%-34s %9.3f ms  %6.1f GFLOP/s\n", "linear fwd [N,576]x[3072,576]^T", t,
           gflop / t * 1e3);
    double t_gemm = t;
    TIME_MS(t, 3, lrsa_linear_backward_cpu(dx, dw, NULL, gu, x, w, N, C, 2 * I));
    printf("%-34s %9.3f ms  %6.1f GFLOP/s\n", "linear bwd (dx, dw)", t, 2 * gflop / t * 1e3);
    TIME_MS(t, 20, lrsa_rmsnorm_forward_cpu(y, rstd, x, nw, N, C, 1e-5f));
    printf("%-34s %9.3f ms  (%.1f%% of the gate/up GEMM)\n", "rmsnorm fwd", t, 100 * t / t_gemm);
    TIME_MS(t, 20, lrsa_rmsnorm_backward_cpu(dx, dw, x, x, x, nw, rstd, N, C));
    printf("%-34s %9.3f ms  (%.1f%%)\n", "rmsnorm bwd", t, 100 * t / t_gemm);
    TIME_MS(t, 20, lrsa_swiglu_forward_cpu(y, gu, N, I));
    printf("%-34s %9.3f ms  (%.1f%%)\n", "swiglu fwd", t, 100 * t / t_gemm);
    TIME_MS(t, 20, lrsa_swiglu_backward_cpu(dgu, y, gu, N, I));
    printf("%-34s %9.3f ms  (%.1f%%)\n", "swiglu bwd", t, 100 * t / t_gemm);
    TIME_MS(t, 20, lrsa_rope_forward_cpu(qkv, pos, inv, N, HQ + HKV, D, (HQ + 2 * HKV) * D));
    printf("%-34s %9.3f ms  (%.1f%%)\n", "rope fwd (q and k heads)", t, 100 * t / t_gemm);

    /* LM head + loss on every row, forward and backward, against its three GEMMs' flops */
    float *W = randn((int64_t)V * C, 0.02f, &rng), *dW = randn((int64_t)V * C, 0, &rng);
    float *wt = lrsa_malloc(sizeof(float) * (size_t)N);
    int32_t *tg = lrsa_malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t i = 0; i < N; i++) wt[i] = 1.0f / N, tg[i] = (int32_t)lrsa_rng_below(&rng, V);
    TIME_MS(t, 2, lrsa_lm_head_loss_cpu(NULL, dx, nw, dW, x, nw, W, tg, wt, N, C, V, 1e-5f));
    double lm_gflop = 3 * 2.0 * N * C * V * 1e-9;
    printf("%-34s %9.3f ms  %6.1f GFLOP/s (GEMM flops only)\n", "lm_head_loss fwd+bwd", t,
           lm_gflop / t * 1e3);

    /* AdamW on 16M parameters (every element decayed), the trainer's update */
    const int64_t P = 16 * 1024 * 1024;
    float *prm = randn(P, 0.02f, &rng), *grd = randn(P, 1e-3f, &rng);
    lrsa_adamw opt = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    lrsa_decay_range all = {0, P};
    opt.lo = 0, opt.hi = P, opt.decay = &all, opt.n_decay = 1;
    opt.m = lrsa_calloc((size_t)P, sizeof(float));
    opt.v = lrsa_calloc((size_t)P, sizeof(float));
    TIME_MS(t, 5, lrsa_adamw_step(&opt, prm, grd, 1e-4, 1.0));
    printf("%-34s %9.3f ms  (%.2f ns per parameter)\n", "adamw step, 16M parameters", t,
           t * 1e6 / (double)P);
    printf("threads %d (OPENBLAS_NUM_THREADS)\n", lrsa_cpu_threads());
    return 0;
}
