/* LagKV scoring and selection (kernels/lagkv) against a tiny independent reference written
 * here from ../shared/docs/lagkv-lrsa.md section 3. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/lagkv/lagkv.h"
#include "test_util.h"

/* Reference score of one partition in double, straight from the spec's five steps. */
static void ref_scores(double *score, const float *kp, const float *vp, const float *kr,
                       const float *vr, int L, int D, int64_t stride, double w) {
    for (int t = 0; t < L; t++) score[t] = 0.0;
    for (int which = 0; which < 2; which++) {
        const float *x = which ? vp : kp, *ref = which ? vr : kr;
        double s[64], total = 0.0, best = -INFINITY;
        for (int t = 0; t < L; t++) {
            double z[64], mean = 0.0, var = 0.0;
            for (int c = 0; c < D; c++) {
                double mn = INFINITY, mx = -INFINITY;
                for (int u = 0; u < L; u++) {
                    mn = fmin(mn, ref[u * stride + c]);
                    mx = fmax(mx, ref[u * stride + c]);
                }
                z[c] = (x[t * stride + c] - mn) / fmax(mx - mn, 1e-6);
                mean += z[c] / D;
            }
            for (int c = 0; c < D; c++) var += (z[c] - mean) * (z[c] - mean) / (D - 1);
            s[t] = sqrt(var);
            best = fmax(best, s[t]);
        }
        for (int t = 0; t < L; t++) total += exp(s[t] - best);
        for (int t = 0; t < L; t++) score[t] += (which ? w : 1.0) * exp(s[t] - best) / total;
    }
}

static void test_k_truncation(void **state) {
    (void)state;
    lrsa_lagkv_params p = {16, 128, 0.2f, 1.0f};
    assert_int_equal(lrsa_lagkv_k(&p), 25);
    p.lag = 100, p.keep = 0.29f;
    assert_int_equal(lrsa_lagkv_k(&p), 28);
    p.keep = 0.57f;
    assert_int_equal(lrsa_lagkv_k(&p), 56);
    p.keep = 1.0f;
    assert_int_equal(lrsa_lagkv_k(&p), 100);
}

static void test_partition_counts(void **state) {
    (void)state;
    lrsa_lagkv_params p = {16, 128, 0.5f, 1.0f};
    assert_int_equal(lrsa_lagkv_num_partitions(1000, &p), 7);
    assert_int_equal(lrsa_lagkv_num_scored(1000, &p), 6);
    assert_int_equal(lrsa_lagkv_num_partitions(16 + 128, &p), 1);
    assert_int_equal(lrsa_lagkv_num_scored(16 + 128, &p), 0);
    assert_int_equal(lrsa_lagkv_num_partitions(10, &p), 0);
    assert_int_equal(lrsa_lagkv_num_scored(10, &p), 0);
}

static void expect_error(lrsa_lagkv_params p, const char *word) {
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_lagkv_validate(&p, &e), -1);
    if (!strstr(e.msg, word)) fail_msg("message '%s' does not name '%s'", e.msg, word);
}

static void test_validate(void **state) {
    (void)state;
    lrsa_lagkv_params ok = {16, 128, 0.125f, 1.0f};
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_lagkv_validate(&ok, &e), 0);
    ok.keep = 1.0f, ok.sink = 0;
    assert_int_equal(lrsa_lagkv_validate(&ok, &e), 0);
    expect_error((lrsa_lagkv_params){-1, 128, 0.5f, 1.0f}, "sink");
    expect_error((lrsa_lagkv_params){16, 0, 0.5f, 1.0f}, "lag");
    expect_error((lrsa_lagkv_params){16, -4, 0.5f, 1.0f}, "lag");
    expect_error((lrsa_lagkv_params){16, 128, 0.0f, 1.0f}, "keep");
    expect_error((lrsa_lagkv_params){16, 128, 1.5f, 1.0f}, "keep");
    expect_error((lrsa_lagkv_params){16, 128, NAN, 1.0f}, "keep");
    expect_error((lrsa_lagkv_params){16, 128, 0.5f, INFINITY}, "value_weight");
    expect_error((lrsa_lagkv_params){16, 128, 0.5f, NAN}, "value_weight");
}

/* A hand-made partition: D = 4, L = 6, rows 8 floats apart (fused layout). Channel 2 of the
 * K reference and channel 0 of the V reference are constant: the epsilon path. */
static void test_hand_partition(void **state) {
    (void)state;
    enum { L = 6, D = 4, ST = 8 };
    float kp[L * ST], vp[L * ST], kr[L * ST], vr[L * ST];
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 7);
    tu_fill_normal(kp, L * ST, 1.0f, &rng);
    tu_fill_normal(vp, L * ST, 1.0f, &rng);
    tu_fill_normal(kr, L * ST, 1.0f, &rng);
    tu_fill_normal(vr, L * ST, 1.0f, &rng);
    for (int t = 0; t < L; t++) {
        kr[t * ST + 2] = 0.25f;
        vr[t * ST + 0] = -1.0f;
        /* tokens near the constant value keep z moderate; one far away dominates */
        kp[t * ST + 2] = 0.25f + 1e-7f * (float)t;
        vp[t * ST + 0] = -1.0f;
    }
    float sc[L];
    double ref[L];
    for (int iw = 0; iw < 2; iw++) {
        float w = iw ? 0.5f : 1.0f;
        lrsa_lagkv_score_partition(sc, kp, vp, kr, vr, L, D, ST, w);
        ref_scores(ref, kp, vp, kr, vr, L, D, ST, w);
        double sum = 0;
        for (int t = 0; t < L; t++) {
            assert_true(isfinite(sc[t]));
            if (fabs(sc[t] - ref[t]) > 1e-5 * fabs(ref[t]) + 1e-7)
                fail_msg("w=%g token %d: score %.8g, reference %.8g", w, t, sc[t], ref[t]);
            sum += sc[t];
        }
        assert_float_equal(sum, 1.0 + w, 1e-5); /* two softmaxes */
    }
}

static void test_topk_ties_lower_position(void **state) {
    (void)state;
    float s[6] = {0.1f, 0.5f, 0.3f, 0.5f, 0.5f, 0.2f};
    int32_t idx[6];
    lrsa_lagkv_topk_ascending(idx, s, 6, 1);
    assert_int_equal(idx[0], 1);
    lrsa_lagkv_topk_ascending(idx, s, 6, 2);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    lrsa_lagkv_topk_ascending(idx, s, 6, 4);
    int32_t want[4] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++) assert_int_equal(idx[i], want[i]);
    float u[5] = {0.7f, 0.1f, 0.9f, 0.1f, 0.8f}; /* ascending storage, not score order */
    lrsa_lagkv_topk_ascending(idx, u, 5, 3);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    assert_int_equal(idx[2], 4);
}

/* select over B = 2, Hkv = 2 with k/v in a fused [B, T, 3*Hkv, D] buffer; T leaves a leftover. */
static void test_select_layout(void **state) {
    (void)state;
    enum { B = 2, Hkv = 2, D = 5, S = 3, L = 10, T = S + 4 * L + 7 };
    const int64_t st = 3 * Hkv * D;
    lrsa_lagkv_params p = {S, L, 0.3f, 1.0f};
    int ns = lrsa_lagkv_num_scored(T, &p), kk = lrsa_lagkv_k(&p);
    assert_int_equal(ns, 3);
    assert_int_equal(kk, 3);
    float *buf = malloc(sizeof(float) * B * T * st);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 9);
    tu_fill_normal(buf, B * T * st, 1.0f, &rng);
    float *k = buf + Hkv * D, *v = buf + 2 * Hkv * D;
    /* sequence 1, head 1, partition 1: all rows identical -> all scores tie -> lowest k win */
    for (int t = S + L; t < S + 2 * L; t++)
        for (int c = 0; c < D; c++) {
            k[((int64_t)1 * T + t) * st + D + c] = 0.5f * c;
            v[((int64_t)1 * T + t) * st + D + c] = -0.25f * c;
        }
    int32_t *sel = malloc(sizeof(int32_t) * B * Hkv * ns * kk);
    float *scores = malloc(sizeof(float) * B * Hkv * T);
    lrsa_lagkv_select_cpu(sel, scores, k, v, B, T, Hkv, D, st, &p);
    for (int b = 0; b < B; b++)
        for (int g = 0; g < Hkv; g++) {
            const float *srow = scores + (b * Hkv + g) * T;
            for (int t = 0; t < S; t++) assert_true(isinf(srow[t]) && srow[t] > 0);
            for (int t = S + ns * L; t < T; t++) assert_true(isinf(srow[t]) && srow[t] > 0);
            for (int j = 0; j < ns; j++) {
                int start = S + j * L;
                int64_t off = ((int64_t)b * T + start) * st + g * D;
                double ref[L];
                ref_scores(ref, k + off, v + off, k + off + L * st, v + off + L * st, L, D, st,
                           1.0);
                for (int t = 0; t < L; t++)
                    if (fabs(srow[start + t] - ref[t]) > 1e-5 * ref[t])
                        fail_msg("b%d g%d j%d t%d: %.8g vs %.8g", b, g, j, t, srow[start + t],
                                 ref[t]);
                const int32_t *s = sel + ((b * Hkv + g) * ns + j) * kk;
                for (int i = 0; i < kk; i++) {
                    assert_true(s[i] >= start && s[i] < start + L);
                    if (i) assert_true(s[i] > s[i - 1]);
                }
                /* the kept tokens outrank (or tie with a higher position) every other token */
                for (int t = start; t < start + L; t++) {
                    int kept = 0;
                    for (int i = 0; i < kk; i++) kept |= s[i] == t;
                    if (kept) continue;
                    for (int i = 0; i < kk; i++)
                        assert_true(srow[s[i]] > srow[t] || (srow[s[i]] == srow[t] && s[i] < t));
                }
                if (b == 1 && g == 1 && j == 1)
                    for (int i = 0; i < kk; i++) assert_int_equal(s[i], start + i);
            }
        }
    free(buf), free(sel), free(scores);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k_truncation),
        cmocka_unit_test(test_partition_counts),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_hand_partition),
        cmocka_unit_test(test_topk_ties_lower_position),
        cmocka_unit_test(test_select_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
