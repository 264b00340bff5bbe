/* linear: forward against a double reference, gradient checks of x, w, b, and the
 * accumulate/overwrite conventions. */
#include <stdlib.h>
#include <string.h>

#include "kernels/linear/linear.h"
#include "kt_util.h"

enum { N = 7, IN = 13, OUT = 11 };

typedef struct {
    float *x, *w, *b, *y, *R;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    lrsa_linear_forward_cpu(c->y, c->x, c->w, c->b, N, IN, OUT);
    return kt_dot(c->y, c->R, (int64_t)N * OUT);
}

static void test_linear_forward(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 11);
    float *x = kt_randn(N * IN, 1.0f, &rng), *w = kt_randn(OUT * IN, 0.5f, &rng);
    float *b = kt_randn(OUT, 1.0f, &rng), *y = kt_zeros(N * OUT);
    double *ref = kt_zeros_d(N * OUT);
    for (int bias = 0; bias < 2; bias++) {
        for (int i = 0; i < N; i++)
            for (int o = 0; o < OUT; o++) {
                double s = bias ? b[o] : 0.0;
                for (int k = 0; k < IN; k++) s += (double)x[i * IN + k] * w[o * IN + k];
                ref[i * OUT + o] = s;
            }
        memset(y, 0xff, sizeof(float) * N * OUT); /* NaN garbage: forward must overwrite */
        lrsa_linear_forward_cpu(y, x, w, bias ? b : NULL, N, IN, OUT);
        assert_true(kt_rel_err_d(y, ref, N * OUT) <= KT_FWD_TOL);
    }
    free(x), free(w), free(b), free(y), free(ref);
}

static void test_linear_gradients(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 12);
    lin_ctx c = {kt_randn(N * IN, 1.0f, &rng), kt_randn(OUT * IN, 0.5f, &rng),
                 kt_randn(OUT, 1.0f, &rng), kt_zeros(N * OUT), kt_randn(N * OUT, 1.0f, &rng)};
    float *dx = kt_zeros(N * IN), *dw = kt_zeros(OUT * IN), *db = kt_zeros(OUT);
    /* loss = sum(y * R), so dL/dy = R */
    lrsa_linear_backward_cpu(dx, dw, db, c.R, c.x, c.w, N, IN, OUT);
    kt_gradcheck("linear dx", lin_loss, &c, c.x, dx, N * IN);
    kt_gradcheck("linear dw", lin_loss, &c, c.w, dw, OUT * IN);
    kt_gradcheck("linear db", lin_loss, &c, c.b, db, OUT);

    /* second backward: parameter grads accumulate (double), dx is overwritten (unchanged) */
    float *dx1 = kt_copy(dx, N * IN), *dw1 = kt_copy(dw, OUT * IN), *db1 = kt_copy(db, OUT);
    lrsa_linear_backward_cpu(dx, dw, db, c.R, c.x, c.w, N, IN, OUT);
    kt_assert_same(dx, dx1, N * IN, "linear dx");
    kt_assert_scaled(dw, dw1, 2.0f, OUT * IN, "linear dw");
    kt_assert_scaled(db, db1, 2.0f, OUT, "linear db");
    /* NULL dx and db are allowed and leave dw's accumulation intact */
    lrsa_linear_backward_cpu(NULL, dw, NULL, c.R, c.x, c.w, N, IN, OUT);
    kt_assert_scaled(dw, dw1, 3.0f, OUT * IN, "linear dw (third call)");
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.R);
    free(dx), free(dw), free(db), free(dx1), free(dw1), free(db1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_forward),
        cmocka_unit_test(test_linear_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
