/* Generation and the answer NLL on a tiny random model, against the full-sequence forward:
 *  - greedy decoding from a full cache = argmax of lrsa_model_logits on the growing sequence,
 *    and the same under LagKV while no event triggers;
 *  - decode steps with incremental compression reproduce the LRSA-mode logits of the growing
 *    sequence (decode steps and prefill chunks give the same visibility);
 *  - the answer NLL with a full cache = the NLL from lrsa_model_logits on the whole sample (and
 *    under LagKV = the NLL from the one-pass LRSA forward);
 *  - sampling: seeded, reproducible, and top-p restricts the draw to the nucleus;
 *  - streaming: each token reaches the callback as soon as it is chosen, before the next
 *    decode step, and a non-zero return stops generation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/eval_dataset.h"
#include "eval/run/generate.h"
#include "test_util.h"
#include "tiny_model.h"

enum { V = 97 };

/* Reference greedy continuation: argmax of the last row of the full forward, re-run on the
 * growing sequence. */
static void reference_greedy(lrsa_model *m, const int32_t *prompt, int n, int steps,
                             const lrsa_attn_config *attn, int32_t *out) {
    int32_t *seq = malloc((size_t)(n + steps) * sizeof(int32_t));
    memcpy(seq, prompt, (size_t)n * sizeof(int32_t));
    float *logits = malloc((size_t)(n + steps) * V * sizeof(float));
    for (int s = 0; s < steps; s++) {
        tiny_full_logits(m, seq, n + s, attn, logits);
        out[s] = lrsa_argmax(logits + (int64_t)(n + s - 1) * V, V);
        seq[n + s] = out[s];
    }
    free(seq);
    free(logits);
}

static void check_greedy(lrsa_model *m, const lrsa_press_config *pc, const int32_t *prompt, int n,
                         int steps, const lrsa_attn_config *ref_attn, const char *label) {
    int32_t *want = malloc((size_t)steps * sizeof(int32_t));
    reference_greedy(m, prompt, n, steps, ref_attn, want);
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_for_model(&c, m, pc, &e), 0);
    lrsa_gen_options o = {.max_new = steps, .temperature = 0.0f, .top_p = 1.0f};
    lrsa_gen_result r;
    assert_int_equal(lrsa_generate(m, &c, prompt, n, pc->spec.prefill, &o, NULL, NULL, &r, &e), 0);
    assert_int_equal(r.n, steps);
    for (int s = 0; s < steps; s++)
        if (r.ids[s] != want[s])
            fail_msg("%s: step %d: got %d, want %d", label, s, r.ids[s], want[s]);
    free(r.ids);
    free(want);
    lrsa_kv_cache_free(&c);
}

static void test_greedy_matches_full_forward(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 2, V, 1, 21);
    int32_t prompt[25];
    tiny_random_ids(prompt, 25, V, 22);
    lrsa_attn_config dense = {.mode = LRSA_ATTN_DENSE};
    lrsa_press_config full = lrsa_press_config_full(LRSA_PREFILL_CHUNKED);
    check_greedy(&m, &full, prompt, 25, 12, &dense, "full cache");
    /* S + 2L = 16 + 64 = 80 > 25 + 12: no event, identical to the full cache. */
    lrsa_press_config lag =
        lrsa_press_config_lagkv((lrsa_lagkv_params){16, 32, 0.25f, 1.0f}, LRSA_PREFILL_CHUNKED);
    check_greedy(&m, &lag, prompt, 25, 12, &dense, "lagkv, no event");
    lag.spec.prefill = LRSA_PREFILL_ONESHOT;
    check_greedy(&m, &lag, prompt, 25, 12, &dense, "lagkv oneshot, no event");
    lrsa_model_free(&m);
}

/* Decode steps with events: logits of every step equal the last row of the one-pass LRSA
 * forward on the growing sequence (chunked prefill of the prompt). */
static void test_decode_with_events_matches_lrsa(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 2, V, 0, 23);
    const int n = 29, steps = 30; /* S + 2L = 22: events in prefill and while decoding */
    lrsa_press_config pc =
        lrsa_press_config_lagkv((lrsa_lagkv_params){2, 10, 0.3f, 1.0f}, LRSA_PREFILL_CHUNKED);
    lrsa_attn_config attn = {.mode = LRSA_ATTN_LRSA, .lagkv = pc.spec.lagkv};
    int32_t seq[29 + 30];
    tiny_random_ids(seq, n + steps, V, 24);
    float *full = malloc((size_t)(n + steps) * V * sizeof(float));
    float *got = malloc((size_t)V * sizeof(float));
    tiny_full_logits(&m, seq, n + steps, &attn, full);
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_for_model(&c, &m, &pc, &e), 0);
    assert_int_equal(lrsa_prefill(&m, &c, seq, n, pc.spec.prefill, got, 0, &e), 0);
    TU_ASSERT_CLOSE(got, full + (int64_t)(n - 1) * V, V, 1e-4, "prefill last row");
    int64_t events = 0;
    for (int s = 0; s < steps - 1; s++) {
        events += lrsa_cached_forward(&m, &c, &seq[n + s], 1, got, 0);
        TU_ASSERT_CLOSE(got, full + (int64_t)(n + s) * V, V, 1e-4, "decode step");
    }
    assert_true(events >= 2 * 2 * 2); /* at least two events per (layer, head) while decoding */
    free(full);
    free(got);
    lrsa_kv_cache_free(&c);
    lrsa_model_free(&m);
}

/* NLL of the masked tokens from full-sequence logits (target side: mask[t] scores token t from
 * row t-1). */
static double reference_nll(lrsa_model *m, const int32_t *ids, const uint8_t *mask, int n,
                            const lrsa_attn_config *attn, int64_t *count) {
    float *logits = malloc((size_t)n * V * sizeof(float));
    tiny_full_logits(m, ids, n, attn, logits);
    double s = 0.0;
    *count = 0;
    for (int t = 1; t < n; t++)
        if (mask[t]) {
            const float *row = logits + (int64_t)(t - 1) * V;
            double mx = row[0], z = 0.0;
            for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (int v = 0; v < V; v++) z += exp(row[v] - mx);
            s += log(z) + mx - row[ids[t]];
            ++*count;
        }
    free(logits);
    return s;
}

static void test_answer_nll(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 3, V, 1, 25);
    const int n = 71;
    int32_t ids[71];
    uint8_t mask[71] = {0};
    tiny_random_ids(ids, n, V, 26);
    for (int t = 60; t < n; t++) mask[t] = 1;
    lrsa_attn_config dense = {.mode = LRSA_ATTN_DENSE};
    int64_t want_n = 0, got_n = 0;
    double want = reference_nll(&m, ids, mask, n, &dense, &want_n), got = 0.0;
    lrsa_err e = {{0}};
    for (int mode = 0; mode < 2; mode++) {
        lrsa_press_config full = lrsa_press_config_full((lrsa_prefill_mode)mode);
        assert_int_equal(lrsa_answer_nll(&m, ids, mask, n, &full, &got, &got_n, &e), 0);
        assert_int_equal(got_n, 11);
        assert_int_equal(want_n, 11);
        assert_true(fabs(got - want) <= 1e-4 * fabs(want));
    }
    /* Under LagKV (chunked prefill, answer as decode steps) = the one-pass LRSA forward. */
    lrsa_press_config lag =
        lrsa_press_config_lagkv((lrsa_lagkv_params){4, 8, 0.25f, 1.0f}, LRSA_PREFILL_CHUNKED);
    lrsa_attn_config lattn = {.mode = LRSA_ATTN_LRSA, .lagkv = lag.spec.lagkv};
    double want_lag = reference_nll(&m, ids, mask, n, &lattn, &want_n);
    assert_int_equal(lrsa_answer_nll(&m, ids, mask, n, &lag, &got, &got_n, &e), 0);
    assert_true(fabs(got - want_lag) <= 1e-4 * fabs(want_lag));
    assert_true(fabs(want_lag - want) > 1e-4 * fabs(want)); /* compression mattered */
    /* Errors: no answer token; too short. */
    uint8_t none[71] = {0};
    assert_int_equal(lrsa_answer_nll(&m, ids, none, n, &lag, &got, &got_n, &e), -1);
    assert_non_null(strstr(e.msg, "no answer token"));
    assert_int_equal(lrsa_answer_nll(&m, ids, mask, 1, &lag, &got, &got_n, &e), -1);
    lrsa_model_free(&m);
}

static void test_sampling(void **state) {
    (void)state;
    float logits[8] = {0.0f, 3.0f, 2.9f, -1.0f, 0.5f, 2.95f, -3.0f, 1.0f};
    assert_int_equal(lrsa_argmax(logits, 8), 1);
    lrsa_rng a, b;
    lrsa_rng_seed(&a, 5);
    lrsa_rng_seed(&b, 5);
    int counts[8] = {0};
    for (int i = 0; i < 3000; i++) {
        int32_t x = lrsa_sample_token(logits, 8, 1.0f, 0.5f, &a);
        assert_int_equal(x, lrsa_sample_token(logits, 8, 1.0f, 0.5f, &b)); /* seeded */
        counts[x]++;
    }
    /* p ~ (id1 .318, id5 .303, id2 .288, ...): the smallest set reaching 0.5 is {1, 5}. */
    for (int i = 0; i < 8; i++)
        if (i != 1 && i != 5) assert_int_equal(counts[i], 0);
    assert_true(counts[1] > 1000 && counts[5] > 1000);
    /* top-p 1 can draw any token, even an unlikely one (p ~ 0.006). */
    int seen_low = 0;
    for (int i = 0; i < 5000; i++) seen_low |= lrsa_sample_token(logits, 8, 1.0f, 1.0f, &a) == 3;
    assert_true(seen_low);
    /* A tiny temperature is greedy in practice. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(lrsa_sample_token(logits, 8, 1e-3f, 1.0f, &a), 1);
}

static void test_stop_ids_and_matching(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 1, V, 0, 27);
    int32_t prompt[10];
    tiny_random_ids(prompt, 10, V, 28);
    lrsa_attn_config dense = {.mode = LRSA_ATTN_DENSE};
    int32_t want[6];
    reference_greedy(&m, prompt, 10, 6, &dense, want);
    /* Stop at the 4th greedy token (if it did not occur before). */
    int first = 3;
    for (int s = 0; s < 3; s++)
        if (want[s] == want[3]) first = s;
    lrsa_press_config pc = {0};
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_for_model(&c, &m, &pc, &e), 0);
    lrsa_gen_options o = {.max_new = 6, .stop_ids = &want[3], .n_stop = 1};
    lrsa_gen_result r;
    assert_int_equal(
        lrsa_generate(&m, &c, prompt, 10, LRSA_PREFILL_CHUNKED, &o, NULL, NULL, &r, &e), 0);
    assert_int_equal(r.stopped, 1);
    assert_int_equal(r.n, first);
    free(r.ids);
    lrsa_kv_cache_free(&c);
    lrsa_model_free(&m);
    assert_true(lrsa_answer_matches("The answer is  Paris.", "paris"));
    assert_true(lrsa_answer_matches("code: 12345\n", " 12345. "));
    assert_false(lrsa_answer_matches("London", "Paris"));
    assert_false(lrsa_answer_matches("anything", "  "));
}

/* What the callback saw: the token, and how many tokens the cache had been fed at that moment. */
typedef struct stream_log {
    const lrsa_kv_cache *c;
    int32_t ids[32];
    int64_t seen[32];
    int n, stop_after;
} stream_log;

static int log_token(void *user, int32_t id) {
    stream_log *l = user;
    l->ids[l->n] = id;
    l->seen[l->n] = l->c->seen;
    l->n++;
    return l->stop_after > 0 && l->n >= l->stop_after;
}

static void test_tokens_stream(void **state) {
    (void)state;
    lrsa_model m;
    tiny_model_create(&m, 2, V, 0, 31);
    int32_t prompt[30];
    tiny_random_ids(prompt, 30, V, 32);
    lrsa_press_config pc =
        lrsa_press_config_lagkv((lrsa_lagkv_params){2, 8, 0.5f, 1.0f}, LRSA_PREFILL_CHUNKED);
    for (int temp = 0; temp < 2; temp++) {
        lrsa_kv_cache c;
        lrsa_err e = {{0}};
        assert_int_equal(lrsa_kv_cache_for_model(&c, &m, &pc, &e), 0);
        lrsa_gen_options o = {
            .max_new = 12, .temperature = temp ? 0.9f : 0.0f, .top_p = 0.95f, .seed = 3};
        stream_log l = {.c = &c};
        lrsa_gen_result r;
        assert_int_equal(
            lrsa_generate(&m, &c, prompt, 30, pc.spec.prefill, &o, log_token, &l, &r, &e), 0);
        assert_int_equal(r.n, 12);
        assert_int_equal(l.n, 12);
        for (int i = 0; i < 12; i++) {
            assert_int_equal(l.ids[i], r.ids[i]); /* every token, in order */
            /* token i arrives after the prompt and i earlier tokens were fed, not at the end */
            assert_int_equal(l.seen[i], 30 + i);
        }
        free(r.ids);
        /* a callback that asks to stop after 4 tokens ends generation there */
        lrsa_kv_cache_reset(&c);
        stream_log l2 = {.c = &c, .stop_after = 4};
        assert_int_equal(
            lrsa_generate(&m, &c, prompt, 30, pc.spec.prefill, &o, log_token, &l2, &r, &e), 0);
        assert_int_equal(r.n, 4);
        assert_int_equal(l2.n, 4);
        assert_int_equal(c.seen, 30 + 3);
        free(r.ids);
        lrsa_kv_cache_free(&c);
    }
    lrsa_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_matches_full_forward),
        cmocka_unit_test(test_decode_with_events_matches_lrsa),
        cmocka_unit_test(test_answer_nll),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_stop_ids_and_matching),
        cmocka_unit_test(test_tokens_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
