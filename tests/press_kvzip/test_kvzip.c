/* KVzip scoring (eval/press/press_kvzip.c) against a brute-force reference on a tiny random model:
 *  - every context row's score is the max, over all reconstruction queries (every chunk's
 *    prompt, overlap and context tokens) and the G query heads of its group, of its softmax
 *    attention probability over every row the query sees; the reference runs the whole
 *    sequence context + x_t through the model's blocks with a naive attention in double and
 *    never touches the cache code; sink rows score +inf;
 *  - the cache after scoring equals the cache before, bit for bit (rows, positions, lengths,
 *    next position);
 *  - LRSA_SELECT_GLOBAL counts from one ranking over all layers and heads, on scores made by
 *    hand;
 *  - the reconstruction prompt in ChatML (fixture SmolLM tokenizer) and the missing-prompt
 *    error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/press/press_internal.h"
#include "eval/press/press_kvzip.h"
#include "eval/run/prefill.h"
#include "eval/tiny_model.h"
#include "test_util.h"

enum { V = 61, LAYERS = 2 };

/* Max attention probability of the queries at positions >= n of seq[0..len) on rows < n, per
 * (layer, KV head), maxed into ref[(l*Hkv+g)*n + i]. Naive causal attention in double. */
static void brute_force(const lrsa_model *m, const int32_t *seq, int64_t len, int64_t n,
                        double *ref) {
    const lrsa_model_config *cfg = &m->cfg;
    const int C = cfg->hidden_size, D = cfg->head_dim, Hq = cfg->num_attention_heads,
              Hkv = cfg->num_key_value_heads, G = Hq / Hkv;
    const int64_t row = (int64_t)(Hq + 2 * Hkv) * D;
    float *x = malloc(len * C * sizeof(float)), *qkv = malloc(len * row * sizeof(float));
    float *att = malloc(len * Hq * D * sizeof(float));
    double *p = malloc(len * sizeof(double));
    int32_t *pos = malloc(len * sizeof(int32_t));
    for (int64_t i = 0; i < len; i++) pos[i] = (int32_t)i;
    lrsa_model_embed(m, seq, len, x);
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        lrsa_model_layer_qkv(m, l, x, pos, len, qkv);
        for (int h = 0; h < Hq; h++) {
            const int g = h / G;
            for (int64_t j = 0; j < len; j++) {
                const float *q = qkv + j * row + h * D;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t t = 0; t <= j; t++) {
                    const float *k = qkv + t * row + (Hq + g) * D;
                    double s = 0.0;
                    for (int d = 0; d < D; d++) s += (double)q[d] * k[d];
                    p[t] = s / sqrt((double)D);
                    if (p[t] > mx) mx = p[t];
                }
                for (int64_t t = 0; t <= j; t++) sum += (p[t] = exp(p[t] - mx));
                for (int d = 0; d < D; d++) {
                    double o = 0.0;
                    for (int64_t t = 0; t <= j; t++)
                        o += p[t] / sum * qkv[t * row + (Hq + Hkv + g) * D + d];
                    att[j * Hq * D + h * D + d] = (float)o;
                }
                if (j >= n)
                    for (int64_t t = 0; t < n; t++) {
                        double *r = &ref[((int64_t)l * Hkv + g) * n + t];
                        if (p[t] / sum > *r) *r = p[t] / sum;
                    }
            }
        }
        lrsa_model_layer_out(m, l, x, att, len);
    }
    free(x);
    free(qkv);
    free(att);
    free(p);
    free(pos);
}

static void snapshot_equal(const lrsa_kv_cache *a, const lrsa_kv_cache *b) {
    assert_int_equal(a->seen, b->seen);
    for (int64_t i = 0; i < (int64_t)a->n_layers * a->n_kv_heads; i++) {
        const lrsa_kv_head *x = &a->heads[i], *y = &b->heads[i];
        assert_int_equal(x->len, y->len);
        assert_memory_equal(x->k, y->k, x->len * a->head_dim * sizeof(float));
        assert_memory_equal(x->v, y->v, x->len * a->head_dim * sizeof(float));
        assert_memory_equal(x->pos, y->pos, x->len * sizeof(int32_t));
    }
}

static void copy_cache(lrsa_kv_cache *dst, const lrsa_kv_cache *src) {
    lrsa_err e = {{0}};
    assert_int_equal(
        lrsa_kv_cache_init(dst, src->n_layers, src->n_kv_heads, src->head_dim, NULL, &e), 0);
    for (int l = 0; l < src->n_layers; l++) {
        const lrsa_kv_head *h0 = &src->heads[(int64_t)l * src->n_kv_heads];
        /* rebuild the fused layout the cache append reads: [k_g0, k_g1, ..., v_g0, ...] */
        const int Hkv = src->n_kv_heads, D = src->head_dim;
        float *k = malloc(h0->len * Hkv * D * sizeof(float)), *v = malloc(h0->len * Hkv * D * 4);
        for (int g = 0; g < Hkv; g++) {
            const lrsa_kv_head *h = &src->heads[(int64_t)l * Hkv + g];
            for (int64_t t = 0; t < h->len; t++) {
                memcpy(k + (t * Hkv + g) * D, h->k + t * D, D * sizeof(float));
                memcpy(v + (t * Hkv + g) * D, h->v + t * D, D * sizeof(float));
            }
        }
        lrsa_kv_cache_append(dst, l, k, v, (int64_t)Hkv * D, h0->pos, h0->len);
        free(k);
        free(v);
    }
}

static void check_case(int64_t n, int chunk, int P, int sink, uint64_t seed) {
    lrsa_model m;
    tiny_model_create(&m, LAYERS, V, 0, seed);
    const int Hkv = m.cfg.num_key_value_heads;
    int32_t *ids = malloc(n * sizeof(int32_t)), *prompt = malloc(P * sizeof(int32_t));
    tiny_random_ids(ids, n, V, seed + 1);
    tiny_random_ids(prompt, P, V, seed + 2);
    lrsa_err e = {{0}};
    lrsa_kv_cache c, before;
    assert_int_equal(lrsa_kv_cache_init(&c, LAYERS, Hkv, m.cfg.head_dim, NULL, &e), 0);
    assert_int_equal(lrsa_prefill(&m, &c, ids, n, LRSA_PREFILL_ONESHOT, NULL, 0, &e), 0);
    copy_cache(&before, &c);
    snapshot_equal(&before, &c);

    lrsa_press_spec s;
    memset(&s, 0, sizeof s);
    s.method = LRSA_PRESS_KVZIP;
    s.keep = 0.5;
    s.sink = sink;
    s.kvzip_chunk = chunk;
    s.kvzip_prompt_ids = prompt;
    s.n_kvzip_prompt = P;
    lrsa_press_scores sc;
    memset(&sc, 0, sizeof sc);
    assert_int_equal(lrsa_press_score_kvzip(&m, &c, &s, ids, n, &sc, &e), 0);
    snapshot_equal(&before, &c);
    assert_true(sc.score_s > 0.0);

    /* the reference: one full-sequence pass per chunk, x_t = prompt + overlap + chunk */
    double *ref = calloc(LAYERS * Hkv * n, sizeof(double));
    int32_t *seq = malloc((2 * n + P + LRSA_KVZIP_OVERLAP) * sizeof(int32_t));
    int n_chunks = 0;
    for (int64_t st = 0; st < n; st += chunk, n_chunks++) {
        const int64_t end = st + chunk < n ? st + chunk : n;
        const int64_t ov = st < LRSA_KVZIP_OVERLAP ? st : LRSA_KVZIP_OVERLAP;
        memcpy(seq, ids, n * sizeof(int32_t));
        memcpy(seq + n, prompt, P * sizeof(int32_t));
        memcpy(seq + n + P, ids + st - ov, (ov + end - st) * sizeof(int32_t));
        brute_force(&m, seq, n + P + ov + end - st, n, ref);
    }
    assert_true(n_chunks >= 2);
    double worst = 0.0;
    for (int l = 0; l < LAYERS; l++)
        for (int g = 0; g < Hkv; g++) {
            const int64_t hi = (int64_t)l * Hkv + g;
            assert_int_equal(sc.len[hi], n);
            for (int64_t t = 0; t < n; t++) {
                const float got = sc.score[hi][t];
                if (t < sink) {
                    assert_true(isinf(got) && got > 0);
                    continue;
                }
                const double d = fabs(got - ref[hi * n + t]);
                if (d > worst) worst = d;
                if (!(d <= 5e-6))
                    fail_msg("layer %d head %d row %lld: kvzip %.7f, brute force %.7f", l, g,
                             (long long)t, got, ref[hi * n + t]);
            }
        }
    printf("n=%lld chunk=%d: max |kvzip - brute force| = %.2g\n", (long long)n, chunk, worst);
    free(ref);
    free(seq);
    free(ids);
    free(prompt);
    lrsa_press_scores_free(&sc);
    lrsa_kv_cache_free(&c);
    lrsa_kv_cache_free(&before);
    lrsa_model_free(&m);
}

static void test_kvzip_matches_brute_force(void **state) {
    (void)state;
    check_case(30, 12, 5, 0, 11);  /* 3 chunks, overlap shorter than 8 on chunk 2 */
    check_case(150, 70, 7, 3, 12); /* x_t longer than a 64-query block; sink protected */
}

static void test_kvzip_needs_prompt(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 1, V, 0, 3);
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_init(&c, 1, 2, 16, NULL, &e), 0);
    int32_t ids[4] = {1, 2, 3, 4};
    assert_int_equal(lrsa_prefill(&m, &c, ids, 4, LRSA_PREFILL_ONESHOT, NULL, 0, &e), 0);
    lrsa_press_spec s;
    memset(&s, 0, sizeof s);
    s.method = LRSA_PRESS_KVZIP;
    lrsa_press_scores sc;
    memset(&sc, 0, sizeof sc);
    assert_int_equal(lrsa_press_score_kvzip(&m, &c, &s, ids, 4, &sc, &e), -1);
    assert_non_null(strstr(e.msg, "lrsa_kvzip_prompt_ids"));
    lrsa_kv_cache_free(&c);
    lrsa_model_free(&m);
}

static void test_select_global_by_hand(void **state) {
    (void)state;
    /* 2 layers x 2 KV heads x 4 rows; keep 0.5 -> 2 per head, 8 in all */
    float s00[4] = {0.9f, 0.1f, 0.8f, 0.7f}, s01[4] = {0.05f, 0.04f, 0.03f, 0.02f};
    float s10[4] = {INFINITY, 0.6f, 0.5f, 0.95f}, s11[4] = {0.3f, 0.3f, 0.2f, 0.85f};
    float *rows[4] = {s00, s01, s10, s11};
    int64_t len[4] = {4, 4, 4, 4};
    lrsa_press_scores sc = {.n_layers = 2, .n_kv_heads = 2, .len = len, .score = rows};
    lrsa_press_spec s;
    memset(&s, 0, sizeof s);
    s.keep = 0.5;
    int64_t n_keep[4];
    lrsa_err e = {{0}};
    /* ranking: inf(10) .95(10) .9(00) .85(11) .8(00) .7(00) .6(10) .5(10) | .3 .3 ... */
    assert_int_equal(lrsa_press_select_global(&s, &sc, n_keep, &e), 0);
    assert_int_equal(n_keep[0], 3);
    assert_int_equal(n_keep[1], 0);
    assert_int_equal(n_keep[2], 4);
    assert_int_equal(n_keep[3], 1);
    /* a token budget: 1 per head -> 4 in all: inf .95 .9 .85 */
    s.keep = 0;
    s.tokens_per_layer = 1;
    assert_int_equal(lrsa_press_select_global(&s, &sc, n_keep, &e), 0);
    assert_int_equal(n_keep[0], 1);
    assert_int_equal(n_keep[1], 0);
    assert_int_equal(n_keep[2], 2);
    assert_int_equal(n_keep[3], 1);
    /* ties at the threshold go to the lower (layer, head, row) */
    float t0[2] = {0.3f, 0.3f}, t1[2] = {0.3f, 0.1f};
    float *trows[2] = {t0, t1};
    int64_t tlen[2] = {2, 2};
    lrsa_press_scores ts = {.n_layers = 1, .n_kv_heads = 2, .len = tlen, .score = trows};
    s.tokens_per_layer = 0;
    s.keep = 0.5; /* 1 + 1 = 2 kept: both 0.3s of head 0 */
    assert_int_equal(lrsa_press_select_global(&s, &ts, n_keep, &e), 0);
    assert_int_equal(n_keep[0], 2);
    assert_int_equal(n_keep[1], 0);
}

static void test_prompt_ids_chatml(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/smollm/tokenizer.json", LRSA_TEST_DATA);
    lrsa_err e = {{0}};
    lrsa_tokenizer *t = lrsa_tokenizer_load(path, &e);
    assert_non_null(t);
    lrsa_ids ids = {0};
    assert_int_equal(lrsa_kvzip_prompt_ids(t, LRSA_CHAT_CHATML_SMOLLM, &ids, &e), 0);
    char *text = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
    assert_string_equal(text, "\n\nRepeat the previous context exactly.<|im_end|>\n"
                              "<|im_start|>assistant\n");
    free(text);
    lrsa_ids_free(&ids);
    assert_int_equal(lrsa_kvzip_prompt_ids(t, LRSA_CHAT_NONE, &ids, &e), 0);
    text = lrsa_tokenizer_decode(t, ids.v, ids.n, 0);
    assert_string_equal(text, "\n\nRepeat the previous context exactly.\n");
    free(text);
    lrsa_ids_free(&ids);
    lrsa_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kvzip_matches_brute_force),
        cmocka_unit_test(test_kvzip_needs_prompt),
        cmocka_unit_test(test_select_global_by_hand),
        cmocka_unit_test(test_prompt_ids_chatml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
