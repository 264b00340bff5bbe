/* Batched evaluation (docs/EVAL.md, "Batched evaluation") against one sample at a time, on a
 * tiny random model: several sequences of different lengths share each forward, and every
 * sequence must get what it gets alone. The sequences are random and unrelated, so a row given
 * to the wrong sequence (or a cache fed another sequence's tokens) is off by far more than the
 * tolerance, which only admits SGEMM's rounding (a row's sum depends on how many rows share the
 * call). Checked: chunked LagKV and full-cache prefill (logits of every position and what each
 * cache kept), decode steps, the answer NLL by teacher forcing, greedy generation (the same
 * tokens, stops and lengths), a query-aware press (SnapKV: the same kept rows), and a batch of
 * one, which must be the unbatched path to the last bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/answer_nll.h"
#include "eval/run/generate.h"
#include "eval/run/prefill.h"
#include "test_util.h"
#include "tiny_model.h"

enum { V = 97, NSEQ = 5 };
/* lengths: a long one that is chunked many times, one of a single token, partial partitions */
static const int LEN[NSEQ] = {83, 1, 40, 9, 121};
static const double TOL = 1e-5; /* norm-relative, per row */

static void rows_close(const float *got, const float *ref, int64_t rows, const char *what, int b) {
    for (int64_t t = 0; t < rows; t++) {
        double err = tu_rel_err(got + t * V, ref + t * V, V);
        if (!(err <= TOL))
            fail_msg("%s, sequence %d, row %lld: relative error %.3g > %.3g", what, b, (long long)t,
                     err, TOL);
    }
}

static void make_ids(int32_t **ids) {
    for (int b = 0; b < NSEQ; b++) {
        ids[b] = malloc((size_t)(LEN[b] + 8) * sizeof(int32_t));
        tiny_random_ids(ids[b], LEN[b] + 8, V, 500 + b);
    }
}

/* Prefill (every position's logits), then three decode steps: batched and one at a time. */
static void check_prefill_and_decode(const lrsa_model *m, const lrsa_press_config *pc,
                                     const char *what) {
    lrsa_err e = {{0}};
    int32_t *ids[NSEQ];
    make_ids(ids);
    lrsa_kv_cache cb[NSEQ], c1[NSEQ];
    float *lb[NSEQ], *l1[NSEQ];
    lrsa_forward_seq seqs[NSEQ];
    for (int b = 0; b < NSEQ; b++) {
        assert_int_equal(lrsa_kv_cache_for_model(&cb[b], m, pc, &e), 0);
        assert_int_equal(lrsa_kv_cache_for_model(&c1[b], m, pc, &e), 0);
        lb[b] = malloc((size_t)LEN[b] * V * sizeof(float));
        l1[b] = malloc((size_t)LEN[b] * V * sizeof(float));
        seqs[b] = (lrsa_forward_seq){&cb[b], ids[b], LEN[b], lb[b], 1, NULL};
        assert_int_equal(lrsa_prefill(m, &c1[b], ids[b], LEN[b], pc->spec.prefill, l1[b], 1, &e),
                         0);
    }
    assert_int_equal(lrsa_prefill_batch(m, seqs, NSEQ, pc->spec.prefill, &e), 0);
    for (int b = 0; b < NSEQ; b++) {
        rows_close(lb[b], l1[b], LEN[b], what, b);
        assert_int_equal(cb[b].seen, c1[b].seen);
        assert_int_equal(lrsa_kv_cache_kept_rows(&cb[b]), lrsa_kv_cache_kept_rows(&c1[b]));
    }
    /* not vacuous: the sequences' last logits differ by far more than the tolerance */
    assert_true(
        tu_rel_err(l1[0] + (int64_t)(LEN[0] - 1) * V, l1[4] + (int64_t)(LEN[4] - 1) * V, V) > 1e-2);
    /* decode: one token per sequence per forward; sequence 1 sits out the second step */
    for (int step = 0; step < 3; step++) {
        int k = 0;
        for (int b = 0; b < NSEQ; b++) {
            if (b == 1 && step == 1) continue;
            const int32_t *tok = &ids[b][LEN[b] + step];
            seqs[k++] = (lrsa_forward_seq){&cb[b], tok, 1, lb[b], 0, NULL};
            lrsa_cached_forward(m, &c1[b], tok, 1, l1[b], 0);
        }
        lrsa_cached_forward_batch(m, seqs, k);
        for (int b = 0; b < NSEQ; b++) {
            if (b == 1 && step == 1) continue;
            rows_close(lb[b], l1[b], 1, what, b);
            assert_int_equal(lrsa_kv_cache_kept_rows(&cb[b]), lrsa_kv_cache_kept_rows(&c1[b]));
        }
    }
    for (int b = 0; b < NSEQ; b++) {
        lrsa_kv_cache_free(&cb[b]);
        lrsa_kv_cache_free(&c1[b]);
        free(lb[b]);
        free(l1[b]);
        free(ids[b]);
    }
}

static void test_prefill_and_decode(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 3, V, 1, 41);
    lrsa_lagkv_params lag = {4, 8, 0.5f, 1.0f};
    lrsa_press_config chunked = lrsa_press_config_lagkv(lag, LRSA_PREFILL_CHUNKED);
    check_prefill_and_decode(&m, &chunked, "lagkv chunked");
    lrsa_press_config oneshot = lrsa_press_config_lagkv(lag, LRSA_PREFILL_ONESHOT);
    check_prefill_and_decode(&m, &oneshot, "lagkv oneshot");
    lrsa_press_config full = lrsa_press_config_full(LRSA_PREFILL_CHUNKED);
    check_prefill_and_decode(&m, &full, "full cache");
    lrsa_model_free(&m);
}

/* A batch of one is the unbatched forward, bit for bit. */
static void test_batch_of_one_is_exact(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 2, V, 0, 42);
    lrsa_err e = {{0}};
    lrsa_press_config pc =
        lrsa_press_config_lagkv((lrsa_lagkv_params){2, 8, 0.5f, 1.0f}, LRSA_PREFILL_CHUNKED);
    int32_t ids[60];
    tiny_random_ids(ids, 60, V, 7);
    lrsa_kv_cache a, b;
    assert_int_equal(lrsa_kv_cache_for_model(&a, &m, &pc, &e), 0);
    assert_int_equal(lrsa_kv_cache_for_model(&b, &m, &pc, &e), 0);
    float *la = malloc(60 * V * sizeof(float)), *lb = malloc(60 * V * sizeof(float));
    lrsa_cached_forward(&m, &a, ids, 60, la, 1);
    lrsa_forward_seq s = {&b, ids, 60, lb, 1, NULL};
    lrsa_cached_forward_batch(&m, &s, 1);
    assert_memory_equal(la, lb, 60 * V * sizeof(float));
    lrsa_kv_cache_free(&a);
    lrsa_kv_cache_free(&b);
    free(la);
    free(lb);
    lrsa_model_free(&m);
}

/* The answer NLL: questions of different lengths on compressed caches, answers of different
 * lengths with holes in their masks. */
static void test_answer_nll(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 3, V, 1, 43);
    lrsa_err e = {{0}};
    lrsa_press_config pc =
        lrsa_press_config_lagkv((lrsa_lagkv_params){4, 8, 0.5f, 1.0f}, LRSA_PREFILL_CHUNKED);
    int32_t *ids[NSEQ];
    make_ids(ids);
    uint8_t *mask[NSEQ];
    lrsa_kv_cache cb[NSEQ], c1[NSEQ];
    lrsa_nll_seq q[NSEQ];
    float *lg = malloc(V * sizeof(float));
    double ref[NSEQ];
    int64_t ref_n[NSEQ];
    for (int b = 0; b < NSEQ; b++) {
        const int n = LEN[b] + 8;
        /* answer: the last 2 + b tokens, the second of them unscored when b is odd */
        const int first = n - 2 - b;
        mask[b] = calloc((size_t)n, 1);
        for (int t = first; t < n; t++) mask[b][t] = !(b % 2 && t == first + 1);
        const int64_t done = b == 1 ? first : (first + 1) / 2; /* b = 1: no question left */
        assert_int_equal(lrsa_kv_cache_for_model(&cb[b], &m, &pc, &e), 0);
        assert_int_equal(lrsa_kv_cache_for_model(&c1[b], &m, &pc, &e), 0);
        assert_int_equal(lrsa_prefill(&m, &c1[b], ids[b], done, pc.spec.prefill, lg, 0, &e), 0);
        assert_int_equal(lrsa_prefill(&m, &cb[b], ids[b], done, pc.spec.prefill, NULL, 0, &e), 0);
        q[b] = (lrsa_nll_seq){&cb[b], ids[b], mask[b], n, done, NULL, 0.0, 0};
        if (done == first) {
            q[b].logits_done = malloc(V * sizeof(float));
            memcpy((float *)q[b].logits_done, lg, V * sizeof(float));
        }
        assert_int_equal(lrsa_answer_nll_from(&m, &c1[b], ids[b], mask[b], n, done,
                                              q[b].logits_done, &ref[b], &ref_n[b], &e),
                         0);
    }
    if (lrsa_answer_nll_from_batch(&m, q, NSEQ, &e) != 0) fail_msg("%s", e.msg);
    for (int b = 0; b < NSEQ; b++) {
        assert_int_equal(q[b].n_tokens, ref_n[b]);
        assert_int_equal(q[b].n_tokens, 2 + b - (b % 2));
        if (!(fabs(q[b].nll_sum - ref[b]) <= 1e-5 * fabs(ref[b])))
            fail_msg("sample %d: NLL %.9g batched, %.9g alone", b, q[b].nll_sum, ref[b]);
        assert_int_equal(lrsa_kv_cache_kept_rows(&cb[b]), lrsa_kv_cache_kept_rows(&c1[b]));
        if (b > 0) assert_true(fabs(ref[b] / ref_n[b] - ref[b - 1] / ref_n[b - 1]) > 1e-3);
        lrsa_kv_cache_free(&cb[b]);
        lrsa_kv_cache_free(&c1[b]);
        free((float *)q[b].logits_done);
        free(mask[b]);
        free(ids[b]);
    }
    free(lg);
    lrsa_model_free(&m);
}

/* Greedy generation: different budgets, a stop id, a question left to feed or not. */
static void test_generate(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 3, V, 1, 44);
    lrsa_err e = {{0}};
    lrsa_press_config pc =
        lrsa_press_config_lagkv((lrsa_lagkv_params){4, 8, 0.5f, 1.0f}, LRSA_PREFILL_CHUNKED);
    int32_t *ids[NSEQ];
    make_ids(ids);
    lrsa_kv_cache cb[NSEQ], c1[NSEQ];
    lrsa_gen_seq q[NSEQ];
    lrsa_gen_result ref[NSEQ];
    float *lg[NSEQ];
    int stopped = 0;
    for (int b = 0; b < NSEQ; b++) {
        const int n = LEN[b] + 8;
        const int64_t done = b % 2 ? n : n / 2;
        lg[b] = malloc(V * sizeof(float));
        assert_int_equal(lrsa_kv_cache_for_model(&cb[b], &m, &pc, &e), 0);
        assert_int_equal(lrsa_kv_cache_for_model(&c1[b], &m, &pc, &e), 0);
        assert_int_equal(lrsa_prefill(&m, &cb[b], ids[b], done, pc.spec.prefill, lg[b], 0, &e), 0);
        assert_int_equal(lrsa_prefill(&m, &c1[b], ids[b], done, pc.spec.prefill, NULL, 0, &e), 0);
        lrsa_gen_options g = {.max_new = 6 + 5 * b, .top_p = 1.0f};
        q[b] = (lrsa_gen_seq){&cb[b], ids[b], n, done, lg[b], g, NULL, NULL, {0}};
    }
    /* a stop id: the fourth token sequence 2 generates alone */
    lrsa_kv_cache probe;
    lrsa_kv_cache_clone(&probe, &c1[2]);
    lrsa_gen_result pr;
    assert_int_equal(lrsa_generate_from(&m, &probe, ids[2], q[2].n, q[2].done, lg[2], &q[2].opt,
                                        NULL, NULL, &pr, &e),
                     0);
    assert_true(pr.n >= 4);
    const int32_t stop = pr.ids[3];
    free(pr.ids);
    lrsa_kv_cache_free(&probe);
    for (int b = 0; b < NSEQ; b++) {
        q[b].opt.stop_ids = &stop;
        q[b].opt.n_stop = 1;
        assert_int_equal(lrsa_generate_from(&m, &c1[b], ids[b], q[b].n, q[b].done, lg[b], &q[b].opt,
                                            NULL, NULL, &ref[b], &e),
                         0);
    }
    if (lrsa_generate_from_batch(&m, q, NSEQ, &e) != 0) fail_msg("%s", e.msg);
    for (int b = 0; b < NSEQ; b++) {
        assert_int_equal(q[b].res.n, ref[b].n);
        assert_int_equal(q[b].res.stopped, ref[b].stopped);
        assert_int_equal(q[b].res.decode_steps, ref[b].decode_steps);
        if (ref[b].n) assert_memory_equal(q[b].res.ids, ref[b].ids, ref[b].n * sizeof(int32_t));
        assert_int_equal(lrsa_kv_cache_kept_rows(&cb[b]), lrsa_kv_cache_kept_rows(&c1[b]));
        stopped += ref[b].stopped;
        free(q[b].res.ids);
        free(ref[b].ids);
        lrsa_kv_cache_free(&cb[b]);
        lrsa_kv_cache_free(&c1[b]);
        free(lg[b]);
        free(ids[b]);
    }
    assert_true(stopped >= 1); /* sequence 2 at least ran into its stop */
    lrsa_model_free(&m);
}

/* A press that scores with the prompt's queries (SnapKV), batched prefill and scoring. */
static void test_press_compress(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 3, V, 1, 45);
    lrsa_err e = {{0}};
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_SNAPKV);
    s.keep = 0.5;
    s.window = 4;
    int32_t *ids[NSEQ];
    make_ids(ids);
    lrsa_kv_cache cb[NSEQ], c1[NSEQ], *cp[NSEQ];
    float *lb[NSEQ], *l1 = malloc(V * sizeof(float));
    const int32_t *ip[NSEQ];
    int64_t n[NSEQ];
    const int H = m.cfg.num_hidden_layers * m.cfg.num_key_value_heads;
    double *kb = malloc((size_t)NSEQ * H * sizeof(double)), *k1 = malloc(H * sizeof(double));
    for (int b = 0; b < NSEQ; b++) {
        assert_int_equal(lrsa_press_cache_init(&cb[b], &m, &s, &e), 0);
        cp[b] = &cb[b];
        ip[b] = ids[b];
        n[b] = LEN[b] + 8;
        lb[b] = malloc(V * sizeof(float));
    }
    if (lrsa_press_compress_batch(&m, NSEQ, cp, &s, ip, n, lb, 0, kb, &e) != 0)
        fail_msg("%s", e.msg);
    for (int b = 0; b < NSEQ; b++) {
        assert_int_equal(lrsa_press_cache_init(&c1[b], &m, &s, &e), 0);
        assert_int_equal(lrsa_press_compress(&m, &c1[b], &s, ids[b], n[b], l1, 0, k1, &e), 0);
        rows_close(lb[b], l1, 1, "snapkv", b);
        for (int h = 0; h < H; h++) assert_true(kb[(int64_t)b * H + h] == k1[h]);
        assert_int_equal(lrsa_kv_cache_kept_rows(&cb[b]), lrsa_kv_cache_kept_rows(&c1[b]));
        /* the same rows survived: the next token's logits agree */
        const int32_t tok = ids[b][0];
        lrsa_cached_forward(&m, &cb[b], &tok, 1, lb[b], 0);
        lrsa_cached_forward(&m, &c1[b], &tok, 1, l1, 0);
        rows_close(lb[b], l1, 1, "snapkv after compression", b);
        lrsa_kv_cache_free(&cb[b]);
        lrsa_kv_cache_free(&c1[b]);
        free(lb[b]);
        free(ids[b]);
    }
    free(l1);
    free(kb);
    free(k1);
    lrsa_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefill_and_decode), cmocka_unit_test(test_batch_of_one_is_exact),
        cmocka_unit_test(test_answer_nll),         cmocka_unit_test(test_generate),
        cmocka_unit_test(test_press_compress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
