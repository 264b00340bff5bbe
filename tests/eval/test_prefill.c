/* Cached prefill against the full-sequence forward on a tiny random model (GQA, 3 query heads
 * per KV head, head_dim 16):
 *  - THE key invariant (lagkv-lrsa.md 5): the one-pass LRSA forward's logits equal those of
 *    sequential chunked prefill with incremental LagKV compression, at every position, for
 *    several (S, L, r) and lengths that are not multiples of L; and in every layer the cache
 *    holds exactly the sink, the one-pass selections and the uncompressed tail, with the
 *    one-pass K/V rows;
 *  - with a full cache, one-shot and chunked prefill equal the dense forward;
 *  - one-shot compression changes nothing before it (use, then compress) and keeps the
 *    section-4 number of tokens. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/prefill.h"
#include "kernels/lrsa_attention/lrsa_attention.h"
#include "test_util.h"
#include "tiny_model.h"

enum { V = 97 };

/* Norm-relative error of every row of a vs b; fails on the first row over tol. */
static void assert_rows_close(const float *a, const float *b, int T, double tol,
                              const char *label) {
    for (int t = 0; t < T; t++) {
        double err = tu_rel_err(a + (int64_t)t * V, b + (int64_t)t * V, V);
        if (!(err <= tol))
            fail_msg("%s: position %d: relative error %.3g > %.3g", label, t, err, tol);
    }
}

static void chunked_logits(lrsa_model *m, const int32_t *ids, int T, const lrsa_press_config *pc,
                           float *logits, lrsa_kv_cache *c) {
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_for_model(c, m, pc, &e), 0);
    assert_int_equal(lrsa_prefill(m, c, ids, T, pc->spec.prefill, logits, 1, &e), 0);
}

static void test_lrsa_one_pass_equals_chunked_prefill(void **state) {
    (void)state;
    struct {
        int S, L;
        float r;
        int T, bias;
    } cases[] = {
        {4, 8, 0.5f, 77, 0},    /* many partitions, leftover 1 */
        {3, 16, 0.25f, 150, 1}, /* Qwen2-style biases */
        {0, 5, 0.4f, 53, 0},    /* no sink, k = 2 */
        {16, 32, 0.5f, 203, 0}, /* the reference's sink */
        {2, 12, 0.29f, 100, 1}, /* k = (int)(0.29*12) = 3 */
        {5, 10, 1.0f, 64, 0},   /* r = 1: keeps everything */
        {6, 9, 0.34f, 23, 0},   /* shorter than S + 2L: no compression at all */
    };
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        lrsa_model m;
        tiny_model_create(&m, 3, V, cases[ci].bias, 100 + ci);
        const int T = cases[ci].T;
        int32_t *ids = malloc(T * sizeof(int32_t));
        tiny_random_ids(ids, T, V, 200 + ci);
        lrsa_attn_config attn = {.mode = LRSA_ATTN_LRSA};
        attn.lagkv = (lrsa_lagkv_params){cases[ci].S, cases[ci].L, cases[ci].r, 1.0f};
        float *ref = malloc((size_t)T * V * sizeof(float));
        float *got = malloc((size_t)T * V * sizeof(float));
        float *dense = malloc((size_t)T * V * sizeof(float));
        tiny_full_logits(&m, ids, T, &attn, ref);
        lrsa_attn_config dense_attn = {.mode = LRSA_ATTN_DENSE};
        tiny_full_logits(&m, ids, T, &dense_attn, dense);
        lrsa_press_config pc = lrsa_press_config_lagkv(attn.lagkv, LRSA_PREFILL_CHUNKED);
        lrsa_kv_cache c;
        chunked_logits(&m, ids, T, &pc, got, &c);
        char label[96];
        snprintf(label, sizeof(label), "case %zu (S=%d L=%d r=%g T=%d)", ci, cases[ci].S,
                 cases[ci].L, cases[ci].r, T);
        assert_rows_close(got, ref, T, 1e-4, label);
        /* Not vacuous: compression really changed the logits where it could. */
        const int S = cases[ci].S, L = cases[ci].L, k = (int)((double)cases[ci].r * L);
        if (T > S + 2 * L && k < L) {
            assert_true(tu_rel_err(ref, dense, (int64_t)T * V) > 1e-3);
            assert_true(lrsa_kv_cache_max_len(&c) < T);
        } else {
            assert_rows_close(got, dense, T, 1e-4, label);
        }
        /* The cache after chunked prefill holds what the incremental rule predicts. */
        for (int l = 0; l < 3; l++)
            for (int g = 0; g < 2; g++) {
                lrsa_kv_head *h = lrsa_kv_cache_head(&c, l, g);
                assert_true(h->len < h->base + 2 * L || (T < S + 2 * L && h->len == T));
            }
        lrsa_kv_cache_free(&c);
        free(ids);
        free(ref);
        free(got);
        free(dense);
        lrsa_model_free(&m);
    }
}

/* Every layer, not only the logits: the one-pass LRSA forward assembled from the block API (per
 * layer: q/k/v, LagKV selection on this layer's post-RoPE K/V, LRSA attention) predicts, for
 * each layer and KV head, which positions the chunked-prefill cache keeps (sink, Sel(P_0) ..
 * Sel(P_{n-2}), then P_{n-1} and the leftover whole) and their K/V rows. */
static void check_layers(int S, int L, float r, int T, int bias, uint64_t seed) {
    lrsa_model m;
    tiny_model_create(&m, 3, V, bias, seed);
    const lrsa_model_config *mc = &m.cfg;
    const int C = mc->hidden_size, D = mc->head_dim, Hq = mc->num_attention_heads,
              Hkv = mc->num_key_value_heads, QKV = (Hq + 2 * Hkv) * D;
    int32_t *ids = malloc((size_t)T * sizeof(int32_t)), *pos = malloc((size_t)T * sizeof(int32_t));
    tiny_random_ids(ids, T, V, seed + 1);
    for (int t = 0; t < T; t++) pos[t] = t;
    lrsa_lagkv_params p = {S, L, r, 1.0f};
    lrsa_press_config pc = lrsa_press_config_lagkv(p, LRSA_PREFILL_CHUNKED);
    lrsa_kv_cache c;
    chunked_logits(&m, ids, T, &pc, NULL, &c);
    const int ns = lrsa_lagkv_num_scored(T, &p), kk = lrsa_lagkv_k(&p);
    const int n_part = lrsa_lagkv_num_partitions(T, &p);
    const int tail = ns > 0 ? S + (n_part - 1) * L : (S < T ? S : T); /* kept whole from here */
    float *x = malloc((size_t)T * C * sizeof(float)),
          *qkv = malloc((size_t)T * QKV * sizeof(float));
    float *att = malloc((size_t)T * Hq * D * sizeof(float)),
          *lse = malloc((size_t)T * Hq * sizeof(float));
    int32_t *sel = malloc((size_t)(Hkv * (ns > 0 ? ns : 1) * (kk > 0 ? kk : 1)) * sizeof(int32_t));
    int32_t *want = malloc((size_t)T * sizeof(int32_t));
    lrsa_attn_dims d = {.B = 1,
                        .T = T,
                        .Hq = Hq,
                        .Hkv = Hkv,
                        .D = D,
                        .q_stride = QKV,
                        .kv_stride = QKV,
                        .o_stride = Hq * D,
                        .scale = 1.0f / sqrtf((float)D)};
    lrsa_model_embed(&m, ids, T, x);
    char label[160];
    for (int l = 0; l < mc->num_hidden_layers; l++) {
        lrsa_model_layer_qkv(&m, l, x, pos, T, qkv);
        const float *k = qkv + Hq * D, *v = qkv + (Hq + Hkv) * D;
        lrsa_lagkv_select_cpu(sel, NULL, k, v, 1, T, Hkv, D, QKV, &p);
        for (int g = 0; g < Hkv; g++) {
            int n = 0;
            for (int t = 0; t < S && t < T; t++) want[n++] = t;
            for (int j = 0; j < ns; j++)
                for (int i = 0; i < kk; i++) want[n++] = sel[(g * ns + j) * kk + i];
            for (int t = tail; t < T; t++) want[n++] = t;
            lrsa_kv_head *h = lrsa_kv_cache_head(&c, l, g);
            snprintf(label, sizeof label, "S=%d L=%d r=%g T=%d layer %d head %d", S, L, r, T, l, g);
            if (h->len != n)
                fail_msg("%s: cache keeps %lld rows, one pass %d", label, (long long)h->len, n);
            for (int i = 0; i < n; i++) {
                if (h->pos[i] != want[i])
                    fail_msg("%s: row %d is position %d, one pass keeps %d", label, i, h->pos[i],
                             want[i]);
                const float *kr = k + (int64_t)want[i] * QKV + g * D,
                            *vr = v + (int64_t)want[i] * QKV + g * D;
                if (!(tu_rel_err(h->k + (int64_t)i * D, kr, D) <= 1e-4) ||
                    !(tu_rel_err(h->v + (int64_t)i * D, vr, D) <= 1e-4))
                    fail_msg("%s: K/V of position %d differ from the one-pass rows", label,
                             want[i]);
            }
        }
        lrsa_lrsa_attention_forward_cpu(att, lse, qkv, k, v, sel, &d, &p);
        lrsa_model_layer_out(&m, l, x, att, T);
    }
    free(ids), free(pos), free(x), free(qkv), free(att), free(lse), free(sel), free(want);
    lrsa_kv_cache_free(&c);
    lrsa_model_free(&m);
}

static void test_every_layer_matches_one_pass(void **state) {
    (void)state;
    check_layers(4, 8, 0.5f, 77, 0, 300);    /* leftover 1 */
    check_layers(3, 16, 0.25f, 150, 1, 301); /* biases, leftover 3 */
    check_layers(0, 5, 0.4f, 53, 0, 302);    /* no sink */
    check_layers(2, 12, 0.29f, 98, 1, 303);  /* k = 3, exact multiple of L after the sink */
    check_layers(6, 9, 0.34f, 23, 0, 304);   /* shorter than S + 2L: everything kept */
}

/* With a full cache, both prefill modes (and a prefill split into two calls) reproduce the dense
 * forward at every position. */
static void test_full_cache_equals_dense(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 2, V, 1, 7);
    const int T = 90;
    int32_t ids[90];
    tiny_random_ids(ids, T, V, 8);
    float *dense = malloc((size_t)T * V * sizeof(float));
    float *got = malloc((size_t)T * V * sizeof(float));
    lrsa_attn_config attn = {.mode = LRSA_ATTN_DENSE};
    tiny_full_logits(&m, ids, T, &attn, dense);
    for (int mode = 0; mode < 2; mode++) {
        lrsa_press_config pc =
            lrsa_press_config_full(mode ? LRSA_PREFILL_ONESHOT : LRSA_PREFILL_CHUNKED);
        lrsa_kv_cache c;
        chunked_logits(&m, ids, T, &pc, got, &c);
        assert_rows_close(got, dense, T, 1e-4, mode ? "full cache oneshot" : "full cache chunked");
        assert_int_equal(lrsa_kv_cache_max_len(&c), T);
        lrsa_kv_cache_free(&c);
    }
    /* Continuing a cache: 37 tokens, then 53 more, logits of the second part match. */
    lrsa_press_config pc = lrsa_press_config_full(LRSA_PREFILL_ONESHOT);
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_for_model(&c, &m, &pc, &e), 0);
    assert_int_equal(lrsa_prefill(&m, &c, ids, 37, pc.spec.prefill, NULL, 0, &e), 0);
    assert_int_equal(lrsa_prefill(&m, &c, ids + 37, T - 37, pc.spec.prefill, got, 1, &e), 0);
    assert_rows_close(got, dense + 37 * V, T - 37, 1e-4, "continued prefill");
    lrsa_kv_cache_free(&c);
    free(dense);
    free(got);
    lrsa_model_free(&m);
}

/* One-shot prefill under LagKV: its logits are exact (use, then compress), and afterwards the
 * cache holds the section-4 one-event size. */
static void test_oneshot_uses_then_compresses(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 2, V, 0, 9);
    const int T = 123;
    int32_t ids[123];
    tiny_random_ids(ids, T, V, 10);
    float *dense = malloc((size_t)T * V * sizeof(float));
    float *got = malloc((size_t)T * V * sizeof(float));
    lrsa_attn_config attn = {.mode = LRSA_ATTN_DENSE};
    tiny_full_logits(&m, ids, T, &attn, dense);
    lrsa_press_config pc =
        lrsa_press_config_lagkv((lrsa_lagkv_params){3, 10, 0.5f, 1.0f}, LRSA_PREFILL_ONESHOT);
    lrsa_kv_cache c;
    chunked_logits(&m, ids, T, &pc, got, &c);
    assert_rows_close(got, dense, T, 1e-4, "oneshot logits");
    for (int l = 0; l < 2; l++)
        for (int g = 0; g < 2; g++)
            assert_int_equal(lrsa_kv_cache_head(&c, l, g)->len, 3 + 5 * 11 + 10 + 0);
    assert_int_equal(lrsa_lagkv_oneshot_len(T, &pc.spec.lagkv), 3 + 5 * 11 + 10);
    lrsa_kv_cache_free(&c);
    free(dense);
    free(got);
    lrsa_model_free(&m);
}

static void test_bad_tokens(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 1, V, 0, 11);
    lrsa_press_config pc = {0};
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_for_model(&c, &m, &pc, &e), 0);
    int32_t ids[3] = {1, V, 2};
    assert_int_equal(lrsa_prefill(&m, &c, ids, 3, LRSA_PREFILL_CHUNKED, NULL, 0, &e), -1);
    assert_non_null(strstr(e.msg, "vocabulary"));
    assert_int_equal(lrsa_prefill(&m, &c, ids, 0, LRSA_PREFILL_CHUNKED, NULL, 0, &e), -1);
    assert_int_equal(c.seen, 0);
    lrsa_kv_cache_free(&c);
    lrsa_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lrsa_one_pass_equals_chunked_prefill),
        cmocka_unit_test(test_every_layer_matches_one_pass),
        cmocka_unit_test(test_full_cache_equals_dense),
        cmocka_unit_test(test_oneshot_uses_then_compresses),
        cmocka_unit_test(test_bad_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
