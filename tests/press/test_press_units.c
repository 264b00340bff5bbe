/* Press pieces on hand-made inputs with known answers (kv-compression.md sections 0, 3):
 *  - 1-D pooling (SnapKV's avg with zero padding counted, and max) on a crafted row;
 *  - PyramidKV's budget formula: a linear case, the clamped case, the uniform fallback;
 *  - the uniform selector keeps the top n_keep and every protected row; head-adaptive (AdaKV)
 *    pools a layer's heads and its safeguard keeps each head's top alpha * n_keep;
 *  - compaction really moves the rows and shrinks the allocation; clone is deep; truncate cuts
 *    by position;
 *  - KNorm keeps the small-norm keys, StreamingLLM the sink and the most recent rows;
 *  - LAGKV_KVPRESS's one-shot selection equals lrsa_lagkv_select_cpu where the definitions
 *    coincide (budget = S + (n-1)k + L + leftover);
 *  - spec checks, names, labels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/press/press_internal.h"
#include "test_util.h"

enum { D = 4 };

/* A cache of `layers` x `heads` with T rows each, K/V random (seeded), positions 0..T-1. */
static void make_cache(lrsa_kv_cache *c, int layers, int heads, int T, uint64_t seed) {
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_kv_cache_init(c, layers, heads, D, NULL, &e), 0);
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    float *k = malloc(sizeof(float) * T * heads * D), *v = malloc(sizeof(float) * T * heads * D);
    int32_t *pos = malloc(sizeof(int32_t) * T);
    for (int t = 0; t < T; t++) pos[t] = t;
    for (int l = 0; l < layers; l++) {
        tu_fill_normal(k, (int64_t)T * heads * D, 1.0f, &r);
        tu_fill_normal(v, (int64_t)T * heads * D, 1.0f, &r);
        lrsa_kv_cache_append(c, l, k, v, (int64_t)heads * D, pos, T);
    }
    free(k);
    free(v);
    free(pos);
}

static lrsa_press_scores alloc_scores(const lrsa_kv_cache *c) {
    lrsa_press_scores s;
    lrsa_press_scores_alloc(&s, c);
    return s;
}

static void test_pool1d(void **state) {
    (void)state;
    const float x[7] = {0, 0, 5, 0, 0, 1, 2};
    float y[7];
    lrsa_press_pool1d(x, y, 7, 3, LRSA_POOL_AVG);
    /* avg over a window of 3 with zero padding, always divided by 3 */
    const float avg[7] = {0, 5.0f / 3, 5.0f / 3, 5.0f / 3, 1.0f / 3, 1, 1};
    for (int i = 0; i < 7; i++) assert_float_equal(y[i], avg[i], 1e-6);
    lrsa_press_pool1d(x, y, 7, 3, LRSA_POOL_MAX);
    const float mx[7] = {0, 5, 5, 5, 1, 2, 2};
    for (int i = 0; i < 7; i++) assert_float_equal(y[i], mx[i], 0);
    lrsa_press_pool1d(x, y, 7, 5, LRSA_POOL_AVG);
    assert_float_equal(y[0], 5.0f / 5, 1e-6); /* x[-2..2] = 0,0,0,0,5 */
    assert_float_equal(y[6], 3.0f / 5, 1e-6); /* x[4..8] = 0,1,2,0,0 */
    lrsa_press_pool1d(x, y, 7, 1, LRSA_POOL_AVG);
    for (int i = 0; i < 7; i++) assert_float_equal(y[i], x[i], 0);
}

static void test_pyramid_budgets(void **state) {
    (void)state;
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_PYRAMIDKV);
    int64_t b[5];
    /* T = 4096, keep 1/4 (n = 1024), w = 64, beta = 10: min = 102.4, max = 1945.6,
     * budget_l = round(1945.6 - l * 460.8) */
    s.keep = 0.25;
    s.pyramid_beta = 10;
    lrsa_pyramid_budgets(&s, 5, 4096, b);
    const int64_t want[5] = {1946, 1485, 1024, 563, 102};
    for (int l = 0; l < 5; l++) assert_int_equal(b[l], want[l]);
    /* beta = 20: min = 51.2 < w = 64, so every layer falls back to the uniform 1024 */
    s.pyramid_beta = 20;
    lrsa_pyramid_budgets(&s, 5, 4096, b);
    for (int l = 0; l < 5; l++) assert_int_equal(b[l], 1024);
    /* T = 1000, keep 0.75 (n = 750): max = 1462.5 >= T - w = 936, so max = 936 and
     * min = 1500 - 936 = 564; three layers: 936, 750, 564 */
    s.keep = 0.75;
    lrsa_pyramid_budgets(&s, 3, 1000, b);
    assert_int_equal(b[0], 936);
    assert_int_equal(b[1], 750);
    assert_int_equal(b[2], 564);
    /* a token budget: n = 512 of T = 4096, beta 4, w 64: min 128, max 896; two layers */
    s.keep = 0;
    s.tokens_per_layer = 512;
    s.pyramid_beta = 4;
    lrsa_pyramid_budgets(&s, 2, 4096, b);
    assert_int_equal(b[0], 896);
    assert_int_equal(b[1], 128);
}

static void test_uniform_keeps_top_and_protected(void **state) {
    (void)state;
    lrsa_kv_cache c;
    make_cache(&c, 1, 2, 10, 1);
    lrsa_kv_cache ref;
    lrsa_kv_cache_clone(&ref, &c);
    lrsa_press_scores sc = alloc_scores(&c);
    const float s0[10] = {5, 1, 9, 3, 3, 0, 7, 2, 8, 4};
    memcpy(sc.score[0], s0, sizeof(s0));
    for (int t = 0; t < 10; t++) sc.score[1][t] = (float)t;      /* increasing */
    sc.score[1][0] = sc.score[1][1] = sc.score[1][2] = INFINITY; /* three protected */
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_KNORM);
    s.keep = 0.2; /* n_keep = 2 */
    double kf[2];
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_press_apply(NULL, &c, &s, &sc, kf, &e), 0);
    lrsa_kv_head *h0 = lrsa_kv_cache_head(&c, 0, 0), *h1 = lrsa_kv_cache_head(&c, 0, 1);
    assert_int_equal(h0->len, 2); /* scores 9 (row 2) and 8 (row 8), in row order */
    assert_int_equal(h0->pos[0], 2);
    assert_int_equal(h0->pos[1], 8);
    assert_memory_equal(h0->k + D, lrsa_kv_cache_head(&ref, 0, 0)->k + 8 * D, D * sizeof(float));
    assert_memory_equal(h0->v, lrsa_kv_cache_head(&ref, 0, 0)->v + 2 * D, D * sizeof(float));
    assert_int_equal(h1->len, 3); /* the protected rows exceed the budget: all kept */
    for (int i = 0; i < 3; i++) assert_int_equal(h1->pos[i], i);
    assert_float_equal(kf[0], 0.2, 1e-12);
    assert_float_equal(kf[1], 0.3, 1e-12);
    /* ties go to the lower row: scores 3 at rows 3 and 4, n_keep 6 of head 0 */
    lrsa_press_scores_free(&sc);
    lrsa_kv_cache_free(&c);
    lrsa_kv_cache_clone(&c, &ref);
    sc = alloc_scores(&c);
    memcpy(sc.score[0], s0, sizeof(s0));
    memcpy(sc.score[1], s0, sizeof(s0));
    s.keep = 0.6;
    assert_int_equal(lrsa_press_apply(NULL, &c, &s, &sc, NULL, &e), 0);
    const int want[6] = {0, 2, 3, 6, 8, 9}; /* 9, 8, 7, 5, 4, then 3 at row 3 (not 4) */
    for (int i = 0; i < 6; i++) assert_int_equal(lrsa_kv_cache_head(&c, 0, 0)->pos[i], want[i]);
    lrsa_press_scores_free(&sc);
    lrsa_kv_cache_free(&c);
    lrsa_kv_cache_free(&ref);
}

static void test_head_adaptive_safeguard(void **state) {
    (void)state;
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_SNAPKV);
    s.selector = LRSA_SELECT_HEAD_ADAPTIVE;
    s.keep = 0.5; /* n_keep 5 per head, 10 for the layer */
    const float alphas[3] = {0.4f, 0.0f, 1.0f};
    const int64_t want0[3] = {8, 10, 5}, want1[3] = {2, 0, 5};
    for (int a = 0; a < 3; a++) {
        lrsa_kv_cache c;
        make_cache(&c, 1, 2, 10, 2);
        lrsa_press_scores sc = alloc_scores(&c);
        for (int t = 0; t < 10; t++) {
            sc.score[0][t] = 10.0f + (float)((t * 7) % 10); /* head 0 beats head 1 everywhere */
            sc.score[1][t] = 0.1f * (float)((t * 3) % 10);
        }
        s.alpha = alphas[a];
        lrsa_err e = {{0}};
        assert_int_equal(lrsa_press_apply(NULL, &c, &s, &sc, NULL, &e), 0);
        lrsa_kv_head *h0 = lrsa_kv_cache_head(&c, 0, 0), *h1 = lrsa_kv_cache_head(&c, 0, 1);
        assert_int_equal(h0->len, want0[a]);
        assert_int_equal(h1->len, want1[a]);
        /* head 1's safeguard rows are its best: (t*3)%10 largest at t = 3 (9) and t = 6 (8) */
        if (a == 0) {
            assert_int_equal(h1->pos[0], 3);
            assert_int_equal(h1->pos[1], 6);
        }
        /* head 0 keeps its best rows: every kept score >= every dropped score */
        float min_kept = INFINITY;
        for (int64_t i = 0; i < h0->len; i++)
            min_kept = fminf(min_kept, 10.0f + (float)((h0->pos[i] * 7) % 10));
        for (int t = 0, j = 0; t < 10; t++) {
            if (j < h0->len && h0->pos[j] == t) {
                j++;
                continue;
            }
            assert_true(10.0f + (float)((t * 7) % 10) <= min_kept);
        }
        lrsa_press_scores_free(&sc);
        lrsa_kv_cache_free(&c);
    }
}

static void test_keep_rows_clone_truncate(void **state) {
    (void)state;
    lrsa_kv_cache c;
    make_cache(&c, 2, 1, 100, 3);
    lrsa_kv_cache ref;
    lrsa_kv_cache_clone(&ref, &c);
    const size_t row_bytes = 2 * D * sizeof(float) + sizeof(int32_t);
    assert_int_equal(lrsa_kv_cache_alloc_bytes(&ref), 2 * 100 * row_bytes); /* exact clone */
    assert_true(lrsa_kv_cache_alloc_bytes(&c) >= 2 * 100 * row_bytes);
    for (int l = 0; l < 2; l++)
        assert_memory_equal(lrsa_kv_cache_head(&ref, l, 0)->k, lrsa_kv_cache_head(&c, l, 0)->k,
                            100 * D * sizeof(float));
    int64_t idx[10];
    for (int i = 0; i < 10; i++) idx[i] = 3 + 9 * i;
    lrsa_kv_cache_keep_rows(&c, 0, 0, idx, 10);
    lrsa_kv_cache_keep_rows(&c, 1, 0, idx, 10);
    assert_int_equal(lrsa_kv_cache_alloc_bytes(&c), 2 * 10 * row_bytes); /* memory given back */
    assert_int_equal(lrsa_kv_cache_live_bytes(&c), 2 * 10 * 2 * D * sizeof(float));
    for (int i = 0; i < 10; i++) {
        assert_int_equal(lrsa_kv_cache_head(&c, 1, 0)->pos[i], idx[i]);
        assert_memory_equal(lrsa_kv_cache_head(&c, 1, 0)->k + i * D,
                            lrsa_kv_cache_head(&ref, 1, 0)->k + idx[i] * D, D * sizeof(float));
        assert_memory_equal(lrsa_kv_cache_head(&c, 1, 0)->v + i * D,
                            lrsa_kv_cache_head(&ref, 1, 0)->v + idx[i] * D, D * sizeof(float));
    }
    /* the clone did not move */
    assert_int_equal(lrsa_kv_cache_head(&ref, 0, 0)->len, 100);
    assert_int_equal(lrsa_kv_cache_head(&ref, 0, 0)->pos[5], 5);
    /* truncate by position: rows at positions >= 40 go (3, 12, 21, 30, 39 stay) */
    lrsa_kv_cache_truncate(&c, 40);
    assert_int_equal(c.seen, 40);
    assert_int_equal(lrsa_kv_cache_head(&c, 0, 0)->len, 5);
    assert_int_equal(lrsa_kv_cache_head(&c, 1, 0)->pos[4], 39);
    lrsa_kv_cache_truncate(&ref, 0);
    assert_int_equal(lrsa_kv_cache_kept_rows(&ref), 0);
    lrsa_kv_cache_free(&c);
    lrsa_kv_cache_free(&ref);
}

static void test_knorm_and_streaming(void **state) {
    (void)state;
    lrsa_err e = {{0}};
    for (int method = 0; method < 2; method++) {
        lrsa_kv_cache c;
        make_cache(&c, 2, 2, 30, 4);
        lrsa_kv_cache ref;
        lrsa_kv_cache_clone(&ref, &c);
        lrsa_press_spec s;
        lrsa_press_spec_defaults(&s, method ? LRSA_PRESS_STREAMING : LRSA_PRESS_KNORM);
        s.keep = 0.3; /* 9 of 30 */
        lrsa_press_scores sc = alloc_scores(&c);
        assert_int_equal(lrsa_press_score_builtin(&s, NULL, &c, &sc), 0);
        for (int64_t i = 0; i < 4; i++) /* the press core adds the sink; here by hand */
            for (int t = 0; t < s.sink; t++) sc.score[i][t] = INFINITY;
        assert_int_equal(lrsa_press_apply(NULL, &c, &s, &sc, NULL, &e), 0);
        for (int64_t i = 0; i < 4; i++) {
            const lrsa_kv_head *h = &c.heads[i], *r = &ref.heads[i];
            assert_int_equal(h->len, 9);
            if (method) { /* sink 4 + the 5 most recent */
                const int want[9] = {0, 1, 2, 3, 25, 26, 27, 28, 29};
                for (int j = 0; j < 9; j++) assert_int_equal(h->pos[j], want[j]);
                continue;
            }
            double max_kept = 0.0;
            uint8_t kept[30] = {0};
            for (int j = 0; j < 9; j++) {
                double n = 0;
                for (int d = 0; d < D; d++) n += h->k[j * D + d] * h->k[j * D + d];
                max_kept = fmax(max_kept, sqrt(n));
                kept[h->pos[j]] = 1;
            }
            for (int t = 0; t < 30; t++) {
                if (kept[t]) continue;
                double n = 0;
                for (int d = 0; d < D; d++) n += r->k[t * D + d] * r->k[t * D + d];
                assert_true(sqrt(n) >= max_kept); /* every dropped key is at least as long */
            }
        }
        lrsa_press_scores_free(&sc);
        lrsa_kv_cache_free(&c);
        lrsa_kv_cache_free(&ref);
    }
}

static void test_lagkv_kvpress_equals_select_cpu(void **state) {
    (void)state;
    struct {
        int S, L, T;
        float r, w;
    } cases[] = {{4, 16, 100, 0.25f, 1.0f}, {0, 8, 77, 0.5f, 0.5f}, {3, 10, 64, 0.3f, 1.0f}};
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        const int H = 2, T = cases[ci].T;
        lrsa_lagkv_params p = {cases[ci].S, cases[ci].L, cases[ci].r, cases[ci].w};
        lrsa_kv_cache c;
        make_cache(&c, 1, H, T, 10 + ci);
        /* the same K/V token-major for the kernel */
        float *k = malloc(sizeof(float) * T * H * D), *v = malloc(sizeof(float) * T * H * D);
        for (int g = 0; g < H; g++)
            for (int t = 0; t < T; t++) {
                memcpy(k + ((int64_t)t * H + g) * D, c.heads[g].k + t * D, D * sizeof(float));
                memcpy(v + ((int64_t)t * H + g) * D, c.heads[g].v + t * D, D * sizeof(float));
            }
        const int ns = lrsa_lagkv_num_scored(T, &p), kk = lrsa_lagkv_k(&p);
        int32_t *sel = malloc(sizeof(int32_t) * (H * ns * kk + 1));
        lrsa_lagkv_select_cpu(sel, NULL, k, v, 1, T, H, D, (int64_t)H * D, &p);
        /* the budget where the definitions coincide: S + (n-1)k + L + leftover */
        const int64_t n_keep = lrsa_lagkv_oneshot_len(T, &p);
        lrsa_press_spec s;
        lrsa_press_spec_defaults(&s, LRSA_PRESS_LAGKV_KVPRESS);
        s.lagkv = p;
        s.keep = 0;
        s.tokens_per_layer = n_keep;
        lrsa_press_scores sc = alloc_scores(&c);
        assert_int_equal(lrsa_press_score_builtin(&s, NULL, &c, &sc), 0);
        for (int g = 0; g < H; g++)
            for (int t = 0; t < p.sink; t++) sc.score[g][t] = INFINITY;
        lrsa_err e = {{0}};
        assert_int_equal(lrsa_press_apply(NULL, &c, &s, &sc, NULL, &e), 0);
        const int64_t tail = p.sink + (int64_t)ns * p.lag; /* first row of the kept tail */
        for (int g = 0; g < H; g++) {
            int32_t want[256];
            int nw = 0;
            for (int t = 0; t < p.sink; t++) want[nw++] = t;
            for (int j = 0; j < ns * kk; j++) want[nw++] = sel[g * ns * kk + j];
            for (int64_t t = tail; t < T; t++) want[nw++] = (int32_t)t;
            assert_int_equal(c.heads[g].len, nw);
            assert_int_equal(nw, n_keep);
            for (int j = 0; j < nw; j++) assert_int_equal(c.heads[g].pos[j], want[j]);
        }
        lrsa_press_scores_free(&sc);
        lrsa_kv_cache_free(&c);
        free(k);
        free(v);
        free(sel);
    }
}

static void test_spec_check_and_names(void **state) {
    (void)state;
    lrsa_err e = {{0}};
    for (int m = 0; m < LRSA_PRESS_COUNT; m++) {
        lrsa_press_method back;
        assert_int_equal(lrsa_press_method_parse(lrsa_press_method_name(m), &back, &e), 0);
        assert_int_equal(back, m);
        lrsa_press_spec s;
        lrsa_press_spec_defaults(&s, (lrsa_press_method)m);
        if (m == LRSA_PRESS_COMPRESSKV) s.compresskv_file = "x.json";
        if (lrsa_press_spec_check(&s, &e) != 0)
            fail_msg("%s defaults: %s", lrsa_press_method_name(m), e.msg);
    }
    assert_int_equal(lrsa_press_method_parse("snap", &(lrsa_press_method){0}, &e), -1);
    assert_non_null(strstr(e.msg, "snapkv"));
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_SNAPKV);
    s.keep = 1.5;
    assert_int_equal(lrsa_press_spec_check(&s, &e), -1);
    assert_non_null(strstr(e.msg, "--keep"));
    s.keep = 0.5;
    s.tokens_per_layer = 10;
    assert_int_equal(lrsa_press_spec_check(&s, &e), -1);
    assert_non_null(strstr(e.msg, "exactly one budget"));
    s.tokens_per_layer = 0;
    s.kernel = 4;
    assert_int_equal(lrsa_press_spec_check(&s, &e), -1);
    assert_non_null(strstr(e.msg, "--kernel"));
    s.kernel = 5;
    s.selector = LRSA_SELECT_LAYER_BUDGET;
    assert_int_equal(lrsa_press_spec_check(&s, &e), -1);
    assert_non_null(strstr(e.msg, "--selector"));
    s.selector = LRSA_SELECT_UNIFORM;
    s.window = 0;
    assert_int_equal(lrsa_press_spec_check(&s, &e), -1);
    assert_non_null(strstr(e.msg, "--window"));
    lrsa_press_spec_defaults(&s, LRSA_PRESS_PYRAMIDKV);
    s.selector = LRSA_SELECT_UNIFORM;
    assert_int_equal(lrsa_press_spec_check(&s, &e), -1);
    assert_non_null(strstr(e.msg, "per layer"));
    lrsa_press_spec_defaults(&s, LRSA_PRESS_COMPRESSKV);
    assert_int_equal(lrsa_press_spec_check(&s, &e), -1);
    assert_non_null(strstr(e.msg, "--compresskv-file"));
    lrsa_press_spec_defaults(&s, LRSA_PRESS_LAGKV);
    s.lagkv.lag = 0;
    assert_int_equal(lrsa_press_spec_check(&s, &e), -1);
    char buf[256];
    lrsa_press_spec_defaults(&s, LRSA_PRESS_SNAPKV);
    s.keep = 0.25;
    assert_string_equal(lrsa_press_describe_spec(&s, buf, sizeof(buf)),
                        "snapkv(keep=0.25,window=64,kernel=5,pool=avg,sink=0,uniform)");
    lrsa_press_protocol p;
    assert_int_equal(lrsa_press_protocol_parse("agnostic", &p, &e), 0);
    assert_int_equal(p, LRSA_PROTOCOL_AGNOSTIC);
    assert_int_equal(lrsa_press_protocol_parse("both", &p, &e), -1);
    /* budget conversion */
    lrsa_press_spec_defaults(&s, LRSA_PRESS_KNORM);
    s.keep = 0.25;
    assert_int_equal(lrsa_press_n_keep(&s, 1000), 250);
    assert_int_equal(lrsa_press_n_keep(&s, 3), 1); /* never empty */
    s.keep = 0;
    s.tokens_per_layer = 128;
    assert_int_equal(lrsa_press_n_keep(&s, 1000), 128);
    assert_int_equal(lrsa_press_n_keep(&s, 100), 100);
    lrsa_press_set_keep(&s, 0.125);
    assert_int_equal(lrsa_press_n_keep(&s, 1000), 125);
    lrsa_press_spec_defaults(&s, LRSA_PRESS_LAGKV);
    lrsa_press_set_keep(&s, 0.25);
    assert_float_equal(s.lagkv.keep, 0.25f, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool1d),
        cmocka_unit_test(test_pyramid_budgets),
        cmocka_unit_test(test_uniform_keeps_top_and_protected),
        cmocka_unit_test(test_head_adaptive_safeguard),
        cmocka_unit_test(test_keep_rows_clone_truncate),
        cmocka_unit_test(test_knorm_and_streaming),
        cmocka_unit_test(test_lagkv_kvpress_equals_select_cpu),
        cmocka_unit_test(test_spec_check_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
