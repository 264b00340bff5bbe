/* The gradient checker itself: it passes exact gradients, restores its input bitwise, and
 * catches wrong ones, including the weakest realistic mistake (RMSNorm without its mean term)
 * and a single wrong element outside the checked subset (caught by the directional check). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rmsnorm/rmsnorm.h"
#include "kt_util.h"

enum { N = 7, C = 13, M = 600 };

/* f(x) = sum_i a_i * sin(x_i) + (sum_i x_i)^2 / 2: every coordinate coupled to the others */
typedef struct {
    float *x, *a;
    int n;
} smooth_ctx;

static double smooth_loss(void *p) {
    smooth_ctx *c = p;
    double s = 0, t = 0;
    for (int i = 0; i < c->n; i++) {
        s += c->a[i] * sin((double)c->x[i]);
        t += c->x[i];
    }
    return s + 0.5 * t * t;
}

static void smooth_grad(const smooth_ctx *c, float *g) {
    double t = 0;
    for (int i = 0; i < c->n; i++) t += c->x[i];
    for (int i = 0; i < c->n; i++) g[i] = (float)(c->a[i] * cos((double)c->x[i]) + t);
}

static void test_gradcheck_exact_and_restores(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 61);
    smooth_ctx c = {kt_randn(M, 1.0f, &rng), kt_randn(M, 1.0f, &rng), M};
    float *g = kt_zeros(M), *x0 = kt_copy(c.x, M);
    smooth_grad(&c, g);
    lrsa_gradcheck_result r;
    double err = lrsa_gradcheck(smooth_loss, &c, c.x, g, M, NULL, &r);
    assert_true(err <= KT_GRAD_TOL);
    assert_int_equal(r.coords_checked, 256); /* default subset for a large array */
    kt_assert_same(c.x, x0, M, "gradcheck restores x");

    /* one wrong element outside the checked subset: the directional check still sees it */
    lrsa_gradcheck_opts o = lrsa_gradcheck_defaults();
    o.max_coords = 1;
    lrsa_gradcheck(smooth_loss, &c, c.x, g, M, &o, &r);
    int64_t other = r.worst_index == 0 ? 1 : 0;
    g[other] += 10.0f * (float)(fabs(g[other]) + 1.0);
    double e2 = lrsa_gradcheck(smooth_loss, &c, c.x, g, M, &o, &r);
    assert_true(r.coord_err <= KT_GRAD_TOL); /* the one checked coordinate is still right */
    assert_true(e2 > KT_GRAD_TOL);
    free(c.x), free(c.a), free(g), free(x0);
}

typedef struct {
    float *x, *w, *y, *rstd, *R;
} rn_ctx;

static double rn_loss(void *p) {
    rn_ctx *c = p;
    lrsa_rmsnorm_forward_cpu(c->y, c->rstd, c->x, c->w, N, C, 1e-5f);
    return kt_dot(c->y, c->R, N * C);
}

static void test_gradcheck_catches_dropped_term(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 62);
    rn_ctx c = {kt_randn(N * C, 1.0f, &rng), kt_randn(C, 1.0f, &rng), kt_zeros(N * C), kt_zeros(N),
                kt_randn(N * C, 1.0f, &rng)};
    lrsa_rmsnorm_forward_cpu(c.y, c.rstd, c.x, c.w, N, C, 1e-5f);
    /* wrong backward: dx = rstd * w * dout, forgetting the gradient through the mean */
    float *wrong = kt_zeros(N * C);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < C; j++) wrong[i * C + j] = c.rstd[i] * c.w[j] * c.R[i * C + j];
    double err = lrsa_gradcheck(rn_loss, &c, c.x, wrong, N * C, NULL, NULL);
    assert_true(err > 10 * KT_GRAD_TOL);
    /* and a 5% error on a single element is caught when every coordinate is checked */
    float *dx = kt_zeros(N * C);
    lrsa_rmsnorm_backward_cpu(dx, NULL, c.R, NULL, c.x, c.w, c.rstd, N, C);
    assert_true(lrsa_gradcheck(rn_loss, &c, c.x, dx, N * C, NULL, NULL) <= KT_GRAD_TOL);
    int k = 0; /* the element with the largest gradient, so the floor does not hide it */
    for (int i = 1; i < N * C; i++) k = fabsf(dx[i]) > fabsf(dx[k]) ? i : k;
    dx[k] *= 1.05f;
    assert_true(lrsa_gradcheck(rn_loss, &c, c.x, dx, N * C, NULL, NULL) > KT_GRAD_TOL);
    free(c.x), free(c.w), free(c.y), free(c.rstd), free(c.R), free(wrong), free(dx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_exact_and_restores),
        cmocka_unit_test(test_gradcheck_catches_dropped_term),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
