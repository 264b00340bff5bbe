/* rmsnorm: forward and rstd against a double reference, gradient checks of x (with and without
 * the fused residual gradient) and w, aliasing of dresidual with dx, and += on dw. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rmsnorm/rmsnorm.h"
#include "kt_util.h"

enum { N = 7, C = 13 };
static const float EPS = 1e-5f;

typedef struct {
    float *x, *w, *y, *rstd, *R, *D; /* loss = sum(y * R) + sum(x * D) */
} rn_ctx;

static double rn_loss(void *p) {
    rn_ctx *c = p;
    lrsa_rmsnorm_forward_cpu(c->y, c->rstd, c->x, c->w, N, C, EPS);
    double l = kt_dot(c->y, c->R, N * C);
    if (c->D) l += kt_dot(c->x, c->D, N * C);
    return l;
}

static void test_rmsnorm_forward(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 21);
    float *x = kt_randn(N * C, 2.0f, &rng), *w = kt_randn(C, 1.0f, &rng);
    float *y = kt_zeros(N * C), *rstd = kt_zeros(N);
    double *ref = kt_zeros_d(N * C), *rref = kt_zeros_d(N);
    for (int i = 0; i < N; i++) {
        double ss = 0;
        for (int j = 0; j < C; j++) ss += (double)x[i * C + j] * x[i * C + j];
        rref[i] = 1.0 / sqrt(ss / C + EPS);
        for (int j = 0; j < C; j++) ref[i * C + j] = x[i * C + j] * rref[i] * w[j];
    }
    lrsa_rmsnorm_forward_cpu(y, rstd, x, w, N, C, EPS);
    assert_true(kt_rel_err_d(y, ref, N * C) <= KT_FWD_TOL);
    assert_true(kt_rel_err_d(rstd, rref, N) <= KT_FWD_TOL);
    /* rstd may be NULL */
    float *y2 = kt_zeros(N * C);
    lrsa_rmsnorm_forward_cpu(y2, NULL, x, w, N, C, EPS);
    kt_assert_same(y2, y, N * C, "rmsnorm forward without rstd");
    free(x), free(w), free(y), free(rstd), free(ref), free(rref), free(y2);
}

static void test_rmsnorm_gradients(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 22);
    rn_ctx c = {kt_randn(N * C, 1.0f, &rng),
                kt_randn(C, 1.0f, &rng),
                kt_zeros(N * C),
                kt_zeros(N),
                kt_randn(N * C, 1.0f, &rng),
                NULL};
    float *dx = kt_zeros(N * C), *dw = kt_zeros(C);
    lrsa_rmsnorm_forward_cpu(c.y, c.rstd, c.x, c.w, N, C, EPS);
    lrsa_rmsnorm_backward_cpu(dx, dw, c.R, NULL, c.x, c.w, c.rstd, N, C);
    kt_gradcheck("rmsnorm dx", rn_loss, &c, c.x, dx, N * C);
    kt_gradcheck("rmsnorm dw", rn_loss, &c, c.w, dw, C);

    /* += on dw, = on dx */
    float *dx1 = kt_copy(dx, N * C), *dw1 = kt_copy(dw, C);
    lrsa_rmsnorm_backward_cpu(dx, dw, c.R, NULL, c.x, c.w, c.rstd, N, C);
    kt_assert_same(dx, dx1, N * C, "rmsnorm dx");
    kt_assert_scaled(dw, dw1, 2.0f, C, "rmsnorm dw");
    /* dw NULL and dx NULL are allowed */
    lrsa_rmsnorm_backward_cpu(dx, NULL, c.R, NULL, c.x, c.w, c.rstd, N, C);
    kt_assert_same(dx, dx1, N * C, "rmsnorm dx with dw NULL");
    lrsa_rmsnorm_backward_cpu(NULL, dw, c.R, NULL, c.x, c.w, c.rstd, N, C);
    kt_assert_scaled(dw, dw1, 3.0f, C, "rmsnorm dw with dx NULL");

    /* fused residual: dx = D + J^T R is the gradient of sum(y*R) + sum(x*D) */
    c.D = kt_randn(N * C, 1.0f, &rng);
    float *dxr = kt_zeros(N * C);
    lrsa_rmsnorm_backward_cpu(dxr, NULL, c.R, c.D, c.x, c.w, c.rstd, N, C);
    kt_gradcheck("rmsnorm dx + dresidual", rn_loss, &c, c.x, dxr, N * C);
    /* dresidual aliasing dx gives the same result */
    float *alias = kt_copy(c.D, N * C);
    lrsa_rmsnorm_backward_cpu(alias, NULL, c.R, alias, c.x, c.w, c.rstd, N, C);
    kt_assert_same(alias, dxr, N * C, "rmsnorm dresidual aliasing dx");
    free(c.x), free(c.w), free(c.y), free(c.rstd), free(c.R), free(c.D);
    free(dx), free(dw), free(dx1), free(dw1), free(dxr), free(alias);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm_forward),
        cmocka_unit_test(test_rmsnorm_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
