/* lm_head_loss: the fused norm + head + cross-entropy against the naive full-logits loss in
 * double over enough rows to cross the 64-row chunk boundary twice, masked rows contributing
 * nothing (even with garbage targets), gradient checks of h, norm_w and W, += on the
 * parameter gradients, and the plain logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/lm_head_loss/lm_head_loss.h"
#include "kt_util.h"

/* about 600 rows carry a loss: chunks of 256, 256 and the rest */
enum { N = 900, C = 13, V = 37 };
static const float EPS = 1e-5f;

typedef struct {
    float *h, *nw, *W, *weight;
    int32_t *targets;
} lm_case;

static void make_case(lm_case *c, lrsa_rng *rng) {
    c->h = kt_randn(N * C, 1.0f, rng);
    c->nw = kt_randn(C, 1.0f, rng);
    c->W = kt_randn(V * C, 0.7f, rng);
    c->weight = kt_zeros(N);
    c->targets = lrsa_malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) {
        int masked = lrsa_rng_below(rng, 3) == 0; /* about a third of the rows */
        c->weight[i] = masked ? 0.0f : 0.5f + lrsa_rng_uniform(rng);
        /* masked rows get out-of-vocabulary targets: they must never be read */
        c->targets[i] = masked ? -1000 : (int32_t)lrsa_rng_below(rng, V);
    }
    c->weight[N - 1] = 0.0f, c->targets[N - 1] = V + 5;
    int active = 0;
    for (int i = 0; i < N; i++) active += c->weight[i] != 0.0f;
    assert_true(active > 2 * 256 && active < N); /* three chunks, and masked rows */
}

static void free_case(lm_case *c) {
    free(c->h), free(c->nw), free(c->W), free(c->weight), free(c->targets);
}

/* Naive reference in double: logits for every row, full log-softmax. */
static double naive_loss(const lm_case *c, double *nll_ref, double *logits_ref) {
    double loss = 0.0, xn[C];
    for (int i = 0; i < N; i++) {
        double ss = 0.0;
        for (int j = 0; j < C; j++) ss += (double)c->h[i * C + j] * c->h[i * C + j];
        double r = 1.0 / sqrt(ss / C + EPS);
        for (int j = 0; j < C; j++) xn[j] = c->h[i * C + j] * r * c->nw[j];
        double mx = -INFINITY, *lg = logits_ref + (int64_t)i * V;
        for (int v = 0; v < V; v++) {
            double s = 0.0;
            for (int j = 0; j < C; j++) s += xn[j] * c->W[v * C + j];
            lg[v] = s;
            mx = fmax(mx, s);
        }
        nll_ref[i] = 0.0;
        if (c->weight[i] == 0.0f) continue;
        double se = 0.0;
        for (int v = 0; v < V; v++) se += exp(lg[v] - mx);
        nll_ref[i] = log(se) + mx - lg[c->targets[i]];
        loss += c->weight[i] * nll_ref[i];
    }
    return loss;
}

static void test_lm_head_loss_forward(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 51);
    lm_case c;
    make_case(&c, &rng);
    double *nll_ref = kt_zeros_d(N), *logits_ref = kt_zeros_d((int64_t)N * V);
    double want = naive_loss(&c, nll_ref, logits_ref);
    float *nll = kt_randn(N, 1.0f, &rng); /* garbage: must be overwritten (0 at masked rows) */
    double got = lrsa_lm_head_loss_cpu(nll, NULL, NULL, NULL, c.h, c.nw, c.W, c.targets, c.weight,
                                       N, C, V, EPS);
    assert_true(fabs(got - want) <= 1e-5 * fabs(want));
    assert_true(kt_rel_err_d(nll, nll_ref, N) <= KT_FWD_TOL);
    for (int i = 0; i < N; i++)
        if (c.weight[i] == 0.0f) assert_true(nll[i] == 0.0f);

    /* masked rows contribute nothing: scrambling their hidden states changes nothing */
    for (int i = 0; i < N; i++)
        if (c.weight[i] == 0.0f)
            for (int j = 0; j < C; j++) c.h[i * C + j] = 100.0f * lrsa_rng_normal(&rng);
    double got2 = lrsa_lm_head_loss_cpu(NULL, NULL, NULL, NULL, c.h, c.nw, c.W, c.targets, c.weight,
                                        N, C, V, EPS);
    assert_true(got2 == got);

    /* plain logits for every row, masked or not */
    naive_loss(&c, nll_ref, logits_ref);
    float *logits = kt_zeros((int64_t)N * V);
    lrsa_lm_head_logits_cpu(logits, c.h, c.nw, c.W, N, C, V, EPS);
    assert_true(kt_rel_err_d(logits, logits_ref, (int64_t)N * V) <= KT_FWD_TOL);

    /* nothing to predict: zero loss, zero gradient */
    float *w0 = kt_zeros(N), *dh = kt_randn(N * C, 1.0f, &rng), *zero = kt_zeros(N * C);
    assert_true(lrsa_lm_head_loss_cpu(NULL, dh, NULL, NULL, c.h, c.nw, c.W, c.targets, w0, N, C, V,
                                      EPS) == 0.0);
    kt_assert_same(dh, zero, N * C, "lm_head dh with every row masked");
    free(nll_ref), free(logits_ref), free(nll), free(logits), free(w0), free(dh), free(zero);
    free_case(&c);
}

static double lm_loss(void *p) {
    lm_case *c = p;
    return lrsa_lm_head_loss_cpu(NULL, NULL, NULL, NULL, c->h, c->nw, c->W, c->targets, c->weight,
                                 N, C, V, EPS);
}

static void test_lm_head_loss_gradients(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 52);
    lm_case c;
    make_case(&c, &rng);
    float *dh = kt_randn(N * C, 1.0f, &rng), *dnw = kt_zeros(C), *dW = kt_zeros(V * C);
    float *nll = kt_zeros(N), *nll0 = kt_zeros(N);
    double l1 =
        lrsa_lm_head_loss_cpu(nll, dh, dnw, dW, c.h, c.nw, c.W, c.targets, c.weight, N, C, V, EPS);
    /* the backward pass does not change the forward results */
    double l0 = lrsa_lm_head_loss_cpu(nll0, NULL, NULL, NULL, c.h, c.nw, c.W, c.targets, c.weight,
                                      N, C, V, EPS);
    assert_true(l1 == l0);
    kt_assert_same(nll, nll0, N, "lm_head nll with and without backward");
    for (int i = 0; i < N; i++)
        if (c.weight[i] == 0.0f)
            for (int j = 0; j < C; j++) assert_true(dh[i * C + j] == 0.0f);
    kt_gradcheck("lm_head dh", lm_loss, &c, c.h, dh, N * C);
    kt_gradcheck("lm_head dnorm_w", lm_loss, &c, c.nw, dnw, C);
    kt_gradcheck("lm_head dW", lm_loss, &c, c.W, dW, V * C);

    float *dh1 = kt_copy(dh, N * C), *dnw1 = kt_copy(dnw, C), *dW1 = kt_copy(dW, V * C);
    lrsa_lm_head_loss_cpu(NULL, dh, dnw, dW, c.h, c.nw, c.W, c.targets, c.weight, N, C, V, EPS);
    kt_assert_same(dh, dh1, N * C, "lm_head dh overwritten");
    kt_assert_scaled(dnw, dnw1, 2.0f, C, "lm_head dnorm_w +=");
    kt_assert_scaled(dW, dW1, 2.0f, V * C, "lm_head dW +=");
    /* parameter gradients may be NULL */
    lrsa_lm_head_loss_cpu(NULL, dh, NULL, NULL, c.h, c.nw, c.W, c.targets, c.weight, N, C, V, EPS);
    kt_assert_same(dh, dh1, N * C, "lm_head dh without parameter gradients");
    free(dh), free(dnw), free(dW), free(nll), free(nll0), free(dh1), free(dnw1), free(dW1);
    free_case(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lm_head_loss_forward),
        cmocka_unit_test(test_lm_head_loss_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
