/* The ZeRO-1 GPU engine (train/zero_gpu.h) against the CPU optimizer: registered as one rank
 * (one GPU, the NCCL communicator of one) and under `mpiexec -n 2` (two GPUs; 77 with fewer).
 * Each rank contributes its own gradient; the engine reduce-scatters the buckets (started from
 * simulated readiness callbacks, or all at the end), takes the global norm and the clip factor,
 * runs AdamW on its shard and all-gathers the bf16 weights. After three steps the gathered fp32
 * weights and moments must match lrsa_adamw_step on the summed gradient (1e-5 with an fp32
 * reduce-scatter; a bf16 reduce-scatter rounds the gradients, so 2e-4 on weights and 2e-2
 * relative on the norm), every rank's bf16 weights must be exactly bf16 of those weights, and
 * an engine rebuilt from the gathered state (a resume) must continue the same way for a fourth
 * step. Compiled, NEVER RUN ON A GPU. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/device/device.h"
#include "train/comm.h"

#ifndef LRSA_HAVE_NCCL
int main(void) {
    printf("skipped: built without CUDA and NCCL\n");
    return 77;
}
#else
#include <cuda_runtime_api.h>

#include "gpu_mem.h"
#include "nccl_test_main.h"
#include "test_util.h"
#include "train/comm_nccl.h"
#include "train/zero_gpu.h"

static lrsa_comm world;

enum { N = 100003, STEPS = 3 };
static const int64_t ready[] = {90001, 60000, 30011, 7, 0};
static const double lr = 1e-3, max_norm = 1.0;

static float grad_of(int rank, int step, int64_t i) {
    return 0.01f * (float)sin(0.37 * (double)i + step + 1.3 * rank);
}

static lrsa_adamw make_opt(lrsa_decay_range *ranges) {
    lrsa_adamw o = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    o.lo = 0;
    o.hi = N;
    o.m = lrsa_calloc(N, sizeof(float));
    o.v = lrsa_calloc(N, sizeof(float));
    o.decay = ranges;
    o.n_decay = 2;
    return o;
}

/* One reference step on the host: the summed gradient (in the order NCCL adds two ranks), its
 * norm and clip factor, AdamW over the whole arena. Returns the norm. */
static double reference_step(lrsa_adamw *o, float *param, int step, int bf16_reduce) {
    float *g = lrsa_malloc(sizeof(float) * N);
    for (int64_t i = 0; i < N; i++) {
        float s = 0.0f;
        for (int r = 0; r < world.world; r++) {
            float x = grad_of(r, step, i);
            s += bf16_reduce ? lrsa_bf16_to_f32(lrsa_f32_to_bf16(x)) : x;
        }
        g[i] = bf16_reduce ? lrsa_bf16_to_f32(lrsa_f32_to_bf16(s)) : s;
    }
    double norm = lrsa_grad_norm(g, N);
    lrsa_adamw_step(o, param, g, lr, lrsa_clip_scale(norm, max_norm));
    free(g);
    return norm;
}

/* One engine step from this rank's gradient. */
static double engine_step(lrsa_zero_gpu *z, const lrsa_zero_layout *L, float *grad_dev, int step) {
    lrsa_err e;
    float *g = lrsa_calloc((size_t)L->padded, sizeof(float));
    for (int64_t i = 0; i < N; i++) g[i] = grad_of(world.rank, step, i);
    gm_upload(grad_dev, g, sizeof(float) * (size_t)L->padded);
    free(g);
    lrsa_zero_gpu_arm(z);
    for (size_t k = 0; k < sizeof ready / sizeof ready[0]; k++) lrsa_zero_gpu_on_ready(z, ready[k]);
    if (lrsa_zero_gpu_reduce(z, &e)) fail_msg("reduce: %s", e.msg);
    double norm = 0;
    if (lrsa_zero_gpu_grad_norm(z, max_norm, &norm, &e)) fail_msg("norm: %s", e.msg);
    if (lrsa_zero_gpu_step(z, lr, &e)) fail_msg("step: %s", e.msg);
    return norm;
}

static void compare(const char *what, const float *got, const float *want, double tol) {
    for (int64_t i = 0; i < N; i++)
        if (!(fabs((double)got[i] - (double)want[i]) <= tol * fmax(1.0, fabs((double)want[i]))))
            fail_msg("%s[%lld]: %.9g, expected %.9g", what, (long long)i, got[i], want[i]);
}

static void run(int bf16_reduce, int overlap) {
    printf("rank %d: reduce-scatter %s, overlap %s\n", world.rank, bf16_reduce ? "bf16" : "fp32",
           overlap ? "on" : "off");
    lrsa_decay_range ranges[2] = {{70000, 99000}, {1000, 50000}};
    lrsa_adamw ref = make_opt(ranges), init = make_opt(ranges);
    float *p_ref = lrsa_malloc(sizeof(float) * N), *p0 = lrsa_malloc(sizeof(float) * N);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 5); /* the same weights on every rank */
    for (int64_t i = 0; i < N; i++) p0[i] = p_ref[i] = 0.05f * lrsa_rng_normal(&rng);

    lrsa_zero_layout L;
    lrsa_zero_layout_init(&L, ready, 5, N, world.world, world.rank, 20000, 64);
    float *grad = gm_alloc(sizeof(float) * (size_t)L.padded);
    uint16_t *wb = lrsa_calloc((size_t)L.padded, sizeof(uint16_t));
    for (int64_t i = 0; i < N; i++) wb[i] = lrsa_f32_to_bf16(p0[i]);
    lrsa_bf16 *w = gm_alloc(sizeof(uint16_t) * (size_t)L.padded);
    gm_upload(w, wb, sizeof(uint16_t) * (size_t)L.padded);
    cudaStream_t compute;
    gm_check(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking), "cudaStreamCreate");
    lrsa_zero_gpu_opts o = {bf16_reduce, overlap};
    lrsa_err e;
    lrsa_zero_gpu *z =
        lrsa_zero_gpu_new(&world, &L, &init, p0, NULL, NULL, grad, w, compute, &o, &e);
    if (!z) fail_msg("%s", e.msg);
    const double norm_tol = bf16_reduce ? 2e-2 : 1e-9, w_tol = bf16_reduce ? 2e-4 : 1e-5;
    for (int step = 1; step <= STEPS + 1; step++) {
        double want = reference_step(&ref, p_ref, step, bf16_reduce);
        double got = engine_step(z, &L, grad, step);
        if (!(fabs(got - want) <= norm_tol * want))
            fail_msg("step %d: norm %.12g, expected %.12g", step, got, want);
        if (step != STEPS) continue;
        /* the state every rank gathers: a checkpoint's content */
        float *p = lrsa_malloc(sizeof(float) * N), *m = lrsa_malloc(sizeof(float) * N),
              *v = lrsa_malloc(sizeof(float) * N);
        if (lrsa_zero_gpu_download(z, p, m, v, -1, &e)) fail_msg("download: %s", e.msg);
        compare("weights", p, p_ref, w_tol);
        compare("m", m, ref.m, bf16_reduce ? 2e-2 : 1e-5);
        compare("v", v, ref.v, bf16_reduce ? 5e-2 : 1e-5);
        gm_download(wb, w, sizeof(uint16_t) * (size_t)L.padded);
        for (int64_t i = 0; i < L.padded; i++) {
            uint16_t want_b = i < N ? lrsa_f32_to_bf16(p[i]) : 0;
            if (wb[i] != want_b)
                fail_msg("bf16 weight %lld: %04x, expected %04x", (long long)i, wb[i], want_b);
        }
        /* resume: a new engine from the gathered state continues the run */
        lrsa_adamw resumed = init;
        resumed.t = lrsa_zero_gpu_adam_t(z);
        assert_int_equal(resumed.t, STEPS);
        lrsa_zero_gpu_free(z);
        z = lrsa_zero_gpu_new(&world, &L, &resumed, p, m, v, grad, w, compute, &o, &e);
        if (!z) fail_msg("%s", e.msg);
        free(p);
        free(m);
        free(v);
    }
    float *p = lrsa_malloc(sizeof(float) * N);
    if (lrsa_zero_gpu_download(z, p, NULL, NULL, 0, &e)) fail_msg("download: %s", e.msg);
    if (world.rank == 0) compare("weights after the resumed step", p, p_ref, w_tol);
    free(p);
    lrsa_zero_gpu_free(z);
    gm_check(cudaStreamDestroy(compute), "cudaStreamDestroy");
    lrsa_dev_free(grad);
    lrsa_dev_free(w);
    free(wb);
    free(p0);
    free(p_ref);
    ref.decay = init.decay = NULL; /* the stack array above */
    lrsa_adamw_free(&ref);
    lrsa_adamw_free(&init);
    lrsa_zero_layout_free(&L);
}

static void test_fp32_overlap(void **state) {
    (void)state;
    run(0, 1);
}
static void test_fp32_blocking(void **state) {
    (void)state;
    run(0, 0);
}
static void test_bf16_overlap(void **state) {
    (void)state;
    run(1, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp32_overlap),
        cmocka_unit_test(test_fp32_blocking),
        cmocka_unit_test(test_bf16_overlap),
    };
    return nccl_test_main(&world, "test_gpu_zero", tests, sizeof tests / sizeof tests[0]);
}
#endif
