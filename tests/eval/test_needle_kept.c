/* The needle kept rate: whether an answer-bearing needle span is still visible to the answer.
 *  - the visibility rule from a hand-made selection (sink, recent window, own chunk, selected,
 *    dropped; queries before S + 2L see everything);
 *  - on a tiny random model: a span in the recent window is kept (rate 1) in the training
 *    forward and in the eval cache; a span made of tokens the selection dropped is provably not
 *    kept (rate < 1);
 *  - the training-forward rate (LRSA selection, visibility to the first answer token's query)
 *    equals the eval rate (the chunked-prefill LagKV cache the answer is fed into) for every
 *    single-token span of the prompt, and for the evaluator's per-sample record;
 *  - the token-level share (needle_tokens_kept) adds up its tokens' single-token counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/eval_dataset.h"
#include "eval/run/prefill.h"
#include "kernels/lagkv/lagkv_visible.h"
#include "test_util.h"
#include "tiny_model.h"

enum { V = 97 };

/* S = 2, L = 4, k = 1, T = 22: P_0 = [2,6) .. P_4 = [18,22), four scored partitions. */
static void test_visibility_rule(void **state) {
    (void)state;
    lrsa_lagkv_params p = {2, 4, 0.25f, 1.0f};
    const int T = 22;
    assert_int_equal(lrsa_lagkv_num_scored(T, &p), 4);
    const int32_t sel[4] = {4, 7, 13, 15}; /* one kept token per scored partition */
    /* q = 20 lies in P_4: sees the sink, Sel(P_0..P_2) and P_3 whole, P_4 up to itself */
    for (int t = 0; t <= 21; t++) {
        int want = t < 2 || t == 4 || t == 7 || t == 13 || (t >= 14 && t <= 20);
        if (lrsa_lrsa_key_visible(sel, T, &p, 20, t) != want)
            fail_msg("q=20, t=%d: visible %d, expected %d", t, !want, want);
    }
    for (int t = 0; t <= 9; t++) assert_true(lrsa_lrsa_key_visible(sel, T, &p, 9, t)); /* < S+2L */
    assert_false(lrsa_lrsa_key_visible(sel, T, &p, 9, 10));                            /* causal */
    /* q in P_2: P_1 whole, from P_0 only its selected 4 */
    assert_true(lrsa_lrsa_key_visible(sel, T, &p, 10, 4));
    assert_true(lrsa_lrsa_key_visible(sel, T, &p, 10, 6));
    assert_false(lrsa_lrsa_key_visible(sel, T, &p, 10, 5));
    assert_false(lrsa_lrsa_key_visible(sel, T, &p, 10, 3));
    /* spans: [4,6) holds a selected token, [8,10) none, [15,17) is in the window; 2 heads */
    int32_t two[8];
    memcpy(two, sel, sizeof sel);
    const int32_t other[4] = {5, 6, 12, 16};
    memcpy(two + 4, other, sizeof other);
    const int64_t rows[9] = {0, 4, 6, 0, 8, 10, 0, 15, 17};
    assert_int_equal(lrsa_lrsa_spans_visible(two, T, 2, &p, 20, rows, 1), 2);
    assert_int_equal(lrsa_lrsa_spans_visible(two, T, 2, &p, 20, rows + 3, 1), 0);
    assert_int_equal(lrsa_lrsa_spans_visible(two, T, 2, &p, 20, rows + 6, 1), 2);
    assert_int_equal(lrsa_lrsa_spans_visible(two, T, 2, &p, 20, rows, 3), 4);
}

/* A tiny model's one-pass LRSA forward and the chunked-prefill cache of its first q tokens. */
typedef struct setup {
    lrsa_model m;
    lrsa_workspace *ws;
    lrsa_kv_cache c;
    lrsa_lagkv_params p;
    int T, q;
    int32_t *ids;
} setup;

static void setup_make(setup *s, int S, int L, float r, int T, int q, uint64_t seed) {
    tiny_model_create(&s->m, 3, V, 0, seed);
    s->T = T;
    s->q = q;
    s->p = (lrsa_lagkv_params){S, L, r, 1.0f};
    s->ids = malloc((size_t)T * sizeof(int32_t));
    tiny_random_ids(s->ids, T, V, seed + 1);
    s->ws = lrsa_workspace_new();
    lrsa_attn_config attn = {.mode = LRSA_ATTN_LRSA, .lagkv = s->p};
    float *logits = malloc((size_t)T * V * sizeof(float));
    lrsa_model_logits(&s->m, s->ws, s->ids, 1, T, &attn, logits);
    free(logits);
    lrsa_press_config pc = lrsa_press_config_lagkv(s->p, LRSA_PREFILL_CHUNKED);
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_for_model(&s->c, &s->m, &pc, &e), 0);
    assert_int_equal(lrsa_prefill(&s->m, &s->c, s->ids, q, LRSA_PREFILL_CHUNKED, NULL, 0, &e), 0);
}

static void setup_free(setup *s) {
    lrsa_kv_cache_free(&s->c);
    lrsa_workspace_free(s->ws);
    lrsa_model_free(&s->m);
    free(s->ids);
}

/* (layer, KV head, span) triples kept: the training forward's and the eval cache's count. */
static int64_t train_kept(const setup *s, const int64_t *rows, int64_t n) {
    int64_t kept = 0;
    for (int l = 0; l < s->m.cfg.num_hidden_layers; l++) {
        const int32_t *sel = lrsa_workspace_selection(s->ws, l);
        assert_non_null(sel);
        kept +=
            lrsa_lrsa_spans_visible(sel, s->T, s->m.cfg.num_key_value_heads, &s->p, s->q, rows, n);
    }
    return kept;
}

static void test_window_kept_and_dropped_not(void **state) {
    (void)state;
    setup s;
    /* S = 4, L = 8, k = 2; answer query at 61 in P_7 = [60, 68): the window starts at 52 */
    setup_make(&s, 4, 8, 0.25f, 70, 61, 5);
    const int64_t triples = (int64_t)s.m.cfg.num_hidden_layers * s.m.cfg.num_key_value_heads;
    const int64_t window[3] = {0, 53, 56}, sink[3] = {0, 1, 3};
    assert_int_equal(train_kept(&s, window, 1), triples);
    assert_int_equal(lrsa_kv_cache_spans_kept(&s.c, window, 1), triples);
    assert_int_equal(train_kept(&s, sink, 1), triples);
    assert_int_equal(lrsa_kv_cache_spans_kept(&s.c, sink, 1), triples);
    /* a token of P_1 = [12, 20) that layer 0, KV head 0 did not select: dropped there */
    const int32_t *sel0 = lrsa_workspace_selection(s.ws, 0) + 1 * 2;
    int64_t t = 12;
    while (t == sel0[0] || t == sel0[1]) t++;
    const int64_t dropped[3] = {0, t, t + 1};
    int64_t kept = train_kept(&s, dropped, 1);
    assert_true(kept < triples);
    assert_int_equal(lrsa_kv_cache_spans_kept(&s.c, dropped, 1), kept);
    /* a dense forward leaves no selection behind */
    lrsa_attn_config dense = {.mode = LRSA_ATTN_DENSE};
    float *logits = malloc((size_t)s.T * V * sizeof(float));
    lrsa_model_logits(&s.m, s.ws, s.ids, 1, s.T, &dense, logits);
    free(logits);
    assert_null(lrsa_workspace_selection(s.ws, 0));
    setup_free(&s);
}

/* Every single-token span before the answer: training visibility == kept by the eval cache. */
static void test_train_equals_eval(void **state) {
    (void)state;
    struct {
        int S, L;
        float r;
        int T, q;
    } cases[] = {{4, 8, 0.25f, 77, 70},
                 {3, 16, 0.25f, 150, 131},
                 {2, 12, 0.29f, 100, 98},
                 {4, 8, 0.5f, 60, 44}}; /* q = 44: the prompt ends on a partition boundary */
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        setup s;
        setup_make(&s, cases[ci].S, cases[ci].L, cases[ci].r, cases[ci].T, cases[ci].q, 40 + ci);
        int64_t dropped = 0;
        for (int64_t t = 0; t < s.q; t++) {
            const int64_t span[3] = {0, t, t + 1};
            int64_t a = train_kept(&s, span, 1), b = lrsa_kv_cache_spans_kept(&s.c, span, 1);
            if (a != b) fail_msg("case %zu token %lld: training %lld, eval %lld", ci, t, a, b);
            dropped += a < 6;
        }
        /* token level: a 3-token span's kept rows are its tokens' single-token counts added */
        for (int64_t t = 0; t + 3 <= s.q; t += 2) {
            const int64_t span3[3] = {0, t, t + 3};
            int64_t sum = 0;
            for (int64_t u = t; u < t + 3; u++) {
                const int64_t one[3] = {0, u, u + 1};
                sum += lrsa_kv_cache_spans_kept(&s.c, one, 1);
            }
            if (lrsa_kv_cache_span_tokens_kept(&s.c, span3, 1) != sum)
                fail_msg("case %zu span [%lld, %lld): token rows kept %lld, expected %lld", ci,
                         (long long)t, (long long)t + 3,
                         (long long)lrsa_kv_cache_span_tokens_kept(&s.c, span3, 1), (long long)sum);
        }
        assert_true(dropped > 0); /* not vacuous: compression dropped something */
        setup_free(&s);
    }
}

/* `lrsa eval`'s evaluator on a dataset with spans: the per-sample record and the row mean equal
 * the training forward's rate on the same tokens; a sample without spans is not counted. */
static void test_evaluator_records(void **state) {
    (void)state;
    setup s;
    setup_make(&s, 4, 8, 0.25f, 70, 61, 5);
    const int64_t triples = (int64_t)s.m.cfg.num_hidden_layers * s.m.cfg.num_key_value_heads;
    char dir[1024], path[1100];
    tu_tmpdir(dir, sizeof dir, "needle_kept");
    snprintf(path, sizeof path, "%s/spans.h5", dir);
    lrsa_dataset_writer *w = lrsa_dataset_writer_new();
    uint8_t mask[70];
    for (int t = 0; t < 70; t++) mask[t] = t >= s.q;
    lrsa_err e = {{0}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(lrsa_dataset_writer_add(w, s.ids, mask, 70, s.q, "x", &e), 0);
    const int64_t spans[6] = {0, 13, 15, 0, 20, 23}; /* P_1 and P_2: subject to selection */
    assert_int_equal(lrsa_dataset_writer_add_span(w, 0, 13, 15, &e), 0);
    assert_int_equal(lrsa_dataset_writer_add_span(w, 0, 20, 23, &e), 0);
    const lrsa_dataset_meta meta = {"t", "none", "test", "passkey", 0};
    assert_int_equal(lrsa_dataset_writer_commit(w, path, &meta, &e), 0);
    lrsa_dataset_writer_free(w);
    lrsa_dataset d;
    if (lrsa_dataset_open(&d, path, &e) != 0) fail_msg("%s", e.msg);
    lrsa_press_config pc = lrsa_press_config_lagkv(s.p, LRSA_PREFILL_CHUNKED);
    lrsa_sample_records recs = {0};
    lrsa_eval_options o = {.want_nll = 1, .records = &recs, .batch = 2};
    lrsa_eval_result r;
    if (lrsa_eval_dataset(&s.m, &d, &pc, &o, &r, &e) != 0) fail_msg("%s", e.msg);
    double want = (double)train_kept(&s, spans, 2) / (double)(2 * triples);
    assert_int_equal(r.n_needle, 1);
    assert_true(want < 1.0); /* not vacuous: some (layer, head) dropped a span */
    assert_true(r.needle_kept == want);
    assert_int_equal(recs.n, 2);
    assert_true(recs.v[0].has_needle_kept && recs.v[0].needle_kept == want);
    /* token level: the spans' 5 tokens, each counted as a one-token span of the training forward */
    int64_t tok = 0;
    for (int k = 0; k < 2; k++)
        for (int64_t u = spans[3 * k + 1]; u < spans[3 * k + 2]; u++) {
            const int64_t one[3] = {0, u, u + 1};
            tok += train_kept(&s, one, 1);
        }
    const double want_tok = (double)tok / (double)(5 * triples);
    assert_true(want_tok < want); /* a span partly kept counts fully above, in part here */
    assert_true(recs.v[0].needle_tokens_kept == want_tok);
    assert_false(recs.v[1].has_needle_kept);
    lrsa_sample_records_free(&recs);
    lrsa_dataset_close(&d);
    setup_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_visibility_rule),
        cmocka_unit_test(test_window_kept_and_dropped_not),
        cmocka_unit_test(test_train_equals_eval),
        cmocka_unit_test(test_evaluator_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
