/* Helpers shared by the kernel tests: random buffers, double-precision comparisons and the
 * gradient-check assertion. */
#ifndef LRSA_TESTS_KT_UTIL_H
#define LRSA_TESTS_KT_UTIL_H

#include <stdint.h>

#include "base/error.h"
#include "autograd/gradcheck.h"
#include "base/rng.h"
#include "test_util.h"

/* Fresh N(0, scale^2) floats (caller frees). */
float *kt_randn(int64_t n, float scale, lrsa_rng *rng);
float *kt_zeros(int64_t n);
double *kt_zeros_d(int64_t n);
float *kt_copy(const float *x, int64_t n);
/* ||a - ref|| / ||ref|| with the reference in double; NaN gives +INFINITY. */
double kt_rel_err_d(const float *a, const double *ref, int64_t n);
/* sum_i out[i] * R[i] in double: the scalar loss used by every gradient check. */
double kt_dot(const float *out, const float *R, int64_t n);

/* Tolerance of every finite-difference check (rationale in autograd/gradcheck.h). */
#define KT_GRAD_TOL 1e-2
/* Tolerance of fp32 forward results against double references for these small sizes:
 * a few ulps of accumulated rounding per output, far below any formula error. */
#define KT_FWD_TOL 1e-5

/* Fails unless a == factor * b up to fp32 rounding of a few additions (rel. 1e-6): the check
 * that parameter gradients accumulate. */
void kt_assert_scaled(const float *a, const float *b, float factor, int64_t n, const char *label);
/* Fails unless a and b are bitwise equal (e.g. an activation gradient computed twice is
 * overwritten, not summed). */
void kt_assert_same(const float *a, const float *b, int64_t n, const char *label);

/* Runs lrsa_gradcheck on x (n floats) against analytic g and fails the test, naming label,
 * when the worst error exceeds KT_GRAD_TOL. */
void kt_gradcheck(const char *label, lrsa_gradcheck_loss_fn loss, void *ctx, float *x,
                  const float *g, int64_t n);

#endif
