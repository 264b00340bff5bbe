/* The salience loss of LagKV scores (kernels/lagkv/lagkv_salience.h): its value agrees with the
 * LagKV scorer's scores, and its hand-written gradient w.r.t. K and V of the partition and of its
 * reference matches central finite differences in double, on random partitions (w = 1 and
 * w = 0.6), with needles of one and of several tokens, and on a reference with a constant
 * channel (the max(mx - mn, 1e-6) guard). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/lagkv/lagkv.h"
#include "kernels/lagkv/lagkv_salience.h"
#include "test_util.h"

enum { L = 6, D = 5, LD = L * D };

static double urand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* x = [k_part | v_part | k_ref | v_ref] */
static double aux_of(const double *x, double w, const uint8_t *needle) {
    return lrsa_lagkv_salience_partition(x, x + LD, x + 2 * LD, x + 3 * LD, L, D, w, needle, 1.0,
                                         NULL, NULL, NULL, NULL);
}

static void check_case(uint64_t seed, double w, const uint8_t *needle, int constant_channel,
                       double h, double tol) {
    double x[4 * LD], g[4 * LD];
    uint64_t s = seed;
    for (int i = 0; i < 4 * LD; i++) x[i] = urand(&s);
    if (constant_channel) /* channel 2 of the K reference is constant: the guarded path */
        for (int t = 0; t < L; t++) x[2 * LD + t * D + 2] = 0.25;
    memset(g, 0, sizeof g);
    const double scale = 0.7;
    double aux = lrsa_lagkv_salience_partition(x, x + LD, x + 2 * LD, x + 3 * LD, L, D, w, needle,
                                               scale, g, g + LD, g + 2 * LD, g + 3 * LD);
    assert_true(isfinite(aux) && aux > 0.0);
    /* the value is -log(needle's share) of the scorer's fp32 scores */
    float xf[4 * LD], score[L];
    for (int i = 0; i < 4 * LD; i++) xf[i] = (float)x[i];
    lrsa_lagkv_score_partition(score, xf, xf + LD, xf + 2 * LD, xf + 3 * LD, L, D, D, (float)w);
    double share = 0.0;
    for (int t = 0; t < L; t++) share += needle[t] ? score[t] : 0.0;
    assert_true(fabs(aux + log(share / (1.0 + w))) < 1e-5);
    double worst = 0.0;
    for (int i = 0; i < 4 * LD; i++) {
        if (constant_channel && i >= 2 * LD && i < 3 * LD && (i - 2 * LD) % D == 2)
            continue; /* moving one entry of a constant channel leaves the guard: not smooth */
        double keep = x[i];
        x[i] = keep + h;
        double up = aux_of(x, w, needle);
        x[i] = keep - h;
        double down = aux_of(x, w, needle);
        x[i] = keep;
        double fd = scale * (up - down) / (2 * h);
        double err = fabs(fd - g[i]) / fmax(1.0, fabs(fd));
        if (err > worst) worst = err;
        if (err > tol)
            fail_msg("seed %llu entry %d: analytic %.9g, finite difference %.9g",
                     (unsigned long long)seed, i, g[i], fd);
    }
    /* not vacuous: the reference rows get gradient too (through min and max) */
    double ref_norm = 0.0;
    for (int i = 2 * LD; i < 4 * LD; i++) ref_norm += fabs(g[i]);
    assert_true(ref_norm > 1e-6);
}

static void test_gradient_one_token(void **state) {
    (void)state;
    const uint8_t needle[L] = {0, 0, 1, 0, 0, 0};
    for (uint64_t seed = 1; seed <= 4; seed++) check_case(seed, 1.0, needle, 0, 1e-6, 1e-6);
}

static void test_gradient_several_tokens_value_weight(void **state) {
    (void)state;
    const uint8_t needle[L] = {1, 0, 1, 1, 0, 0};
    for (uint64_t seed = 5; seed <= 8; seed++) check_case(seed, 0.6, needle, 0, 1e-6, 1e-6);
}

static void test_gradient_constant_channel(void **state) {
    (void)state;
    const uint8_t needle[L] = {0, 1, 0, 0, 0, 1};
    check_case(9, 1.0, needle, 1, 1e-10, 1e-3);
}

/* The whole needle: its share is everything, the loss 0; the layer wrapper sums partitions. */
static void test_whole_partition_and_layer(void **state) {
    (void)state;
    double x[4 * LD];
    uint64_t s = 3;
    for (int i = 0; i < 4 * LD; i++) x[i] = urand(&s);
    const uint8_t all[L] = {1, 1, 1, 1, 1, 1};
    assert_true(fabs(aux_of(x, 1.0, all)) < 1e-12);
    /* fp32 layer: S = 1, L = 6, T = 1 + 3L: partitions 0 and 1 scored; needles in both */
    lrsa_lagkv_params p = {1, L, 0.5f, 1.0f};
    enum { T = 1 + 3 * L, H = 2 };
    float k[T * H * D], v[T * H * D];
    for (int i = 0; i < T * H * D; i++) k[i] = (float)urand(&s), v[i] = (float)urand(&s);
    uint8_t needle[T] = {0};
    needle[2] = needle[9] = 1;
    assert_int_equal(lrsa_lagkv_salience_terms(needle, T, &p), 2);
    double sum = lrsa_lagkv_salience_layer(k, v, H * D, T, H, D, &p, needle, 1.0, NULL, NULL);
    double want = 0.0;
    for (int h = 0; h < H; h++)
        for (int j = 0; j < 2; j++) {
            double y[4 * LD];
            for (int part = 0; part < 2; part++)
                for (int t = 0; t < L; t++)
                    for (int c = 0; c < D; c++) {
                        int64_t row = (int64_t)(1 + (j + part) * L + t) * H * D + h * D + c;
                        y[2 * part * LD + t * D + c] = k[row];
                        y[(2 * part + 1) * LD + t * D + c] = v[row];
                    }
            want += aux_of(y, 1.0, needle + 1 + j * L);
        }
    assert_true(fabs(sum - want) < 1e-9);
    /* its gradient lands on the right rows and heads: central differences on the fp32 inputs */
    float dk[T * H * D], dv[T * H * D];
    memset(dk, 0, sizeof dk);
    memset(dv, 0, sizeof dv);
    lrsa_lagkv_salience_layer(k, v, H * D, T, H, D, &p, needle, 1.0, dk, dv);
    for (int i = 0; i < 2 * T * H * D; i++) {
        float *x = i < T * H * D ? &k[i] : &v[i - T * H * D];
        const float *g = i < T * H * D ? &dk[i] : &dv[i - T * H * D];
        const float keep = *x, h = 1.0f / 512; /* exact in fp32 */
        *x = keep + h;
        double up = lrsa_lagkv_salience_layer(k, v, H * D, T, H, D, &p, needle, 1.0, NULL, NULL);
        *x = keep - h;
        double down = lrsa_lagkv_salience_layer(k, v, H * D, T, H, D, &p, needle, 1.0, NULL, NULL);
        *x = keep;
        double fd = (up - down) / (2.0 * h);
        if (fabs(fd - *g) > 1e-3 * fmax(1.0, fabs(fd)))
            fail_msg("layer entry %d: analytic %.7g, finite difference %.7g", i, *g, fd);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_one_token),
        cmocka_unit_test(test_gradient_several_tokens_value_weight),
        cmocka_unit_test(test_gradient_constant_channel),
        cmocka_unit_test(test_whole_partition_and_layer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
