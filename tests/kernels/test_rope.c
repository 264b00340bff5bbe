/* rope: inverse frequencies (default, linear, llama3) against the formulas in double, the
 * rotation against a double reference on a fused qkv layout, forward-then-backward identity,
 * and the gradient check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rope/rope.h"
#include "kt_util.h"

/* A fused qkv row: Hq query heads, Hkv key heads (rotated), Hkv value heads (untouched). */
enum { N = 7, HQ = 3, HKV = 2, D = 10, HALF = D / 2, ROW = (HQ + 2 * HKV) * D, NROT = HQ + HKV };

static double inv_default_d(double theta, int j, int d) {
    return 1.0 / pow(theta, 2.0 * j / d);
}

static void check_inv(const float *got, const double *want, int n, double tol, const char *what) {
    for (int j = 0; j < n; j++)
        if (!(fabs(got[j] - want[j]) <= tol * want[j]))
            fail_msg("%s inv_freq[%d] = %.9g, formula gives %.9g", what, j, got[j], want[j]);
}

static void test_rope_inv_freq_default_linear(void **state) {
    (void)state;
    const int dims[] = {64, 128, 10};
    const float thetas[] = {10000.0f, 100000.0f, 1000000.0f};
    for (int t = 0; t < 3; t++) {
        int d = dims[t];
        float got[64];
        double want[64];
        lrsa_rope_config rc = {.theta = thetas[t], .type = LRSA_ROPE_DEFAULT};
        lrsa_rope_inv_freq(got, d, &rc);
        for (int j = 0; j < d / 2; j++) want[j] = inv_default_d(thetas[t], j, d);
        /* fp32: the exponent 2j/D is rounded (rel. 6e-8) and multiplied by ln(theta) <= 14 */
        check_inv(got, want, d / 2, 2e-6, "default");
        rc.type = LRSA_ROPE_LINEAR;
        rc.factor = 4.0f;
        lrsa_rope_inv_freq(got, d, &rc);
        for (int j = 0; j < d / 2; j++) want[j] /= 4.0;
        check_inv(got, want, d / 2, 2e-6, "linear");
    }
}

static void test_rope_inv_freq_llama3(void **state) {
    (void)state;
    enum { HD = 128 };
    lrsa_rope_config rc = {.theta = 500000.0f,
                           .type = LRSA_ROPE_LLAMA3,
                           .factor = 32.0f,
                           .low_freq_factor = 1.0f,
                           .high_freq_factor = 4.0f,
                           .original_max_position_embeddings = 8192};
    float got[HD / 2];
    double want[HD / 2];
    lrsa_rope_inv_freq(got, HD, &rc);
    int regions[3] = {0, 0, 0};
    double lo_w = 8192.0 / 1.0, hi_w = 8192.0 / 4.0;
    for (int j = 0; j < HD / 2; j++) {
        double inv = inv_default_d(500000.0, j, HD), wl = 2 * M_PI / inv;
        if (wl < hi_w) {
            want[j] = inv, regions[0]++;
        } else if (wl > lo_w) {
            want[j] = inv / 32.0, regions[2]++;
        } else {
            double s = (8192.0 / wl - 1.0) / (4.0 - 1.0);
            want[j] = (1 - s) * inv / 32.0 + s * inv, regions[1]++;
        }
    }
    /* all three regimes are exercised */
    assert_true(regions[0] > 0 && regions[1] > 0 && regions[2] > 0);
    /* the blend's float arithmetic adds a few ulps on top of the default's error */
    check_inv(got, want, HD / 2, 1e-5, "llama3");
}

typedef struct {
    float *x, *buf, *R, *inv;
    int32_t *pos;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->buf, c->x, sizeof(float) * N * ROW);
    lrsa_rope_forward_cpu(c->buf, c->pos, c->inv, N, NROT, D, ROW);
    return kt_dot(c->buf, c->R, N * ROW);
}

static void make_case(rope_ctx *c, lrsa_rng *rng) {
    lrsa_rope_config rc = {.theta = 10000.0f, .type = LRSA_ROPE_DEFAULT};
    c->inv = kt_zeros(HALF);
    lrsa_rope_inv_freq(c->inv, D, &rc);
    c->pos = lrsa_malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) c->pos[i] = (int32_t)lrsa_rng_below(rng, 5000);
    c->x = kt_randn(N * ROW, 1.0f, rng);
    c->buf = kt_zeros(N * ROW);
    c->R = kt_randn(N * ROW, 1.0f, rng);
}

static void free_case(rope_ctx *c) {
    free(c->inv), free(c->pos), free(c->x), free(c->buf), free(c->R);
}

static void test_rope_forward(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 31);
    rope_ctx c;
    make_case(&c, &rng);
    double *ref = kt_zeros_d(N * ROW);
    for (int i = 0; i < N; i++)
        for (int h = 0; h < HQ + 2 * HKV; h++)
            for (int j = 0; j < HALF; j++) {
                int64_t a = (int64_t)i * ROW + h * D + j, b = a + HALF;
                if (h >= NROT) { /* value heads are not rotated */
                    ref[a] = c.x[a], ref[b] = c.x[b];
                    continue;
                }
                /* the angle as Hugging Face forms it: an fp32 product */
                double ang = (double)((float)c.pos[i] * c.inv[j]);
                ref[a] = c.x[a] * cos(ang) - c.x[b] * sin(ang);
                ref[b] = c.x[b] * cos(ang) + c.x[a] * sin(ang);
            }
    memcpy(c.buf, c.x, sizeof(float) * N * ROW);
    lrsa_rope_forward_cpu(c.buf, c.pos, c.inv, N, NROT, D, ROW);
    assert_true(kt_rel_err_d(c.buf, ref, N * ROW) <= KT_FWD_TOL);
    for (int i = 0; i < N; i++) /* v heads bitwise untouched */
        kt_assert_same(c.buf + i * ROW + NROT * D, c.x + i * ROW + NROT * D, HKV * D, "rope v");
    /* forward then backward is the identity (the rotation is orthogonal) */
    lrsa_rope_backward_cpu(c.buf, c.pos, c.inv, N, NROT, D, ROW);
    TU_ASSERT_CLOSE(c.buf, c.x, N * ROW, 1e-6, "rope backward(forward(x))");
    free(ref);
    free_case(&c);
}

static void test_rope_gradient(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 32);
    rope_ctx c;
    make_case(&c, &rng);
    float *dx = kt_copy(c.R, N * ROW);
    lrsa_rope_backward_cpu(dx, c.pos, c.inv, N, NROT, D, ROW);
    kt_gradcheck("rope dx", rope_loss, &c, c.x, dx, N * ROW);
    free(dx);
    free_case(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_inv_freq_default_linear),
        cmocka_unit_test(test_rope_inv_freq_llama3),
        cmocka_unit_test(test_rope_forward),
        cmocka_unit_test(test_rope_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
