/* The threaded CPU attention kernels: dense, LRSA and the inference cache give the same bits
 * for 1, 2 and 3 threads; the cache kernel (with and without its key-range split) matches a
 * naive double reference and, over a whole sequence, equals dense causal attention bit for bit
 * (one tile engine); tile edge cases (sequences of 1, BK, BK + 1 keys, 8 query heads per KV
 * head, odd head dims). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_cache.h"
#include "kernels/attention/attention_tile.h"
#include "kernels/cpu/cpu_threads.h"
#include "kernels/lagkv/lagkv.h"
#include "kernels/lrsa_attention/lrsa_attention.h"
#include "test_util.h"

typedef struct {
    lrsa_attn_dims d;
    float *qkv, *out, *lse, *dout, *dqkv;
    int64_t n_qkv, n_out, n_lse;
} problem;

static void problem_init(problem *p, int B, int T, int Hq, int Hkv, int D, uint64_t seed) {
    int64_t qs = (int64_t)(Hq + 2 * Hkv) * D, os = (int64_t)Hq * D + 3;
    p->d = (lrsa_attn_dims){B, T, Hq, Hkv, D, qs, qs, os, 1.0f / sqrtf((float)D)};
    p->n_qkv = (int64_t)B * T * qs;
    p->n_out = (int64_t)B * T * os;
    p->n_lse = (int64_t)B * Hq * T;
    p->qkv = malloc(sizeof(float) * p->n_qkv);
    p->dqkv = calloc((size_t)p->n_qkv, sizeof(float));
    p->out = calloc((size_t)p->n_out, sizeof(float));
    p->dout = malloc(sizeof(float) * p->n_out);
    p->lse = calloc((size_t)p->n_lse, sizeof(float));
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    tu_fill_normal(p->qkv, p->n_qkv, 1.0f, &rng);
    tu_fill_normal(p->dout, p->n_out, 1.0f, &rng);
}

static void problem_free(problem *p) {
    free(p->qkv), free(p->dqkv), free(p->out), free(p->dout), free(p->lse);
}

static const float *Kp(const problem *p, const float *x) {
    return x + (int64_t)p->d.Hq * p->d.D;
}
static const float *Vp(const problem *p, const float *x) {
    return x + (int64_t)(p->d.Hq + p->d.Hkv) * p->d.D;
}

/* Forward and backward (dense, or LRSA when sel != NULL) into p's buffers. */
static void run(problem *p, const int32_t *sel, const lrsa_lagkv_params *lp) {
    float *q = p->qkv, *dq = p->dqkv;
    const lrsa_attn_dims *d = &p->d;
    float *dk = dq + (int64_t)d->Hq * d->D, *dv = dk + (int64_t)d->Hkv * d->D;
    if (sel) {
        lrsa_lrsa_attention_forward_cpu(p->out, p->lse, q, Kp(p, q), Vp(p, q), sel, d, lp);
        lrsa_lrsa_attention_backward_cpu(dq, dk, dv, p->dout, q, Kp(p, q), Vp(p, q), p->out, p->lse,
                                         sel, d, lp);
    } else {
        lrsa_attention_forward_cpu(p->out, p->lse, q, Kp(p, q), Vp(p, q), d);
        lrsa_attention_backward_cpu(dq, dk, dv, p->dout, q, Kp(p, q), Vp(p, q), p->out, p->lse, d);
    }
}

/* Runs with 1 thread, then 2 and 3: out, lse and dq/dk/dv must be the same bits. */
static void check_thread_counts(int B, int T, int Hq, int Hkv, int D, const lrsa_lagkv_params *lp,
                                uint64_t seed) {
    const int saved = lrsa_cpu_threads();
    problem ref, p;
    problem_init(&ref, B, T, Hq, Hkv, D, seed);
    problem_init(&p, B, T, Hq, Hkv, D, seed);
    int32_t *sel = NULL;
    if (lp) {
        int64_t n = (int64_t)B * Hkv * lrsa_lagkv_num_scored(T, lp) * lrsa_lagkv_k(lp);
        sel = malloc(sizeof(int32_t) * (size_t)(n + 1));
        lrsa_lagkv_select_cpu(sel, NULL, Kp(&ref, ref.qkv), Vp(&ref, ref.qkv), B, T, Hkv, D,
                              ref.d.kv_stride, lp);
    }
    lrsa_cpu_set_threads(1);
    run(&ref, sel, lp);
    for (int t = 2; t <= 3; t++) {
        lrsa_cpu_set_threads(t);
        assert_int_equal(lrsa_cpu_threads(), t);
        run(&p, sel, lp);
        if (memcmp(p.out, ref.out, sizeof(float) * ref.n_out) ||
            memcmp(p.lse, ref.lse, sizeof(float) * ref.n_lse) ||
            memcmp(p.dqkv, ref.dqkv, sizeof(float) * ref.n_qkv))
            fail_msg("%s B=%d T=%d Hq=%d Hkv=%d D=%d: %d threads differ from 1",
                     lp ? "LRSA" : "dense", B, T, Hq, Hkv, D, t);
    }
    lrsa_cpu_set_threads(saved);
    free(sel);
    problem_free(&ref);
    problem_free(&p);
}

static void test_dense_thread_counts(void **state) {
    (void)state;
    check_thread_counts(2, 300, 6, 2, 16, NULL, 1); /* several blocks, T off the tile grid */
    check_thread_counts(1, 129, 8, 1, 8, NULL, 2);  /* G = 8: 32 positions per block */
    check_thread_counts(3, 65, 2, 2, 5, NULL, 3);   /* G = 1, odd head dim */
}

static void test_lrsa_thread_counts(void **state) {
    (void)state;
    lrsa_lagkv_params a = {4, 32, 0.25f, 1.0f}, b = {16, 64, 0.125f, 1.0f};
    check_thread_counts(2, 300, 6, 2, 16, &a, 4);
    check_thread_counts(1, 500, 6, 3, 8, &b, 5);
}

/* Tile edges: sequences of 1 to 3 tokens (a block of one row per head) and of BK and BK + 1
 * keys (a full key tile, then one more). */
static void test_short_sequences(void **state) {
    (void)state;
    for (int T = 1; T <= 3; T++) check_thread_counts(2, T, 6, 2, 16, NULL, 10 + (uint64_t)T);
    check_thread_counts(1, LRSA_ATTN_BK, 3, 1, 16, NULL, 20);
    check_thread_counts(1, LRSA_ATTN_BK + 1, 3, 1, 16, NULL, 21);
}

/* ----- the inference cache ----- */

typedef struct {
    int Hq, Hkv, D;
    int64_t N, len[4];
    float *k[4], *v[4], *q, *out;
    lrsa_attn_kv_rows rows[4];
} cache_case;

static void cache_init(cache_case *c, int Hq, int Hkv, int D, int64_t N, const int64_t *len,
                       uint64_t seed) {
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    c->Hq = Hq, c->Hkv = Hkv, c->D = D, c->N = N;
    for (int g = 0; g < Hkv; g++) {
        c->len[g] = len[g];
        c->k[g] = malloc(sizeof(float) * (size_t)(len[g] * D));
        c->v[g] = malloc(sizeof(float) * (size_t)(len[g] * D));
        tu_fill_normal(c->k[g], len[g] * D, 1.0f, &rng);
        tu_fill_normal(c->v[g], len[g] * D, 1.0f, &rng);
        c->rows[g] = (lrsa_attn_kv_rows){c->k[g], c->v[g], len[g]};
    }
    c->q = malloc(sizeof(float) * (size_t)(N * Hq * D));
    tu_fill_normal(c->q, N * Hq * D, 1.0f, &rng);
    c->out = calloc((size_t)(N * Hq * D), sizeof(float));
}

static void cache_free(cache_case *c) {
    for (int g = 0; g < c->Hkv; g++) free(c->k[g]), free(c->v[g]);
    free(c->q), free(c->out);
}

static void cache_run(cache_case *c) {
    lrsa_attention_cache_forward_cpu(c->out, (int64_t)c->Hq * c->D, c->q, (int64_t)c->Hq * c->D,
                                     c->Hq, c->N, c->rows, c->Hkv, c->D);
}

/* Query n sees rows [0, len - N + n] of its KV head: softmax in double over those scores. */
static double cache_ref_err(const cache_case *c) {
    const int D = c->D, G = c->Hq / c->Hkv;
    double num = 0.0, den = 0.0;
    for (int64_t n = 0; n < c->N; n++)
        for (int h = 0; h < c->Hq; h++) {
            const int g = h / G;
            const int64_t vis = c->len[g] - c->N + n + 1;
            const float *q = c->q + (n * c->Hq + h) * D;
            double *s = malloc(sizeof(double) * (size_t)vis), mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < vis; j++) {
                double dot = 0.0;
                for (int x = 0; x < D; x++) dot += (double)q[x] * c->k[g][j * D + x];
                s[j] = dot / sqrt((double)D);
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int64_t j = 0; j < vis; j++) sum += (s[j] = exp(s[j] - mx));
            for (int x = 0; x < D; x++) {
                double o = 0.0;
                for (int64_t j = 0; j < vis; j++) o += s[j] / sum * c->v[g][j * D + x];
                double e = c->out[(n * c->Hq + h) * D + x] - o;
                num += e * e, den += o * o;
            }
            free(s);
        }
    return sqrt(num / den);
}

/* Decode (N = 1) and short chunks split their keys (few blocks), long chunks do not; heads of
 * different lengths; 1 and 3 threads give the same bits. */
static void test_cache_matches_reference(void **state) {
    (void)state;
    const int saved = lrsa_cpu_threads();
    struct {
        int Hq, Hkv, D;
        int64_t N, len[3];
    } cases[] = {
        {6, 2, 16, 1, {2500, 2300}},     /* decode: 3 key ranges, ragged heads */
        {6, 2, 16, 1, {1, 1}},           /* the first token: itself only */
        {6, 2, 16, 37, {1100, 37}},      /* short chunk: split, one head without a cache */
        {6, 3, 8, 300, {700, 300, 450}}, /* long chunk: 5 blocks x 3 heads, no split */
        {8, 1, 16, 129, {129 + LRSA_ATTN_CACHE_SPLIT}}, /* G = 8 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cache_case c;
        cache_init(&c, cases[i].Hq, cases[i].Hkv, cases[i].D, cases[i].N, cases[i].len, 40 + i);
        lrsa_cpu_set_threads(1);
        cache_run(&c);
        double e = cache_ref_err(&c);
        if (!(e < 1e-5)) fail_msg("cache case %zu: relative error %.3g", i, e);
        size_t bytes = sizeof(float) * (size_t)(c.N * c.Hq * c.D);
        float *one = malloc(bytes);
        memcpy(one, c.out, bytes);
        lrsa_cpu_set_threads(3);
        memset(c.out, 0, bytes);
        cache_run(&c);
        if (memcmp(one, c.out, bytes)) fail_msg("cache case %zu: 3 threads differ from 1", i);
        free(one);
        cache_free(&c);
    }
    lrsa_cpu_set_threads(saved);
}

/* A whole sequence through the cache (no cached rows, enough blocks not to split) is the dense
 * causal forward bit for bit: one tile engine, the same blocks and key tiles. */
static void test_cache_equals_dense(void **state) {
    (void)state;
    const int Hq = 6, Hkv = 2, D = 16, T = 333;
    problem p;
    problem_init(&p, 1, T, Hq, Hkv, D, 50);
    lrsa_attention_forward_cpu(p.out, p.lse, p.qkv, Kp(&p, p.qkv), Vp(&p, p.qkv), &p.d);
    lrsa_attn_kv_rows rows[2];
    float *kv[4];
    for (int g = 0; g < Hkv; g++) {
        kv[2 * g] = malloc(sizeof(float) * T * D);
        kv[2 * g + 1] = malloc(sizeof(float) * T * D);
        for (int t = 0; t < T; t++) {
            memcpy(kv[2 * g] + t * D, Kp(&p, p.qkv) + t * p.d.kv_stride + g * D, sizeof(float) * D);
            memcpy(kv[2 * g + 1] + t * D, Vp(&p, p.qkv) + t * p.d.kv_stride + g * D,
                   sizeof(float) * D);
        }
        rows[g] = (lrsa_attn_kv_rows){kv[2 * g], kv[2 * g + 1], T};
    }
    float *out = calloc((size_t)p.n_out, sizeof(float));
    lrsa_attention_cache_forward_cpu(out, p.d.o_stride, p.qkv, p.d.q_stride, Hq, T, rows, Hkv, D);
    for (int t = 0; t < T; t++)
        if (memcmp(out + t * p.d.o_stride, p.out + t * p.d.o_stride, sizeof(float) * Hq * D))
            fail_msg("row %d: the cache kernel differs from dense attention", t);
    for (int i = 0; i < 4; i++) free(kv[i]);
    free(out);
    problem_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_thread_counts), cmocka_unit_test(test_lrsa_thread_counts),
        cmocka_unit_test(test_short_sequences),     cmocka_unit_test(test_cache_matches_reference),
        cmocka_unit_test(test_cache_equals_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
