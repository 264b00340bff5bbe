/* LRSA attention (kernels/lrsa_attention) against a naive reference whose visibility mask is
 * built from the rule of ../shared/docs/lagkv-lrsa.md section 5 directly (no gather), plus
 * keep = 1 == dense attention and a finite-difference gradient check with the selection fixed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn_ref.h"
#include "kernels/attention/attention.h"
#include "kernels/lagkv/lagkv.h"
#include "kernels/lrsa_attention/lrsa_attention.h"
#include "test_util.h"

typedef struct {
    lrsa_attn_dims d;
    lrsa_lagkv_params p;
    int ns, kk;
    float *qkv, *dqkv, *out, *lse, *dout;
    int32_t *sel;
    int64_t n_qkv, n_out;
} lrsa_case;

/* The rule, literally: causal; before S + 2L everything; else sink, the previous partition and
 * later, or a selected token of an earlier partition (of this sequence and KV head). */
static int lrsa_visible(const void *ctx, int b, int g, int i, int t) {
    const lrsa_case *c = ctx;
    int S = c->p.sink, L = c->p.lag;
    if (t > i) return 0;
    if (i < S + 2 * L) return 1;
    int part = (i - S) / L; /* the leftover gets index n: it behaves like P_n */
    if (t < S || t >= S + (part - 1) * L) return 1;
    int j = (t - S) / L;
    const int32_t *s = c->sel + (((int64_t)b * c->d.Hkv + g) * c->ns + j) * c->kk;
    for (int x = 0; x < c->kk; x++)
        if (s[x] == t) return 1;
    return 0;
}

static float *Q(lrsa_case *c, float *base) {
    return base;
}
static float *K(lrsa_case *c, float *base) {
    return base + (int64_t)c->d.Hq * c->d.D;
}
static float *V(lrsa_case *c, float *base) {
    return base + (int64_t)(c->d.Hq + c->d.Hkv) * c->d.D;
}

/* random_sel: 1 = a random ascending subset of each partition (exercises arbitrary gathers),
 * 0 = the real LagKV selection of this K/V. */
static void case_init(lrsa_case *c, int B, int T, int Hq, int Hkv, int D, int S, int L, float keep,
                      int random_sel, uint64_t seed) {
    int64_t qs = (int64_t)(Hq + 2 * Hkv) * D, os = (int64_t)Hq * D + 3;
    c->d = (lrsa_attn_dims){B, T, Hq, Hkv, D, qs, qs, os, 1.0f / sqrtf((float)D)};
    c->p = (lrsa_lagkv_params){S, L, keep, 1.0f};
    lrsa_err e;
    assert_int_equal(lrsa_lagkv_validate(&c->p, &e), 0);
    c->ns = lrsa_lagkv_num_scored(T, &c->p);
    c->kk = lrsa_lagkv_k(&c->p);
    c->n_qkv = (int64_t)B * T * qs;
    c->n_out = (int64_t)B * T * os;
    c->qkv = malloc(sizeof(float) * c->n_qkv);
    c->dqkv = malloc(sizeof(float) * c->n_qkv);
    c->out = calloc((size_t)c->n_out, sizeof(float)); /* (padding columns compared too) */
    c->dout = malloc(sizeof(float) * c->n_out);
    c->lse = malloc(sizeof(float) * (size_t)B * Hq * T);
    c->sel = malloc(sizeof(int32_t) * ((size_t)B * Hkv * c->ns * c->kk + 1));
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    tu_fill_normal(c->qkv, c->n_qkv, 1.0f, &rng);
    tu_fill_normal(c->dout, c->n_out, 1.0f, &rng);
    if (!random_sel) {
        lrsa_lagkv_select_cpu(c->sel, NULL, K(c, c->qkv), V(c, c->qkv), B, T, Hkv, D, qs, &c->p);
        return;
    }
    int *perm = malloc(sizeof(int) * L);
    for (int64_t blk = 0; blk < (int64_t)B * Hkv * c->ns; blk++) {
        int j = (int)(blk % c->ns);
        for (int x = 0; x < L; x++) perm[x] = x;
        for (int x = 0; x < c->kk; x++) { /* partial Fisher-Yates, then mark and list in order */
            int y = x + (int)(lrsa_rng_u64(&rng) % (uint64_t)(L - x));
            int tmp = perm[x];
            perm[x] = perm[y], perm[y] = tmp;
        }
        char *take = calloc(L, 1);
        for (int x = 0; x < c->kk; x++) take[perm[x]] = 1;
        int32_t *s = c->sel + blk * c->kk;
        for (int x = 0, n = 0; x < L; x++)
            if (take[x]) s[n++] = S + j * L + x;
        free(take);
    }
    free(perm);
}

static void case_free(lrsa_case *c) {
    free(c->qkv), free(c->dqkv), free(c->out), free(c->dout), free(c->lse), free(c->sel);
}

static void run_lrsa(lrsa_case *c) {
    lrsa_lrsa_attention_forward_cpu(c->out, c->lse, Q(c, c->qkv), K(c, c->qkv), V(c, c->qkv),
                                    c->sel, &c->d, &c->p);
    for (int64_t i = 0; i < c->n_qkv; i++) c->dqkv[i] = 777.0f; /* must be overwritten */
    lrsa_lrsa_attention_backward_cpu(Q(c, c->dqkv), K(c, c->dqkv), V(c, c->dqkv), c->dout,
                                     Q(c, c->qkv), K(c, c->qkv), V(c, c->qkv), c->out, c->lse,
                                     c->sel, &c->d, &c->p);
}

static void check_against_reference(int B, int T, int S, int L, float keep, int random_sel,
                                    uint64_t seed) {
    lrsa_case c;
    case_init(&c, B, T, 6, 2, 8, S, L, keep, random_sel, seed);
    run_lrsa(&c);
    const lrsa_attn_dims *d = &c.d;
    int64_t no = (int64_t)B * T * d->Hq * d->D, nkv = (int64_t)B * T * d->Hkv * d->D;
    double *ro = malloc(sizeof(double) * no), *rl = malloc(sizeof(double) * B * d->Hq * T);
    double *rdq = malloc(sizeof(double) * no), *rdk = malloc(sizeof(double) * nkv),
           *rdv = malloc(sizeof(double) * nkv);
    float *packed = malloc(sizeof(float) * no);
    ref_attention_forward(ro, rl, Q(&c, c.qkv), K(&c, c.qkv), V(&c, c.qkv), d, lrsa_visible, &c);
    ref_attention_backward(rdq, rdk, rdv, c.dout, Q(&c, c.qkv), K(&c, c.qkv), V(&c, c.qkv), d,
                           lrsa_visible, &c);
    struct {
        const char *name;
        float *src;
        int H;
        int64_t stride;
        double *ref;
    } cmp[] = {{"out", c.out, d->Hq, d->o_stride, ro},
               {"dq", Q(&c, c.dqkv), d->Hq, d->q_stride, rdq},
               {"dk", K(&c, c.dqkv), d->Hkv, d->kv_stride, rdk},
               {"dv", V(&c, c.dqkv), d->Hkv, d->kv_stride, rdv}};
    for (int x = 0; x < 4; x++) {
        ref_pack(packed, cmp[x].src, B, T, cmp[x].H, d->D, cmp[x].stride);
        double e = ref_rel_err(packed, cmp[x].ref, (int64_t)B * T * cmp[x].H * d->D);
        if (!(e < 1e-5))
            fail_msg("S=%d L=%d keep=%g T=%d %s: relative error %.3g", S, L, keep, T, cmp[x].name,
                     e);
    }
    double e = ref_rel_err(c.lse, rl, (int64_t)B * d->Hq * T);
    if (!(e < 1e-6)) fail_msg("S=%d L=%d keep=%g T=%d lse: relative error %.3g", S, L, keep, T, e);
    free(ro), free(rl), free(rdq), free(rdk), free(rdv), free(packed);
    case_free(&c);
}

static void test_lrsa_matches_rule(void **state) {
    (void)state;
    check_against_reference(2, 61, 3, 8, 0.25f, 1, 1);     /* leftover of 2 tokens */
    check_against_reference(2, 100, 0, 16, 0.5f, 1, 2);    /* no sink */
    check_against_reference(2, 65, 5, 10, 0.3f, 0, 3);     /* exact multiple, real selection */
    check_against_reference(2, 30, 4, 20, 0.125f, 1, 4);   /* shorter than S + 2L: causal */
    check_against_reference(2, 300, 16, 64, 0.125f, 0, 5); /* several tiles per partition */
    check_against_reference(1, 430, 2, 100, 0.29f, 1, 6);  /* L, T off the tile grid */
}

/* keep = 1 keeps every token: LRSA attention is dense causal attention. */
static void test_keep_one_is_dense(void **state) {
    (void)state;
    lrsa_case c;
    case_init(&c, 2, 203, 6, 2, 16, 4, 32, 1.0f, 0, 8);
    run_lrsa(&c);
    float *out = malloc(sizeof(float) * c.n_out), *lse = malloc(sizeof(float) * 2 * 6 * 203);
    float *dqkv = malloc(sizeof(float) * c.n_qkv);
    memset(out, 0, sizeof(float) * c.n_out);
    memset(dqkv, 0, sizeof(float) * c.n_qkv);
    memcpy(out, c.out, sizeof(float) * c.n_out); /* keep the padding columns equal */
    lrsa_attention_forward_cpu(out, lse, Q(&c, c.qkv), K(&c, c.qkv), V(&c, c.qkv), &c.d);
    lrsa_attention_backward_cpu(Q(&c, dqkv), K(&c, dqkv), V(&c, dqkv), c.dout, Q(&c, c.qkv),
                                K(&c, c.qkv), V(&c, c.qkv), out, lse, &c.d);
    TU_ASSERT_CLOSE(c.out, out, c.n_out, 1e-5, "out");
    TU_ASSERT_CLOSE(c.lse, lse, 2 * 6 * 203, 1e-6, "lse");
    TU_ASSERT_CLOSE(c.dqkv, dqkv, c.n_qkv, 1e-5, "dq, dk, dv");
    free(out), free(lse), free(dqkv);
    case_free(&c);
}

static double lrsa_loss(void *ctx, const float *x) {
    lrsa_case *c = ctx;
    const lrsa_attn_dims *d = &c->d;
    lrsa_lrsa_attention_forward_cpu(c->out, c->lse, x, x + d->Hq * d->D,
                                    x + (d->Hq + d->Hkv) * d->D, c->sel, d, &c->p);
    double l = 0;
    for (int64_t r = 0; r < (int64_t)d->B * d->T; r++)
        for (int i = 0; i < d->Hq * d->D; i++)
            l += (double)c->out[r * d->o_stride + i] * c->dout[r * d->o_stride + i];
    return l;
}

static void test_lrsa_finite_difference(void **state) {
    (void)state;
    lrsa_case c; /* selection fixed: no gradient through it */
    case_init(&c, 2, 45, 3, 1, 6, 2, 8, 0.25f, 1, 12);
    run_lrsa(&c);
    double e = ref_fd_check(lrsa_loss, &c, c.qkv, c.dqkv, c.n_qkv, 120, 1e-2f, 5);
    if (!(e < 5e-3)) fail_msg("finite differences: relative error %.3g", e);
    case_free(&c);
}

/* GQA: the query heads of a group follow their KV head's selection and no other. Changing only
 * KV head 1's selection changes query heads 3..5 (group 1) and leaves heads 0..2 bit-equal. */
static void test_gqa_group_selection(void **state) {
    (void)state;
    lrsa_case c;
    case_init(&c, 2, 90, 6, 2, 8, 2, 8, 0.25f, 1, 31);
    lrsa_lrsa_attention_forward_cpu(c.out, c.lse, Q(&c, c.qkv), K(&c, c.qkv), V(&c, c.qkv), c.sel,
                                    &c.d, &c.p);
    float *before = malloc(sizeof(float) * c.n_out);
    memcpy(before, c.out, sizeof(float) * c.n_out);
    for (int b = 0; b < 2; b++) /* KV head 1: keep the first kk tokens of every partition */
        for (int j = 0; j < c.ns; j++)
            for (int x = 0; x < c.kk; x++)
                c.sel[((b * 2 + 1) * c.ns + j) * c.kk + x] = c.p.sink + j * c.p.lag + x;
    lrsa_lrsa_attention_forward_cpu(c.out, c.lse, Q(&c, c.qkv), K(&c, c.qkv), V(&c, c.qkv), c.sel,
                                    &c.d, &c.p);
    for (int h = 0; h < 6; h++) {
        double diff = 0;
        for (int64_t r = 0; r < 2 * 90; r++)
            for (int x = 0; x < 8; x++) {
                int64_t i = r * c.d.o_stride + h * 8 + x;
                diff += fabs((double)c.out[i] - before[i]);
            }
        if (h < 3 && diff != 0.0) fail_msg("query head %d (group 0) changed by %g", h, diff);
        if (h >= 3 && !(diff > 1e-3)) fail_msg("query head %d (group 1) did not change", h);
    }
    free(before);
    case_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lrsa_matches_rule),
        cmocka_unit_test(test_keep_one_is_dense),
        cmocka_unit_test(test_gqa_group_selection),
        cmocka_unit_test(test_lrsa_finite_difference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
