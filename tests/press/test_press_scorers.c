/* The attention-based scorers against a brute-force reference on a tiny random model (3 layers,
 * 6 query heads on 2 KV heads, head_dim 16): the test runs its own dense forward with the
 * model's block API and keeps every layer's full [Hq, T, T] attention matrix (fine at T = 40),
 * then computes each method's score from it the way kv-compression.md section 3 states:
 *  - H2O: sum over queries i >= j of A[h, i, j], mean over the group, / (T - j); also when the
 *    prompt arrives in several forwards (the observer accumulates across them);
 *  - SnapKV: sum of the last w rows of A over the context columns, pooled (avg and max), mean
 *    over the group; the window protected; also with the window queries collected over chunks;
 *  - TOVA: the last row of A averaged over all heads; the kept rows are its top rows;
 *  - PyramidKV: the layers keep the formula's budgets, each its top SnapKV rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/prefill.h"
#include "eval/press/press_internal.h"
#include "test_util.h"
#include "tiny_model.h"

enum { V = 61, LAYERS = 3, T = 40, HQ = 6, HKV = 2, G = 3, DH = 16 };

/* Dense forward of ids[0..T) keeping A[l][(h*T + i)*T + j] (0 above the diagonal). */
static void reference_attention(const lrsa_model *m, const int32_t *ids, double **A) {
    const int C = m->cfg.hidden_size, row = (HQ + 2 * HKV) * DH;
    float *x = malloc(sizeof(float) * T * C), *qkv = malloc(sizeof(float) * T * row);
    float *att = malloc(sizeof(float) * T * HQ * DH);
    int32_t pos[T];
    for (int i = 0; i < T; i++) pos[i] = i;
    lrsa_model_embed(m, ids, T, x);
    for (int l = 0; l < LAYERS; l++) {
        lrsa_model_layer_qkv(m, l, x, pos, T, qkv);
        for (int h = 0; h < HQ; h++) {
            const int g = h / G;
            for (int i = 0; i < T; i++) {
                double *a = A[l] + ((int64_t)h * T + i) * T, mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < T; j++) a[j] = 0.0;
                for (int j = 0; j <= i; j++) {
                    double d = 0.0;
                    for (int c = 0; c < DH; c++)
                        d += (double)qkv[i * row + h * DH + c] * qkv[j * row + (HQ + g) * DH + c];
                    a[j] = d / sqrt((double)DH);
                    mx = fmax(mx, a[j]);
                }
                for (int j = 0; j <= i; j++) sum += (a[j] = exp(a[j] - mx));
                for (int j = 0; j <= i; j++) a[j] /= sum;
                for (int c = 0; c < DH; c++) {
                    double o = 0.0;
                    for (int j = 0; j <= i; j++) o += a[j] * qkv[j * row + (HQ + HKV + g) * DH + c];
                    att[(i * HQ + h) * DH + c] = (float)o;
                }
            }
        }
        lrsa_model_layer_out(m, l, x, att, T);
    }
    free(x);
    free(qkv);
    free(att);
}

typedef struct fixture {
    lrsa_model m;
    int32_t ids[T];
    double *A[LAYERS];
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(fixture));
    tiny_model_create(&f->m, LAYERS, V, 1, 77);
    tiny_random_ids(f->ids, T, V, 78);
    for (int l = 0; l < LAYERS; l++) f->A[l] = malloc(sizeof(double) * HQ * T * T);
    reference_attention(&f->m, f->ids, f->A);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    for (int l = 0; l < LAYERS; l++) free(f->A[l]);
    lrsa_model_free(&f->m);
    free(f);
    return 0;
}

static void score(fixture *f, const lrsa_press_spec *s, lrsa_kv_cache *c, lrsa_press_scores *sc) {
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_press_cache_init(c, &f->m, s, &e), 0);
    if (lrsa_press_prefill_and_score(&f->m, c, s, f->ids, T, NULL, 0, sc, &e) != 0)
        fail_msg("%s", e.msg);
}

static void assert_row_close(const float *got, const double *want, int n, const char *what) {
    float w[T];
    for (int j = 0; j < n; j++) w[j] = (float)want[j];
    TU_ASSERT_CLOSE(got, w, n, 1e-4, what);
}

static void h2o_reference(const fixture *f, int l, int g, double *want) {
    for (int j = 0; j < T; j++) {
        double s = 0.0;
        for (int hg = 0; hg < G; hg++)
            for (int i = j; i < T; i++) s += f->A[l][((int64_t)(g * G + hg) * T + i) * T + j];
        want[j] = s / G / (T - j);
    }
}

static void test_h2o(void **state) {
    fixture *f = *state;
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_H2O);
    lrsa_kv_cache c;
    lrsa_press_scores sc;
    score(f, &s, &c, &sc);
    double want[T];
    for (int l = 0; l < LAYERS; l++)
        for (int g = 0; g < HKV; g++) {
            h2o_reference(f, l, g, want);
            assert_row_close(sc.score[l * HKV + g], want, T, "H2O one forward");
        }
    lrsa_press_scores_free(&sc);
    lrsa_kv_cache_free(&c);
    /* the same prompt in three forwards (13 + 1 + 26 tokens) through the observer */
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_press_cache_init(&c, &f->m, &s, &e), 0);
    lrsa_press_obs o;
    lrsa_press_obs_init(&o, &f->m, 8, 1);
    lrsa_layer_observer hook = lrsa_press_obs_hook(&o);
    lrsa_cached_forward_observed(&f->m, &c, f->ids, 13, NULL, 0, &hook);
    lrsa_cached_forward_observed(&f->m, &c, f->ids + 13, 1, NULL, 0, &hook);
    lrsa_cached_forward_observed(&f->m, &c, f->ids + 14, T - 14, NULL, 0, &hook);
    lrsa_press_scores_alloc(&sc, &c);
    assert_int_equal(lrsa_press_score_builtin(&s, &o, &c, &sc), 0);
    for (int l = 0; l < LAYERS; l++)
        for (int g = 0; g < HKV; g++) {
            h2o_reference(f, l, g, want);
            assert_row_close(sc.score[l * HKV + g], want, T, "H2O three forwards");
        }
    /* the window held the last 8 queries with their positions */
    assert_int_equal(o.w_len, 8);
    for (int j = 0; j < 8; j++) assert_int_equal(o.wq_pos[j], T - 8 + j);
    lrsa_press_scores_free(&sc);
    lrsa_press_obs_free(&o);
    lrsa_kv_cache_free(&c);
}

/* SnapKV's reference score row (context columns only). */
static void snapkv_reference(const fixture *f, int l, int g, int w, int kernel, int max_pool,
                             double *want) {
    const int n = T - w;
    for (int t = 0; t < n; t++) want[t] = 0.0;
    for (int hg = 0; hg < G; hg++) {
        double a[T], p[T];
        for (int t = 0; t < n; t++) {
            a[t] = 0.0;
            for (int i = T - w; i < T; i++)
                a[t] += f->A[l][((int64_t)(g * G + hg) * T + i) * T + t];
        }
        for (int t = 0; t < n; t++) {
            p[t] = max_pool ? -INFINITY : 0.0;
            for (int j = t - kernel / 2; j <= t + kernel / 2; j++) {
                const double x = (j >= 0 && j < n) ? a[j] : (max_pool ? -INFINITY : 0.0);
                p[t] = max_pool ? fmax(p[t], x) : p[t] + x / kernel;
            }
            want[t] += p[t] / G;
        }
    }
}

static void test_snapkv(void **state) {
    fixture *f = *state;
    const struct {
        int w, kernel, max_pool;
    } cases[] = {{8, 3, 0}, {8, 3, 1}, {5, 5, 0}, {1, 1, 0}};
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        lrsa_press_spec s;
        lrsa_press_spec_defaults(&s, LRSA_PRESS_SNAPKV);
        s.window = cases[ci].w;
        s.kernel = cases[ci].kernel;
        s.pool = cases[ci].max_pool ? LRSA_POOL_MAX : LRSA_POOL_AVG;
        lrsa_kv_cache c;
        lrsa_press_scores sc;
        score(f, &s, &c, &sc);
        double want[T];
        for (int l = 0; l < LAYERS; l++)
            for (int g = 0; g < HKV; g++) {
                snapkv_reference(f, l, g, s.window, s.kernel, cases[ci].max_pool, want);
                const float *got = sc.score[l * HKV + g];
                assert_row_close(got, want, T - s.window, "SnapKV context rows");
                for (int t = T - s.window; t < T; t++) assert_true(got[t] == INFINITY);
            }
        lrsa_press_scores_free(&sc);
        lrsa_kv_cache_free(&c);
    }
}

static void test_tova_keeps_what_the_last_query_attends_to(void **state) {
    fixture *f = *state;
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_TOVA);
    s.keep = 0.25; /* 10 rows: the protected last one + the top 9 */
    lrsa_kv_cache c;
    lrsa_press_scores sc;
    score(f, &s, &c, &sc);
    lrsa_err e = {{0}};
    for (int l = 0; l < LAYERS; l++) {
        double want[T];
        for (int t = 0; t < T; t++) {
            want[t] = 0.0;
            for (int h = 0; h < HQ; h++) want[t] += f->A[l][((int64_t)h * T + T - 1) * T + t] / HQ;
        }
        for (int g = 0; g < HKV; g++) { /* one row shared by every KV head */
            assert_row_close(sc.score[l * HKV + g], want, T - 1, "TOVA");
            assert_true(sc.score[l * HKV + g][T - 1] == INFINITY);
        }
    }
    assert_int_equal(lrsa_press_apply(&f->m, &c, &s, &sc, NULL, &e), 0);
    for (int l = 0; l < LAYERS; l++) {
        double w[T];
        for (int t = 0; t < T; t++) {
            w[t] = 0.0;
            for (int h = 0; h < HQ; h++) w[t] += f->A[l][((int64_t)h * T + T - 1) * T + t];
        }
        for (int g = 0; g < HKV; g++) {
            const lrsa_kv_head *h = lrsa_kv_cache_head(&c, l, g);
            assert_int_equal(h->len, 10);
            assert_int_equal(h->pos[9], T - 1);
            /* every kept row (but the last) has more attention than every dropped row */
            double min_kept = INFINITY;
            uint8_t kept[T] = {0};
            for (int j = 0; j < 9; j++) {
                min_kept = fmin(min_kept, w[h->pos[j]]);
                kept[h->pos[j]] = 1;
            }
            for (int t = 0; t < T - 1; t++)
                if (!kept[t]) assert_true(w[t] < min_kept);
        }
    }
    lrsa_press_scores_free(&sc);
    lrsa_kv_cache_free(&c);
}

static void test_pyramidkv_layer_budgets(void **state) {
    fixture *f = *state;
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_PYRAMIDKV);
    /* T = 40, keep 0.5 (n = 20), w = 4, beta 2: min 10, max 30; 3 layers: 30, 20, 10 */
    s.keep = 0.5;
    s.window = 4;
    s.pyramid_beta = 2;
    lrsa_kv_cache c;
    lrsa_press_scores sc;
    score(f, &s, &c, &sc);
    lrsa_kv_cache full;
    lrsa_kv_cache_clone(&full, &c);
    double kf[LAYERS * HKV];
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_press_apply(&f->m, &c, &s, &sc, kf, &e), 0);
    const int want[LAYERS] = {30, 20, 10};
    for (int l = 0; l < LAYERS; l++)
        for (int g = 0; g < HKV; g++) {
            const int64_t i = l * HKV + g;
            assert_int_equal(c.heads[i].len, want[l]);
            assert_float_equal(kf[i], want[l] / 40.0, 1e-12);
            /* the window is kept, and the rest are the top SnapKV rows */
            for (int j = 0; j < 4; j++)
                assert_int_equal(c.heads[i].pos[want[l] - 4 + j], T - 4 + j);
            float min_kept = INFINITY;
            uint8_t kept[T] = {0};
            for (int j = 0; j < want[l]; j++) {
                kept[c.heads[i].pos[j]] = 1;
                min_kept = fminf(min_kept, sc.score[i][c.heads[i].pos[j]]);
            }
            for (int t = 0; t < T; t++)
                if (!kept[t]) assert_true(sc.score[i][t] <= min_kept);
        }
    lrsa_press_scores_free(&sc);
    lrsa_kv_cache_free(&c);
    lrsa_kv_cache_free(&full);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2o),
        cmocka_unit_test(test_snapkv),
        cmocka_unit_test(test_tova_keeps_what_the_last_query_attends_to),
        cmocka_unit_test(test_pyramidkv_layer_budgets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
