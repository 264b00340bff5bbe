/* Shared helpers of the GPU kernel tests: bf16 rounding on the host, device upload/download of
 * fp32 data stored as bf16, NaN poisoning, and norm-relative comparisons that count failures.
 * Header-only (static functions) so each test stays one executable. */
#ifndef LRSA_TESTS_GPU_COMPARE_H
#define LRSA_TESTS_GPU_COMPARE_H
#ifdef LRSA_HAVE_CUDA
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"
#include "autograd/tensor.h"
#include "kernels/device/device_buffer.h"
#include "test_util.h"

/* Tolerances of issue 7: bf16 outputs against the fp32 CPU reference, and fp32 paths. */
#define GC_TOL_BF16 1e-2
#define GC_TOL_F32  1e-5

/* Random N(0, scale^2) values already rounded to bf16, so CPU and GPU see identical inputs. */
static inline float *gc_random_bf16_values(int64_t n, float scale, lrsa_rng *rng) {
    float *x = lrsa_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    tu_fill_normal(x, n, scale, rng);
    for (int64_t i = 0; i < n; i++) x[i] = lrsa_bf16_to_f32(lrsa_f32_to_bf16(x[i]));
    return x;
}

static inline lrsa_bf16 *gc_upload_bf16(const float *x, int64_t n) {
    lrsa_bf16 *h = lrsa_malloc(sizeof(lrsa_bf16) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) h[i] = lrsa_f32_to_bf16(x[i]);
    lrsa_bf16 *d = lrsa_dev_alloc(sizeof(lrsa_bf16) * (size_t)n);
    lrsa_dev_upload(d, h, sizeof(lrsa_bf16) * (size_t)n);
    free(h);
    return d;
}

static inline float *gc_upload_f32(const float *x, int64_t n) {
    float *d = lrsa_dev_alloc(sizeof(float) * (size_t)n);
    lrsa_dev_upload(d, x, sizeof(float) * (size_t)n);
    return d;
}

/* A device buffer of n elements of `elem` bytes filled with 0xFF: NaN as bf16 and as fp32, so
 * any element a kernel forgets to write fails the comparison. */
static inline void *gc_poisoned(int64_t n, size_t elem) {
    void *d = lrsa_dev_alloc(elem * (size_t)n);
    lrsa_dev_fill_bytes(d, 0xFF, elem * (size_t)n);
    return d;
}

static inline float *gc_download_bf16(const lrsa_bf16 *d, int64_t n) {
    lrsa_bf16 *h = lrsa_malloc(sizeof(lrsa_bf16) * (size_t)(n > 0 ? n : 1));
    lrsa_dev_sync();
    lrsa_dev_download(h, d, sizeof(lrsa_bf16) * (size_t)n);
    float *x = lrsa_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) x[i] = lrsa_bf16_to_f32(h[i]);
    free(h);
    return x;
}

static inline float *gc_download_f32(const float *d, int64_t n) {
    float *x = lrsa_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    lrsa_dev_sync();
    lrsa_dev_download(x, d, sizeof(float) * (size_t)n);
    return x;
}

/* Norm-relative error of got against want within tol (NaN never passes); prints one line. */
static inline void gc_expect_close(int *failures, const char *label, const float *got,
                                   const float *want, int64_t n, double tol) {
    double e = tu_rel_err(got, want, n);
    int ok = e <= tol;
    printf("%-4s %-48s rel err %.3g (tol %.0e)\n", ok ? "ok" : "FAIL", label, e, tol);
    if (!ok) (*failures)++;
}

/* Bitwise equality (for the ops whose GPU result is promised to equal the CPU's exactly). */
static inline void gc_expect_equal(int *failures, const char *label, const void *got,
                                   const void *want, size_t bytes) {
    int ok = memcmp(got, want, bytes) == 0;
    printf("%-4s %-48s %s\n", ok ? "ok" : "FAIL", label, ok ? "bitwise equal" : "differs");
    if (!ok) (*failures)++;
}
#endif
#endif
