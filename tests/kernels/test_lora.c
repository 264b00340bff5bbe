/* LoRA linear (kernels/lora): forward against a double reference (groups that leave columns
 * unadapted, with and without dropout), finite-difference checks of dx, dA and dB (with and
 * without dropout), the accumulate/overwrite conventions, and the dropout mask (rate, scale,
 * determinism, independence of keys). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/linear/linear.h"
#include "kernels/lora/lora.h"
#include "kt_util.h"

enum { N = 7, IN = 13, OUT = 19, R = 3 };

/* Three groups inside a fused output of 19 columns: [0, 6), [9, 13), [13, 19); columns 6..8
 * have no adapter (like a k_proj left out of the targets). */
static lrsa_lora_spec spec(float dropout) {
    lrsa_lora_spec s;
    memset(&s, 0, sizeof s);
    s.n_groups = 3;
    s.rank = R;
    s.col[0] = 0, s.width[0] = 6;
    s.col[1] = 9, s.width[1] = 4;
    s.col[2] = 13, s.width[2] = 6;
    s.scale = 1.7f;
    s.dropout = dropout;
    for (int g = 0; g < 3; g++) s.seed[g] = lrsa_lora_dropout_seed(42, (uint64_t)g);
    return s;
}
enum { BROWS = 6 + 4 + 6 };

typedef struct {
    lrsa_lora_spec s;
    float *x, *w, *b, *A, *B, *y, *u, *xd, *R_;
} lora_ctx;

static double lora_loss(void *p) {
    lora_ctx *c = p;
    lrsa_lora_linear_forward_cpu(c->y, c->u, c->x, c->w, c->b, c->A, c->B, &c->s, N, IN, OUT,
                                 c->xd);
    return kt_dot(c->y, c->R_, (int64_t)N * OUT);
}

static void make(lora_ctx *c, float dropout, uint64_t seed) {
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    c->s = spec(dropout);
    c->x = kt_randn(N * IN, 1.0f, &rng);
    c->w = kt_randn(OUT * IN, 0.5f, &rng);
    c->b = kt_randn(OUT, 1.0f, &rng);
    c->A = kt_randn(3 * R * IN, 0.5f, &rng);
    c->B = kt_randn(BROWS * R, 0.5f, &rng);
    c->y = kt_zeros(N * OUT);
    c->u = kt_zeros(N * 3 * R);
    c->xd = kt_zeros(N * IN);
    c->R_ = kt_randn(N * OUT, 1.0f, &rng);
}

static void release(lora_ctx *c) {
    free(c->x), free(c->w), free(c->b), free(c->A), free(c->B), free(c->y), free(c->u);
    free(c->xd), free(c->R_);
}

/* The dropout multiplier of element i of group g: 0 or 1/(1-p). */
static void masks(const lrsa_lora_spec *s, float *m /* [3][N*IN] */) {
    float *ones = kt_zeros(N * IN);
    for (int i = 0; i < N * IN; i++) ones[i] = 1.0f;
    for (int g = 0; g < 3; g++) {
        if (s->dropout > 0)
            lrsa_lora_dropout_cpu(m + g * N * IN, ones, N, IN, s->dropout, s->seed[g]);
        else
            memcpy(m + g * N * IN, ones, sizeof(float) * N * IN);
    }
    free(ones);
}

static void check_forward(float dropout) {
    lora_ctx c;
    make(&c, dropout, 21);
    float *m = kt_zeros(3 * N * IN);
    masks(&c.s, m);
    double *ref = kt_zeros_d(N * OUT), *uref = kt_zeros_d(N * 3 * R);
    for (int i = 0; i < N; i++) {
        for (int o = 0; o < OUT; o++) {
            double v = c.b[o];
            for (int k = 0; k < IN; k++) v += (double)c.x[i * IN + k] * c.w[o * IN + k];
            ref[i * OUT + o] = v;
        }
        int brow = 0;
        for (int g = 0; g < 3; g++) {
            double ug[R];
            for (int j = 0; j < R; j++) {
                double v = 0;
                for (int k = 0; k < IN; k++)
                    v += (double)c.x[i * IN + k] * m[g * N * IN + i * IN + k] *
                         c.A[(g * R + j) * IN + k];
                ug[j] = v;
                uref[i * 3 * R + g * R + j] = v;
            }
            for (int o = 0; o < c.s.width[g]; o++) {
                double v = 0;
                for (int j = 0; j < R; j++) v += ug[j] * c.B[(brow + o) * R + j];
                ref[i * OUT + c.s.col[g] + o] += c.s.scale * v;
            }
            brow += c.s.width[g];
        }
    }
    memset(c.y, 0xff, sizeof(float) * N * OUT); /* NaN garbage: forward must overwrite */
    memset(c.u, 0xff, sizeof(float) * N * 3 * R);
    lrsa_lora_linear_forward_cpu(c.y, c.u, c.x, c.w, c.b, c.A, c.B, &c.s, N, IN, OUT, c.xd);
    assert_true(kt_rel_err_d(c.y, ref, N * OUT) <= KT_FWD_TOL);
    assert_true(kt_rel_err_d(c.u, uref, N * 3 * R) <= KT_FWD_TOL);
    /* the unadapted columns equal the plain linear op bit for bit */
    float *base = kt_zeros(N * OUT);
    lrsa_linear_forward_cpu(base, c.x, c.w, c.b, N, IN, OUT);
    for (int i = 0; i < N; i++)
        for (int o = 6; o < 9; o++) assert_true(c.y[i * OUT + o] == base[i * OUT + o]);
    free(base), free(m), free(ref), free(uref);
    release(&c);
}

static void test_lora_forward(void **state) {
    (void)state;
    check_forward(0.0f);
    check_forward(0.3f);
}

static void check_gradients(float dropout) {
    lora_ctx c;
    make(&c, dropout, 22);
    float *dx = kt_zeros(N * IN), *dA = kt_zeros(3 * R * IN), *dB = kt_zeros(BROWS * R);
    float *t = kt_zeros(N * 3 * R), *xd = kt_zeros(N * IN);
    float *w0 = kt_copy(c.w, OUT * IN);
    /* loss = sum(y * R), so dL/dy = R; the backward reads the u of the forward */
    lora_loss(&c);
    lrsa_lora_linear_backward_cpu(dx, dA, dB, c.R_, c.x, c.w, c.A, c.B, c.u, &c.s, N, IN, OUT, t,
                                  xd);
    kt_assert_same(c.w, w0, OUT * IN, "frozen W untouched");
    kt_gradcheck(dropout > 0 ? "lora dx (dropout)" : "lora dx", lora_loss, &c, c.x, dx, N * IN);
    kt_gradcheck(dropout > 0 ? "lora dA (dropout)" : "lora dA", lora_loss, &c, c.A, dA, 3 * R * IN);
    kt_gradcheck(dropout > 0 ? "lora dB (dropout)" : "lora dB", lora_loss, &c, c.B, dB, BROWS * R);

    /* a second backward: adapter gradients accumulate, dx is overwritten */
    float *dx1 = kt_copy(dx, N * IN), *dA1 = kt_copy(dA, 3 * R * IN), *dB1 = kt_copy(dB, BROWS * R);
    lora_loss(&c);
    lrsa_lora_linear_backward_cpu(dx, dA, dB, c.R_, c.x, c.w, c.A, c.B, c.u, &c.s, N, IN, OUT, t,
                                  xd);
    kt_assert_same(dx, dx1, N * IN, "lora dx");
    kt_assert_scaled(dA, dA1, 2.0f, 3 * R * IN, "lora dA");
    kt_assert_scaled(dB, dB1, 2.0f, BROWS * R, "lora dB");
    /* dx alone (dA, dB NULL) is the same dx */
    memset(dx, 0, sizeof(float) * N * IN);
    lrsa_lora_linear_backward_cpu(dx, NULL, NULL, c.R_, c.x, c.w, c.A, c.B, c.u, &c.s, N, IN, OUT,
                                  t, xd);
    kt_assert_same(dx, dx1, N * IN, "lora dx without adapter gradients");
    free(dx), free(dA), free(dB), free(t), free(xd), free(w0), free(dx1), free(dA1), free(dB1);
    release(&c);
}

static void test_lora_gradients(void **state) {
    (void)state;
    check_gradients(0.0f);
    check_gradients(0.25f);
}

/* B = 0 (PEFT's initialisation): the output is the base linear op's, bit for bit. */
static void test_lora_zero_b_is_base(void **state) {
    (void)state;
    lora_ctx c;
    make(&c, 0.0f, 23);
    memset(c.B, 0, sizeof(float) * BROWS * R);
    float *base = kt_zeros(N * OUT);
    lrsa_linear_forward_cpu(base, c.x, c.w, c.b, N, IN, OUT);
    lora_loss(&c);
    kt_assert_same(c.y, base, N * OUT, "lora with B = 0");
    free(base);
    release(&c);
}

static void test_lora_dropout_mask(void **state) {
    (void)state;
    enum { M = 1000, K = 100 };
    float *x = kt_zeros(M * K), *a = kt_zeros(M * K), *b = kt_zeros(M * K);
    for (int i = 0; i < M * K; i++) x[i] = 1.0f + (float)(i % 7);
    const float p = 0.1f;
    lrsa_lora_dropout_cpu(a, x, M, K, p, 99);
    int64_t kept = 0;
    for (int i = 0; i < M * K; i++) {
        if (a[i] != 0.0f) {
            kept++;
            assert_true(a[i] == x[i] * (1.0f / (1.0f - p)));
        }
    }
    /* 1e5 Bernoulli(0.9) draws: standard deviation ~95; 5 sigma */
    double expect = (1.0 - p) * M * K;
    assert_true(fabs((double)kept - expect) < 5 * sqrt(expect * p));
    /* deterministic for one key, different for another, in place allowed */
    memcpy(b, x, sizeof(float) * M * K);
    lrsa_lora_dropout_cpu(b, b, M, K, p, 99);
    kt_assert_same(a, b, M * K, "same key, same mask");
    lrsa_lora_dropout_cpu(b, x, M, K, p, lrsa_lora_dropout_seed(99, 1));
    int64_t differ = 0, both_dropped = 0;
    for (int i = 0; i < M * K; i++) {
        differ += (a[i] == 0.0f) != (b[i] == 0.0f);
        both_dropped += a[i] == 0.0f && b[i] == 0.0f;
    }
    /* independent masks: both drop an element with probability p^2 = 1% */
    assert_true(differ > 0);
    assert_true(fabs((double)both_dropped - p * p * M * K) < 5 * sqrt(p * p * M * K));
    /* p = 0 keeps everything unscaled */
    lrsa_lora_dropout_cpu(b, x, M, K, 0.0f, 5);
    kt_assert_same(b, x, M * K, "p = 0");
    free(x), free(a), free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_forward),
        cmocka_unit_test(test_lora_gradients),
        cmocka_unit_test(test_lora_zero_b_is_base),
        cmocka_unit_test(test_lora_dropout_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
