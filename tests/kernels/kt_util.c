#include "kt_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

float *kt_randn(int64_t n, float scale, lrsa_rng *rng) {
    float *x = lrsa_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    tu_fill_normal(x, n, scale, rng);
    return x;
}

float *kt_zeros(int64_t n) {
    return lrsa_calloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

double *kt_zeros_d(int64_t n) {
    return lrsa_calloc((size_t)(n > 0 ? n : 1), sizeof(double));
}

float *kt_copy(const float *x, int64_t n) {
    float *y = lrsa_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

double kt_rel_err_d(const float *a, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(ref[i])) return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return sqrt(num) / fmax(sqrt(den), 1e-30);
}

double kt_dot(const float *out, const float *R, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

void kt_gradcheck(const char *label, lrsa_gradcheck_loss_fn loss, void *ctx, float *x,
                  const float *g, int64_t n) {
    lrsa_gradcheck_opts o = lrsa_gradcheck_defaults();
    lrsa_gradcheck_result r;
    double err = lrsa_gradcheck(loss, ctx, x, g, n, &o, &r);
    if (getenv("KT_VERBOSE"))
        fprintf(stderr, "%s: coord %.2e dir %.2e (%lld coords)\n", label, r.coord_err, r.dir_err,
                (long long)r.coords_checked);
    if (!(err <= KT_GRAD_TOL))
        fail_msg("%s: gradient check error %.3g > %.3g (worst element %lld: fd %.6g vs analytic "
                 "%.6g; directional %.3g)",
                 label, err, KT_GRAD_TOL, (long long)r.worst_index, r.worst_fd, r.worst_grad,
                 r.dir_err);
}

void kt_assert_scaled(const float *a, const float *b, float factor, int64_t n, const char *label) {
    float *fb = lrsa_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) fb[i] = factor * b[i];
    double e = tu_rel_err(a, fb, n);
    free(fb);
    if (!(e <= 1e-6)) fail_msg("%s: not %g x the first result (rel. error %.3g)", label, factor, e);
}

void kt_assert_same(const float *a, const float *b, int64_t n, const char *label) {
    if (memcmp(a, b, sizeof(float) * (size_t)n) != 0)
        fail_msg("%s: differs bitwise from the expected result", label);
}
