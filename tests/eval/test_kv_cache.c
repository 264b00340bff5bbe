/* The compressed KV cache on its own (no model): section 4 sizes, the trigger, the layout of
 * kept positions, and memory that follows the kept tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/cache/kv_cache.h"
#include "test_util.h"

enum { LAYERS = 2, HKV = 2, D = 8 };

/* Appends n tokens at the cache's next positions to every layer, with random K/V (one row per
 * token: [HKV*D] keys then [HKV*D] values). */
static void append_random(lrsa_kv_cache *c, int64_t n, lrsa_rng *r) {
    const int64_t stride = 2 * HKV * D;
    float *rows = malloc((size_t)(n * stride) * sizeof(float));
    int32_t *pos = malloc((size_t)n * sizeof(int32_t));
    int64_t p0 = c->seen;
    for (int64_t i = 0; i < n; i++) pos[i] = (int32_t)(p0 + i);
    for (int l = 0; l < LAYERS; l++) {
        tu_fill_normal(rows, n * stride, 1.0f, r);
        lrsa_kv_cache_append(c, l, rows, rows + HKV * D, stride, pos, n);
    }
    free(rows);
    free(pos);
}

static void assert_all_len(lrsa_kv_cache *c, int64_t len) {
    for (int l = 0; l < LAYERS; l++)
        for (int g = 0; g < HKV; g++) assert_int_equal(lrsa_kv_cache_head(c, l, g)->len, len);
}

/* Kept positions are ascending, start with the sink and end with the uncompressed tail. */
static void assert_layout(lrsa_kv_cache *c, int S, int64_t tail_from) {
    for (int l = 0; l < LAYERS; l++)
        for (int g = 0; g < HKV; g++) {
            lrsa_kv_head *h = lrsa_kv_cache_head(c, l, g);
            for (int t = 0; t < S && t < h->len; t++) assert_int_equal(h->pos[t], t);
            for (int64_t t = 1; t < h->len; t++) assert_true(h->pos[t] > h->pos[t - 1]);
            int64_t tail = c->seen - tail_from;
            for (int64_t t = 0; t < tail; t++)
                assert_int_equal(h->pos[h->len - tail + t], tail_from + t);
        }
}

/* The worked example of section 4: 1000 -> 616 one-shot, then 40 decode steps 656 -> 592. */
static void test_worked_example(void **state) {
    (void)state;
    lrsa_lagkv_params p = {.sink = 16, .lag = 128, .keep = 0.5f, .value_weight = 1.0f};
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_init(&c, LAYERS, HKV, D, &p, &e), 0);
    lrsa_rng r;
    lrsa_rng_seed(&r, 1);
    append_random(&c, 1000, &r);
    assert_int_equal(lrsa_kv_cache_compress(&c), LAYERS * HKV);
    assert_all_len(&c, 616);
    assert_int_equal(lrsa_kv_cache_head(&c, 0, 0)->base, 16 + 6 * 64);
    assert_layout(&c, 16, 16 + 6 * 128);
    /* Each kept partition keeps exactly k = 64 tokens of its own range. */
    for (int j = 0; j < 6; j++) {
        int cnt = 0;
        lrsa_kv_head *h = lrsa_kv_cache_head(&c, 1, 1);
        for (int64_t t = 0; t < h->len; t++)
            cnt += h->pos[t] >= 16 + j * 128 && h->pos[t] < 16 + (j + 1) * 128;
        assert_int_equal(cnt, 64);
    }
    for (int step = 1; step <= 40; step++) {
        append_random(&c, 1, &r);
        int events = lrsa_kv_cache_compress(&c);
        if (step < 40) {
            assert_int_equal(events, 0); /* T < base + 2L */
            assert_int_equal(lrsa_kv_cache_head(&c, 0, 1)->len, 616 + step);
        } else {
            assert_int_equal(events, LAYERS * HKV);
        }
    }
    assert_all_len(&c, 592);
    assert_int_equal(lrsa_kv_cache_head(&c, 1, 0)->base, 400 + 64);
    assert_int_equal(c.seen, 1040);
    assert_layout(&c, 16, 1040 - 128);
    lrsa_kv_cache_free(&c);
}

/* A cache never compresses below S + 2L, and the general one-event size formula holds. */
static void test_size_formula(void **state) {
    (void)state;
    const lrsa_lagkv_params ps[] = {{16, 128, 0.5f, 1.0f},
                                    {4, 32, 0.25f, 1.0f},
                                    {0, 10, 0.29f, 0.5f},
                                    {7, 16, 1.0f, 1.0f},
                                    {3, 8, 0.125f, 2.0f}};
    const int64_t T0s[] = {1, 5, 40, 63, 64, 65, 100, 271, 272, 273, 500, 1000, 1234};
    lrsa_rng r;
    lrsa_rng_seed(&r, 2);
    for (size_t pi = 0; pi < sizeof(ps) / sizeof(ps[0]); pi++) {
        const lrsa_lagkv_params *p = &ps[pi];
        const int64_t S = p->sink, L = p->lag, k = (int64_t)((double)p->keep * L);
        for (size_t ti = 0; ti < sizeof(T0s) / sizeof(T0s[0]); ti++) {
            const int64_t T0 = T0s[ti];
            lrsa_kv_cache c;
            lrsa_err e = {{0}};
            assert_int_equal(lrsa_kv_cache_init(&c, LAYERS, HKV, D, p, &e), 0);
            append_random(&c, T0, &r);
            int events = lrsa_kv_cache_compress(&c);
            int64_t expect = T0;
            if (T0 >= S + 2 * L) expect = S + k * ((T0 - S) / L - 1) + L + (T0 - S) % L;
            assert_int_equal(events, T0 >= S + 2 * L ? LAYERS * HKV : 0);
            assert_all_len(&c, expect);
            assert_int_equal(lrsa_lagkv_oneshot_len(T0, p), expect);
            /* A second event needs another L tokens: nothing happens now. */
            assert_int_equal(lrsa_kv_cache_compress(&c), 0);
            lrsa_kv_cache_free(&c);
        }
    }
}

/* Live bytes are kept tokens x bytes per token; the allocation shrinks after a big event. */
static void test_memory_follows_kept_tokens(void **state) {
    (void)state;
    lrsa_lagkv_params p = {.sink = 16, .lag = 128, .keep = 0.25f, .value_weight = 1.0f};
    lrsa_kv_cache c, full;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_init(&c, LAYERS, HKV, D, &p, &e), 0);
    assert_int_equal(lrsa_kv_cache_init(&full, LAYERS, HKV, D, NULL, &e), 0);
    lrsa_rng r;
    lrsa_rng_seed(&r, 3);
    append_random(&c, 4096, &r);
    lrsa_rng_seed(&r, 3);
    append_random(&full, 4096, &r);
    const size_t per_token = (size_t)LAYERS * HKV * 2 * D * sizeof(float);
    assert_int_equal(lrsa_kv_cache_bytes_per_token(&c), per_token);
    size_t alloc_before = lrsa_kv_cache_alloc_bytes(&c);
    assert_int_equal(lrsa_kv_cache_live_bytes(&c), 4096 * per_token);
    lrsa_kv_cache_compress(&c);
    assert_int_equal(lrsa_kv_cache_compress(&full), 0); /* a full cache never compresses */
    const int64_t kept = 16 + 32 * 30 + 128 + (4096 - 16) % 128;
    assert_all_len(&c, kept);
    assert_int_equal(lrsa_kv_cache_live_bytes(&c), (size_t)kept * per_token);
    assert_int_equal(lrsa_kv_cache_kept_rows(&c), kept * LAYERS * HKV);
    assert_int_equal(lrsa_kv_cache_live_bytes(&full), 4096 * per_token);
    size_t alloc_after = lrsa_kv_cache_alloc_bytes(&c);
    assert_true(alloc_after < alloc_before / 2);
    /* At most the kept rows plus 2L of headroom per head are allocated. */
    assert_true(alloc_after <= (size_t)(kept + 2 * 128) * LAYERS * HKV *
                                   (2 * D * sizeof(float) + sizeof(int32_t)));
    /* Steady-state decoding stays bounded: 2000 more tokens, one event every L steps. */
    for (int i = 0; i < 2000; i++) {
        append_random(&c, 1, &r);
        lrsa_kv_cache_compress(&c);
        lrsa_kv_head *h = lrsa_kv_cache_head(&c, 0, 0);
        assert_true(h->len < h->base + 2 * 128);
    }
    /* Growth is by doubling, so the allocation stays within 2x of what is kept plus headroom. */
    assert_true(lrsa_kv_cache_alloc_bytes(&c) <= 2 * (size_t)(lrsa_kv_cache_max_len(&c) + 2 * 128) *
                                                     LAYERS * HKV *
                                                     (2 * D * sizeof(float) + sizeof(int32_t)));
    lrsa_kv_cache_free(&c);
    lrsa_kv_cache_free(&full);
}

/* Compaction keeps each kept token's K/V row intact (rows move, they are not recomputed). */
static void test_rows_follow_positions(void **state) {
    (void)state;
    lrsa_lagkv_params p = {.sink = 5, .lag = 12, .keep = 0.5f, .value_weight = 1.0f};
    const int64_t T = 200, stride = 2 * HKV * D;
    float *rows[LAYERS];
    lrsa_rng r;
    lrsa_rng_seed(&r, 4);
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_init(&c, LAYERS, HKV, D, &p, &e), 0);
    int32_t *pos = malloc(T * sizeof(int32_t));
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    for (int l = 0; l < LAYERS; l++) {
        rows[l] = malloc((size_t)(T * stride) * sizeof(float));
        tu_fill_normal(rows[l], T * stride, 1.0f, &r);
    }
    /* Feed in uneven chunks with events in between: rows must still match their positions. */
    int64_t done = 0;
    const int64_t chunks[] = {30, 1, 17, 40, 2, 60, 50};
    for (size_t ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
        for (int l = 0; l < LAYERS; l++)
            lrsa_kv_cache_append(&c, l, rows[l] + done * stride, rows[l] + done * stride + HKV * D,
                                 stride, pos + done, chunks[ci]);
        done += chunks[ci];
        lrsa_kv_cache_compress(&c);
    }
    assert_int_equal(done, T);
    for (int l = 0; l < LAYERS; l++)
        for (int g = 0; g < HKV; g++) {
            lrsa_kv_head *h = lrsa_kv_cache_head(&c, l, g);
            assert_true(h->events > 0);
            assert_true(h->len < T);
            for (int64_t t = 0; t < h->len; t++) {
                const float *src = rows[l] + (int64_t)h->pos[t] * stride;
                assert_memory_equal(h->k + t * D, src + g * D, D * sizeof(float));
                assert_memory_equal(h->v + t * D, src + HKV * D + g * D, D * sizeof(float));
            }
        }
    for (int l = 0; l < LAYERS; l++) free(rows[l]);
    free(pos);
    lrsa_kv_cache_free(&c);
}

static void test_bad_params(void **state) {
    (void)state;
    lrsa_lagkv_params p = {.sink = 4, .lag = 0, .keep = 0.5f, .value_weight = 1.0f};
    lrsa_kv_cache c;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_init(&c, 1, 1, 8, &p, &e), -1);
    assert_non_null(strstr(e.msg, "KV cache"));
    p.lag = 8;
    p.keep = 1.5f;
    assert_int_equal(lrsa_kv_cache_init(&c, 1, 1, 8, &p, &e), -1);
    assert_int_equal(lrsa_kv_cache_init(&c, 0, 1, 8, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "layers"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_size_formula),
        cmocka_unit_test(test_memory_follows_kept_tokens),
        cmocka_unit_test(test_rows_follow_positions),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
