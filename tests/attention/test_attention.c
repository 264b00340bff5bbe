/* Dense causal GQA attention (kernels/attention) against the naive double reference, and a
 * finite-difference gradient check. Shapes: B = 2, 3 query heads per KV head, T not a multiple
 * of the tile sizes, q/k/v and dq/dk/dv inside fused strided buffers, padded output rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn_ref.h"
#include "kernels/attention/attention.h"
#include "test_util.h"

typedef struct {
    int B, T, Hq, Hkv, D;
    lrsa_attn_dims d;
    float *qkv, *out, *lse, *dout, *dqkv;
    int64_t n_qkv, n_out;
} fused;

/* qkv [B, T, Hq + 2 Hkv, D]; out rows padded by 5 floats so o_stride != Hq*D. */
static void fused_init(fused *f, int B, int T, int Hq, int Hkv, int D, uint64_t seed) {
    f->B = B, f->T = T, f->Hq = Hq, f->Hkv = Hkv, f->D = D;
    int64_t qs = (int64_t)(Hq + 2 * Hkv) * D, os = (int64_t)Hq * D + 5;
    lrsa_attn_dims d = {B, T, Hq, Hkv, D, qs, qs, os, 1.0f / sqrtf((float)D)};
    f->d = d;
    f->n_qkv = (int64_t)B * T * qs;
    f->n_out = (int64_t)B * T * os;
    f->qkv = malloc(sizeof(float) * f->n_qkv);
    f->dqkv = malloc(sizeof(float) * f->n_qkv);
    f->out = malloc(sizeof(float) * f->n_out);
    f->dout = malloc(sizeof(float) * f->n_out);
    f->lse = malloc(sizeof(float) * (size_t)B * Hq * T);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    tu_fill_normal(f->qkv, f->n_qkv, 1.0f, &rng);
    tu_fill_normal(f->dout, f->n_out, 1.0f, &rng);
}
static void fused_free(fused *f) {
    free(f->qkv), free(f->dqkv), free(f->out), free(f->dout), free(f->lse);
}
static float *Q(fused *f, float *base) {
    return base;
}
static float *K(fused *f, float *base) {
    return base + (int64_t)f->Hq * f->D;
}
static float *V(fused *f, float *base) {
    return base + (int64_t)(f->Hq + f->Hkv) * f->D;
}

static void test_dense_matches_reference(void **state) {
    (void)state;
    fused f;
    fused_init(&f, 2, 150, 6, 2, 16, 11);
    const lrsa_attn_dims *d = &f.d;
    lrsa_attention_forward_cpu(f.out, f.lse, Q(&f, f.qkv), K(&f, f.qkv), V(&f, f.qkv), d);

    int64_t no = (int64_t)f.B * f.T * f.Hq * f.D, nkv = (int64_t)f.B * f.T * f.Hkv * f.D;
    double *ro = malloc(sizeof(double) * no), *rl = malloc(sizeof(double) * f.B * f.Hq * f.T);
    ref_attention_forward(ro, rl, Q(&f, f.qkv), K(&f, f.qkv), V(&f, f.qkv), d, ref_causal, NULL);
    float *packed = malloc(sizeof(float) * no);
    ref_pack(packed, f.out, f.B, f.T, f.Hq, f.D, d->o_stride);
    double e = ref_rel_err(packed, ro, no);
    if (!(e < 1e-5)) fail_msg("out: relative error %.3g", e);
    e = ref_rel_err(f.lse, rl, (int64_t)f.B * f.Hq * f.T);
    if (!(e < 1e-6)) fail_msg("lse: relative error %.3g", e);

    double *rdq = malloc(sizeof(double) * no), *rdk = malloc(sizeof(double) * nkv),
           *rdv = malloc(sizeof(double) * nkv);
    ref_attention_backward(rdq, rdk, rdv, f.dout, Q(&f, f.qkv), K(&f, f.qkv), V(&f, f.qkv), d,
                           ref_causal, NULL);
    /* run twice into a garbage-filled buffer: the gradients are overwritten, not accumulated */
    for (int rep = 0; rep < 2; rep++) {
        for (int64_t i = 0; i < f.n_qkv; i++) f.dqkv[i] = 1e3f;
        if (rep == 1)
            lrsa_attention_backward_cpu(Q(&f, f.dqkv), K(&f, f.dqkv), V(&f, f.dqkv), f.dout,
                                        Q(&f, f.qkv), K(&f, f.qkv), V(&f, f.qkv), f.out, f.lse, d);
        lrsa_attention_backward_cpu(Q(&f, f.dqkv), K(&f, f.dqkv), V(&f, f.dqkv), f.dout,
                                    Q(&f, f.qkv), K(&f, f.qkv), V(&f, f.qkv), f.out, f.lse, d);
        ref_pack(packed, Q(&f, f.dqkv), f.B, f.T, f.Hq, f.D, d->q_stride);
        e = ref_rel_err(packed, rdq, no);
        if (!(e < 1e-5)) fail_msg("dq: relative error %.3g", e);
        ref_pack(packed, K(&f, f.dqkv), f.B, f.T, f.Hkv, f.D, d->kv_stride);
        e = ref_rel_err(packed, rdk, nkv);
        if (!(e < 1e-5)) fail_msg("dk: relative error %.3g", e);
        ref_pack(packed, V(&f, f.dqkv), f.B, f.T, f.Hkv, f.D, d->kv_stride);
        e = ref_rel_err(packed, rdv, nkv);
        if (!(e < 1e-5)) fail_msg("dv: relative error %.3g", e);
    }
    free(ro), free(rl), free(packed), free(rdq), free(rdk), free(rdv);
    fused_free(&f);
}

/* The first query row sees only itself: out = v_0 and lse = scale * q_0 . k_0 exactly. */
static void test_dense_first_row(void **state) {
    (void)state;
    fused f;
    fused_init(&f, 1, 3, 3, 1, 4, 5);
    lrsa_attention_forward_cpu(f.out, f.lse, Q(&f, f.qkv), K(&f, f.qkv), V(&f, f.qkv), &f.d);
    for (int h = 0; h < 3; h++) {
        double s = 0;
        for (int c = 0; c < 4; c++) {
            assert_float_equal(f.out[h * 4 + c], V(&f, f.qkv)[c], 1e-6);
            s += (double)Q(&f, f.qkv)[h * 4 + c] * K(&f, f.qkv)[c];
        }
        assert_float_equal(f.lse[h * 3], s * f.d.scale, 1e-5);
    }
    fused_free(&f);
}

static double dense_loss(void *ctx, const float *x) {
    fused *f = ctx;
    lrsa_attention_forward_cpu(f->out, f->lse, x, x + f->Hq * f->D, x + (f->Hq + f->Hkv) * f->D,
                               &f->d);
    double l = 0;
    for (int64_t r = 0; r < (int64_t)f->B * f->T; r++)
        for (int c = 0; c < f->Hq * f->D; c++)
            l += (double)f->out[r * f->d.o_stride + c] * f->dout[r * f->d.o_stride + c];
    return l;
}

static void test_dense_finite_difference(void **state) {
    (void)state;
    fused f;
    fused_init(&f, 2, 70, 3, 1, 8, 21);
    lrsa_attention_forward_cpu(f.out, f.lse, Q(&f, f.qkv), K(&f, f.qkv), V(&f, f.qkv), &f.d);
    lrsa_attention_backward_cpu(Q(&f, f.dqkv), K(&f, f.dqkv), V(&f, f.dqkv), f.dout, Q(&f, f.qkv),
                                K(&f, f.qkv), V(&f, f.qkv), f.out, f.lse, &f.d);
    double e = ref_fd_check(dense_loss, &f, f.qkv, f.dqkv, f.n_qkv, 80, 1e-2f, 3);
    if (!(e < 5e-3)) fail_msg("finite differences: relative error %.3g", e);
    fused_free(&f);
}

/* A NaN input (a diverged model) propagates to the outputs it touches instead of aborting. */
static void test_dense_nan_propagates(void **state) {
    (void)state;
    fused f;
    fused_init(&f, 1, 20, 3, 1, 4, 9);
    Q(&f, f.qkv)[5 * f.d.q_stride + 4 + 1] = NAN; /* token 5, query head 1 */
    lrsa_attention_forward_cpu(f.out, f.lse, Q(&f, f.qkv), K(&f, f.qkv), V(&f, f.qkv), &f.d);
    assert_true(isnan(f.out[5 * f.d.o_stride + 4]));
    assert_true(isnan(f.lse[1 * 20 + 5]));
    assert_true(isfinite(f.out[5 * f.d.o_stride + 0])); /* head 0 is untouched */
    assert_true(isfinite(f.out[6 * f.d.o_stride + 4])); /* and so is token 6 of head 1 */
    fused_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_matches_reference),
        cmocka_unit_test(test_dense_first_row),
        cmocka_unit_test(test_dense_nan_propagates),
        cmocka_unit_test(test_dense_finite_difference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
