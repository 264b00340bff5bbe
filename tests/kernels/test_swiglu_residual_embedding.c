/* The elementwise ops and the embedding: swiglu (forward vs double, gradient check of the fused
 * gate|up input), residual (forward, aliasing, backward copies) and embedding (lookup, the
 * row-ordered += backward with repeated ids, gradient check). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/embedding/embedding.h"
#include "kernels/residual/residual.h"
#include "kernels/swiglu/swiglu.h"
#include "kt_util.h"

enum { N = 7, I = 13, C = 11, V = 37 };

typedef struct {
    float *gu, *out, *R;
} sw_ctx;

static double sw_loss(void *p) {
    sw_ctx *c = p;
    lrsa_swiglu_forward_cpu(c->out, c->gu, N, I);
    return kt_dot(c->out, c->R, N * I);
}

static void test_swiglu(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 41);
    sw_ctx c = {kt_randn(N * 2 * I, 2.0f, &rng), kt_zeros(N * I), kt_randn(N * I, 1.0f, &rng)};
    double *ref = kt_zeros_d(N * I);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < I; j++) {
            double g = c.gu[i * 2 * I + j], u = c.gu[i * 2 * I + I + j];
            ref[i * I + j] = g / (1.0 + exp(-g)) * u;
        }
    lrsa_swiglu_forward_cpu(c.out, c.gu, N, I);
    assert_true(kt_rel_err_d(c.out, ref, N * I) <= KT_FWD_TOL);

    float *dgu = kt_zeros(N * 2 * I);
    lrsa_swiglu_backward_cpu(dgu, c.R, c.gu, N, I);
    kt_gradcheck("swiglu dgu", sw_loss, &c, c.gu, dgu, N * 2 * I);
    float *d1 = kt_copy(dgu, N * 2 * I);
    lrsa_swiglu_backward_cpu(dgu, c.R, c.gu, N, I);
    kt_assert_same(dgu, d1, N * 2 * I, "swiglu dgu overwritten");
    free(c.gu), free(c.out), free(c.R), free(ref), free(dgu), free(d1);
}

static void test_residual(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 42);
    enum { n = N * C };
    float *a = kt_randn(n, 1.0f, &rng), *b = kt_randn(n, 1.0f, &rng), *out = kt_zeros(n);
    double *ref = kt_zeros_d(n);
    for (int i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    lrsa_residual_forward_cpu(out, a, b, n);
    assert_true(kt_rel_err_d(out, ref, n) <= KT_FWD_TOL);
    /* out aliasing a: the in-place residual stream */
    float *a2 = kt_copy(a, n);
    lrsa_residual_forward_cpu(a2, a2, b, n);
    kt_assert_same(a2, out, n, "residual out aliasing a");

    float *dout = kt_randn(n, 1.0f, &rng), *da = kt_zeros(n), *db = kt_zeros(n);
    lrsa_residual_backward_cpu(da, db, dout, n);
    kt_assert_same(da, dout, n, "residual da");
    kt_assert_same(db, dout, n, "residual db");
    lrsa_residual_backward_cpu(da, db, dout, n); /* overwrite, not accumulate */
    kt_assert_same(da, dout, n, "residual da (second call)");
    float *keep = kt_copy(dout, n);
    lrsa_residual_backward_cpu(dout, NULL, dout, n); /* aliasing and NULL: no change */
    kt_assert_same(dout, keep, n, "residual aliased dout");
    free(a), free(b), free(out), free(ref), free(a2), free(dout), free(da), free(db), free(keep);
}

typedef struct {
    float *table, *out, *R;
    int32_t *ids;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    lrsa_embedding_forward_cpu(c->out, c->ids, c->table, N, C);
    return kt_dot(c->out, c->R, N * C);
}

static void test_embedding(void **state) {
    (void)state;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 43);
    emb_ctx c = {kt_randn(V * C, 1.0f, &rng), kt_zeros(N * C), kt_randn(N * C, 1.0f, &rng),
                 lrsa_malloc(sizeof(int32_t) * N)};
    for (int i = 0; i < N; i++) c.ids[i] = (int32_t)lrsa_rng_below(&rng, V);
    c.ids[3] = c.ids[1] = 36; /* a repeated id, and the last row of the table */
    c.ids[0] = 0;
    lrsa_embedding_forward_cpu(c.out, c.ids, c.table, N, C);
    for (int i = 0; i < N; i++)
        kt_assert_same(c.out + i * C, c.table + (int64_t)c.ids[i] * C, C, "embedding row");

    float *dt = kt_zeros(V * C);
    lrsa_embedding_backward_cpu(dt, c.R, c.ids, N, C);
    /* reference: rows summed in row order, in float, so the result is bitwise reproducible */
    float *want = kt_zeros(V * C);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < C; j++) want[c.ids[i] * C + j] += c.R[i * C + j];
    kt_assert_same(dt, want, V * C, "embedding backward (row order)");
    kt_gradcheck("embedding dtable", emb_loss, &c, c.table, dt, V * C);
    float *d1 = kt_copy(dt, V * C);
    lrsa_embedding_backward_cpu(dt, c.R, c.ids, N, C);
    kt_assert_scaled(dt, d1, 2.0f, V * C, "embedding dtable +=");
    free(c.table), free(c.out), free(c.R), free(c.ids), free(dt), free(want), free(d1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_residual),
        cmocka_unit_test(test_embedding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
