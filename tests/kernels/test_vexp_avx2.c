/* kernels/cpu/vexp_avx2.h against the scalar code it reproduces, bit for bit: lrsa_vexp8_avx2
 * and the normal-range lrsa_vexp8_avx2_normal against lrsa_vexpf over a sweep of float bit
 * patterns (every float of the normal range: docs/KERNELS.md), and the row functions against
 * lrsa_row_max / lrsa_vexpf + lrsa_row_sum on rows of every length 0..130 with ordinary, -inf
 * and NaN entries; the eight-row folds of the attention tiles (lrsa_rows8_*) against the
 * one-row functions. Skipped (printed) on CPUs without AVX2. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cpu/vexp.h"
#include "kernels/cpu/vexp_avx2.h"
#include "kernels/cpu/vrow.h"
#include "test_util.h"

#ifdef LRSA_HAVE_VEXP_AVX2
static int same_bits(float a, float b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

/* Sweeps bit patterns b = b0, b0 + stride, ... < b1 (as floats); returns how many differ. */
__attribute__((target("avx2"))) static long sweep(uint32_t b0, uint32_t b1, uint32_t stride,
                                                  int normal, long *n) {
    long bad = 0;
    float xs[8], ys[8];
    int m = 0;
    for (uint64_t b = b0; b < b1; b += stride) {
        uint32_t u = (uint32_t)b;
        memcpy(&xs[m], &u, sizeof(float));
        if (normal && !(xs[m] >= LRSA_VEXP_NORMAL_LO && xs[m] <= LRSA_VEXP_NORMAL_HI)) continue;
        if (++m < 8) continue;
        __m256 x = _mm256_loadu_ps(xs);
        _mm256_storeu_ps(ys, normal ? lrsa_vexp8_avx2_normal(x) : lrsa_vexp8_avx2(x));
        for (int i = 0; i < 8; i++) bad += !same_bits(ys[i], lrsa_vexpf(xs[i]));
        *n += 8;
        m = 0;
    }
    return bad;
}

static void test_exp_sweeps(void **state) {
    (void)state;
    if (!__builtin_cpu_supports("avx2")) {
        printf("no AVX2: skipped\n");
        return;
    }
    long n = 0, bad = 0;
    bad += sweep(0, 0xffffffffu, 1009, 0, &n); /* every input, specials and NaNs included */
    assert_int_equal(bad, 0);
    long n_all = n;
    n = 0;
    /* the normal range: [-87, 0] is 0x80000000 .. 0xc2ae0000, [0, 88] 0 .. 0x42b00000 */
    bad += sweep(0x00000000u, 0x42b00001u, 499, 1, &n);
    bad += sweep(0x80000000u, 0xc2ae0001u, 499, 1, &n);
    printf("%ld inputs (all floats), %ld (normal range): 0 differ from lrsa_vexpf\n", n_all, n);
    assert_int_equal(bad, 0);
    assert_true(n > 4000000);
}

__attribute__((target("avx2"))) static void check_row(const float *s, int n, float sub) {
    float lo, got[136], ref[136];
    float mx = lrsa_row_max_min_avx2(s, n, &lo);
    float mx_ref = lrsa_row_max(s, n);
    if (!same_bits(mx, mx_ref) && !(isnan(mx) && isnan(mx_ref)))
        fail_msg("row max of %d: %g vs %g", n, (double)mx, (double)mx_ref);
    for (int j = 0; j < n; j++)
        if (!isnan(s[j]) && isless(s[j], lo)) fail_msg("row min of %d above an entry", n);
    for (int normal = 0; normal < 2; normal++) {
        if (normal && !lrsa_vexp_row_normal(lo, mx, sub)) continue;
        memcpy(got, s, sizeof(float) * (size_t)n);
        got[n] = 7.0f; /* past the row: must stay */
        float sum = lrsa_exp_shift_sum_avx2(got, n, sub, normal, 1);
        for (int j = 0; j < n; j++) ref[j] = lrsa_vexpf(s[j] - sub);
        float sum_ref = lrsa_row_sum(ref, n);
        for (int j = 0; j < n; j++)
            if (!same_bits(got[j], ref[j])) fail_msg("exp of %d, entry %d differs", n, j);
        if (!same_bits(sum, sum_ref) && !(isnan(sum) && isnan(sum_ref)))
            fail_msg("row sum of %d: %.9g vs %.9g", n, (double)sum, (double)sum_ref);
        assert_true(got[n] == 7.0f);
    }
}

static void test_rows(void **state) {
    (void)state;
    if (!__builtin_cpu_supports("avx2")) {
        printf("no AVX2: skipped\n");
        return;
    }
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 5);
    float s[136];
    for (int kind = 0; kind < 5; kind++)
        for (int n = 0; n <= 130; n++) {
            tu_fill_normal(s, 136, kind == 1 ? 40.0f : 3.0f, &rng); /* 1: some below -87 */
            if (kind == 2 && n > 0) s[n / 2] = -INFINITY;
            if (kind == 3 && n > 0) s[n - 1] = NAN;
            if (kind == 4 && n > 0) s[0] = -0.0f, s[n - 1] = 0.0f;
            float m = lrsa_row_max(s, n);
            check_row(s, n, isfinite(m) ? m : 0.0f); /* the online softmax's shift */
            check_row(s, n, m + 0.75f);              /* a logsumexp-like shift (backward) */
        }
}
/* The eight-row folds of the attention's softmax tiles against the one-row functions above,
 * bit for bit: rows of different lengths (0 .. 130) side by side, with NaN, -inf, rows of
 * zeros of both signs (ties the fold must break like the scalar loop) and all-negative rows. */
__attribute__((target("avx2"))) static void check_rows8(float *rows, const int n[8]) {
    float *s[8], mx8[8], lo8[8], sum8[8];
    __m256 acc[8];
    for (int i = 0; i < 8; i++) s[i] = rows + i * 136;
    __m256 lo, mx = lrsa_rows8_max_min_avx2(s, n, &lo);
    _mm256_storeu_ps(mx8, mx);
    _mm256_storeu_ps(lo8, lo);
    float sub[8];
    for (int i = 0; i < 8; i++) {
        float lo_ref, mx_ref = lrsa_row_max_min_avx2(s[i], n[i], &lo_ref);
        if (!same_bits(mx8[i], mx_ref) && !(isnan(mx8[i]) && isnan(mx_ref)))
            fail_msg("row %d (of %d): max %g vs %g", i, n[i], (double)mx8[i], (double)mx_ref);
        if (!same_bits(lo8[i], lo_ref))
            fail_msg("row %d (of %d): min %g vs %g", i, n[i], (double)lo8[i], (double)lo_ref);
        sub[i] = isfinite(mx_ref) ? mx_ref : 0.0f;
    }
    float ref[8 * 136];
    memcpy(ref, rows, sizeof ref);
    for (int i = 0; i < 8; i++) {
        acc[i] = lrsa_exp_shift_lanes_avx2(s[i], n[i], sub[i], 0);
        float ref_sum = lrsa_exp_shift_sum_avx2(ref + i * 136, n[i], sub[i], 0, 1);
        sum8[i] = ref_sum;
    }
    assert_memory_equal(rows, ref, sizeof ref);
    float got[8];
    _mm256_storeu_ps(got, lrsa_rows8_sum_lanes_avx2(acc));
    for (int i = 0; i < 8; i++)
        if (!same_bits(got[i], sum8[i]) && !(isnan(got[i]) && isnan(sum8[i])))
            fail_msg("row %d (of %d): sum %.9g vs %.9g", i, n[i], (double)got[i], (double)sum8[i]);
}

static void test_rows8(void **state) {
    (void)state;
    if (!__builtin_cpu_supports("avx2")) {
        printf("no AVX2: skipped\n");
        return;
    }
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 7);
    static float rows[8 * 136];
    long checked = 0;
    for (int trial = 0; trial < 400; trial++) {
        int n[8];
        for (int i = 0; i < 8; i++) {
            float *row = rows + i * 136;
            n[i] = (int)lrsa_rng_below(&rng, 131);
            const int kind = (int)lrsa_rng_below(&rng, 6);
            tu_fill_normal(row, 136, 3.0f, &rng);
            if (kind == 1 && n[i] > 0) row[lrsa_rng_below(&rng, (uint64_t)n[i])] = NAN;
            if (kind == 2 && n[i] > 0) row[lrsa_rng_below(&rng, (uint64_t)n[i])] = -INFINITY;
            if (kind == 3) /* zeros of both signs in random lanes, nothing above them */
                for (int j = 0; j < 136; j++)
                    row[j] = lrsa_rng_below(&rng, 2) ? (lrsa_rng_below(&rng, 2) ? 0.0f : -0.0f)
                                                     : -fabsf(row[j]);
            if (kind == 4) /* every entry -inf: an empty row's -inf maximum */
                for (int j = 0; j < 136; j++) row[j] = -INFINITY;
            if (kind == 5) /* all negative */
                for (int j = 0; j < 136; j++) row[j] = -fabsf(row[j]) - 1.0f;
        }
        check_rows8(rows, n);
        checked += 8;
    }
    printf("%ld rows in groups of 8: folds equal the one-row functions\n", checked);
}
#else
static void test_rows8(void **state) {
    (void)state;
    printf("no AVX2 build: skipped\n");
}
static void test_exp_sweeps(void **state) {
    (void)state;
    printf("no AVX2 build: skipped\n");
}
static void test_rows(void **state) {
    test_exp_sweeps(state);
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_sweeps),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_rows8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
