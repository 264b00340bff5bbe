/* AVX2 versions of lrsa_vexpf (vexp.h) and of the row reductions of vrow.h, written with
 * intrinsics for the softmax rows of the attention tiles, with the same bits as the scalar code:
 * the same IEEE fp32 operations in the same order, no FMA (the functions are compiled for
 * target "avx2" only, which gcc cannot contract into FMAs), and the eight interleaved lanes of
 * vrow.h as the eight lanes of one vector.
 *
 * Faster than the compiler's vectorisation of the same loops (the target_clones of
 * cpu_clones.h) by three things: lrsa_vexp8_avx2_normal drops the subnormal/overflow/NaN
 * handling for rows whose arguments all lie in [-87, 88] (checked once per row from its
 * extremes); the exponentials and their row sum are one pass, four vectors in step; and the
 * per-row reductions of a tile are folded eight rows at a time (lrsa_rows8_*) after a register
 * transpose, in the same order as the scalar folds.
 *
 * Why the normal-range version gives the same bits: for x in [-87, 88], n = round(x / ln 2) is
 * in [-126, 127], so 2^n is a normal float and lrsa_vexpf's first factor y * 2^n1 is exact; its
 * result is then round(y * 2^n) whether 2^n is applied in one multiply or two, and the masks
 * select nothing (tests/kernels/test_vexp.c compares both on every float of the range). */
#ifndef LRSA_KERNELS_CPU_VEXP_AVX2_H
#define LRSA_KERNELS_CPU_VEXP_AVX2_H
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LRSA_HAVE_VEXP_AVX2 1
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define LRSA_AVX2_FN static inline __attribute__((target("avx2"), always_inline))

/* Arguments of lrsa_vexp8_avx2_normal: [LRSA_VEXP_NORMAL_LO, LRSA_VEXP_NORMAL_HI]. */
#define LRSA_VEXP_NORMAL_LO (-87.0f)
#define LRSA_VEXP_NORMAL_HI 88.0f

/* The common part of lrsa_vexpf: y = e^r and n, as in vexp.h line by line. */
LRSA_AVX2_FN __m256 lrsa_vexp8_core(__m256 x, __m256i *ni) {
    const __m256 shifter = _mm256_set1_ps(12582912.0f);
    __m256 t = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), shifter);
    __m256 n = _mm256_sub_ps(t, shifter);
    *ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(shifter));
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r);
    return _mm256_add_ps(y, _mm256_set1_ps(1.0f));
}

/* 2^k as a float for integer lanes k in [-126, 127]. */
LRSA_AVX2_FN __m256 lrsa_vexp8_pow2(__m256i k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

/* lrsa_vexpf on 8 lanes, every input. */
LRSA_AVX2_FN __m256 lrsa_vexp8_avx2(__m256 x) {
    __m256i ni;
    __m256 y = lrsa_vexp8_core(x, &ni);
    /* n1 = ni / 2 rounded toward zero (C division), n2 = ni - n1 */
    __m256i n1 = _mm256_srai_epi32(_mm256_add_epi32(ni, _mm256_srli_epi32(ni, 31)), 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    y = _mm256_mul_ps(y, lrsa_vexp8_pow2(n1));
    y = _mm256_mul_ps(y, lrsa_vexp8_pow2(n2));
    const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-103.972084f), _CMP_LT_OQ);
    const __m256 over = _mm256_cmp_ps(x, _mm256_set1_ps(88.7228394f), _CMP_GT_OQ);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    y = _mm256_andnot_ps(under, y);
    y = _mm256_or_ps(_mm256_andnot_ps(over, y),
                     _mm256_and_ps(over, _mm256_castsi256_ps(_mm256_set1_epi32(0x7f800000))));
    return _mm256_or_ps(_mm256_andnot_ps(nan, y), _mm256_and_ps(nan, x));
}

/* lrsa_vexpf on 8 lanes whose inputs all lie in [LRSA_VEXP_NORMAL_LO, LRSA_VEXP_NORMAL_HI]. */
LRSA_AVX2_FN __m256 lrsa_vexp8_avx2_normal(__m256 x) {
    __m256i ni;
    __m256 y = lrsa_vexp8_core(x, &ni);
    return _mm256_mul_ps(y, lrsa_vexp8_pow2(ni));
}

/* Pins v to a register at this point of the program: gcc's expansion otherwise folds each
 * single-use step of an exponential into the next (temporary expression replacement) and emits
 * the four interleaved chains of lrsa_vexp8x4_avx2_normal one after the other again. Changes
 * no value. */
#define LRSA_AVX2_PIN(v) __asm__("" : "+x"(v))

/* lrsa_vexp8_avx2_normal on the four vectors x[0..3], in place: the same operations on each,
 * step by step. One exponential is a chain of about 20 dependent operations; four independent
 * chains side by side keep the FP pipes busy where one leaves them waiting on its latency (the
 * out-of-order window holds about two chains in program order). */
LRSA_AVX2_FN void lrsa_vexp8x4_avx2_normal(__m256 x[4]) {
    const __m256 shifter = _mm256_set1_ps(12582912.0f);
    __m256 n[4], r[4], p[4];
    __m256i ni[4];
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
        const __m256 t = _mm256_add_ps(_mm256_mul_ps(x[u], _mm256_set1_ps(1.44269504f)), shifter);
        n[u] = _mm256_sub_ps(t, shifter);
        ni[u] = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(shifter));
    }
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
        r[u] = _mm256_sub_ps(x[u], _mm256_mul_ps(n[u], _mm256_set1_ps(0.693359375f)));
        r[u] = _mm256_sub_ps(r[u], _mm256_mul_ps(n[u], _mm256_set1_ps(-2.12194440e-4f)));
        LRSA_AVX2_PIN(r[u]);
    }
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
        p[u] = _mm256_mul_ps(_mm256_set1_ps(1.9875691500e-4f), r[u]);
        p[u] = _mm256_add_ps(p[u], _mm256_set1_ps(1.3981999507e-3f));
        p[u] = _mm256_add_ps(_mm256_mul_ps(p[u], r[u]), _mm256_set1_ps(8.3334519073e-3f));
        LRSA_AVX2_PIN(p[u]);
    }
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
        p[u] = _mm256_add_ps(_mm256_mul_ps(p[u], r[u]), _mm256_set1_ps(4.1665795894e-2f));
        p[u] = _mm256_add_ps(_mm256_mul_ps(p[u], r[u]), _mm256_set1_ps(1.6666665459e-1f));
        LRSA_AVX2_PIN(p[u]);
    }
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
        p[u] = _mm256_add_ps(_mm256_mul_ps(p[u], r[u]), _mm256_set1_ps(5.0000001201e-1f));
        p[u] = _mm256_add_ps(_mm256_mul_ps(p[u], _mm256_mul_ps(r[u], r[u])), r[u]);
        LRSA_AVX2_PIN(p[u]);
    }
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++)
        x[u] = _mm256_mul_ps(_mm256_add_ps(p[u], _mm256_set1_ps(1.0f)), lrsa_vexp8_pow2(ni[u]));
}

/* Lanes 0 .. n-1 all ones (0 <= n <= 8). */
LRSA_AVX2_FN __m256i lrsa_avx2_head_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The eight lanes of a row's running maximum (*mx), minimum of the non-NaN entries (*mi) and
 * NaN flags (*bad) over s[0..n): lane u sees s[u], s[u + 8], ..., as the lanes of vrow.h.
 * max_ps(x, m) is isgreater(x, m) ? x : m lane by lane, min_ps(x, m) isless(x, m) ? x : m. */
LRSA_AVX2_FN void lrsa_row_lanes_max_min_avx2(const float *s, int64_t n, __m256 *mx, __m256 *mi,
                                              __m256 *bad) {
    __m256 hi = _mm256_set1_ps(-INFINITY), lo = _mm256_set1_ps(INFINITY);
    __m256 nan = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 x = _mm256_loadu_ps(s + j);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        hi = _mm256_max_ps(x, hi);
        lo = _mm256_min_ps(x, lo);
    }
    if (j < n) { /* missing lanes read as -inf for the maximum, +inf for the minimum */
        const __m256i head = lrsa_avx2_head_mask(n - j);
        const __m256 x = _mm256_maskload_ps(s + j, head), hm = _mm256_castsi256_ps(head);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        hi = _mm256_max_ps(_mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, hm), hi);
        lo = _mm256_min_ps(_mm256_blendv_ps(_mm256_set1_ps(INFINITY), x, hm), lo);
    }
    *mx = hi, *mi = lo, *bad = nan;
}

/* lrsa_row_max(s, n) (NaN when any entry is NaN, -inf when n == 0), and in *mn the minimum of
 * the non-NaN entries (+inf when none): the lanes folded in order 0..7 as in vrow.h. */
LRSA_AVX2_FN float lrsa_row_max_min_avx2(const float *s, int64_t n, float *mn) {
    __m256 mx, mi, bad;
    lrsa_row_lanes_max_min_avx2(s, n, &mx, &mi, &bad);
    float m8[8], i8[8];
    _mm256_storeu_ps(m8, mx);
    _mm256_storeu_ps(i8, mi);
    float m = m8[0], lo = i8[0];
#pragma GCC unroll 8
    for (int u = 1; u < 8; u++) {
        m = isgreater(m8[u], m) ? m8[u] : m;
        lo = isless(i8[u], lo) ? i8[u] : lo;
    }
    *mn = lo;
    return _mm256_movemask_ps(bad) ? NAN : m;
}

/* v[0..7] as an 8 x 8 matrix (v[i] lane j = element (i, j)), transposed in place. */
LRSA_AVX2_FN void lrsa_avx2_transpose8(__m256 v[8]) {
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* The extremes of eight rows at once, row i = s[i][0..n[i]) in lane i: the maximum as
 * lrsa_row_max_min_avx2 returns it, the minimum in *mn. The lanes of each row are folded in the
 * same order (0, then 1..7), eight rows per vector operation after a transpose, so no row's
 * result passes through memory or a scalar compare chain. */
LRSA_AVX2_FN __m256 lrsa_rows8_max_min_avx2(float *const s[8], const int n[8], __m256 *mn) {
    __m256 mx[8], mi[8];
    int nan_rows = 0;
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        __m256 bad;
        lrsa_row_lanes_max_min_avx2(s[i], n[i], &mx[i], &mi[i], &bad);
        nan_rows |= (_mm256_movemask_ps(bad) != 0) << i;
    }
    lrsa_avx2_transpose8(mx);
    lrsa_avx2_transpose8(mi);
    __m256 hi = mx[0], lo = mi[0];
#pragma GCC unroll 8
    for (int u = 1; u < 8; u++) {
        hi = _mm256_max_ps(mx[u], hi);
        lo = _mm256_min_ps(mi[u], lo);
    }
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i nan_lane =
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(nan_rows), bit), bit);
    *mn = lo;
    return _mm256_blendv_ps(hi, _mm256_set1_ps(NAN), _mm256_castsi256_ps(nan_lane));
}

/* s[j] = lrsa_vexpf(s[j] - sub) for j < n; returns the eight lanes of lrsa_row_sum of the
 * results (lane u adds s[u], s[u + 8], ... in order) before they are added together.
 * normal: the caller checked that every s[j] - sub lies in [LRSA_VEXP_NORMAL_LO, ..._HI]. */
LRSA_AVX2_FN __m256 lrsa_exp_shift_lanes_avx2(float *s, int64_t n, float sub, int normal) {
    const __m256 vs = _mm256_set1_ps(sub);
    __m256 acc = _mm256_setzero_ps();
    int64_t j = 0;
    if (normal) {
        for (; j + 32 <= n; j += 32) {
            __m256 y[4];
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) y[u] = _mm256_sub_ps(_mm256_loadu_ps(s + j + 8 * u), vs);
            lrsa_vexp8x4_avx2_normal(y);
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                _mm256_storeu_ps(s + j + 8 * u, y[u]);
                acc = _mm256_add_ps(acc, y[u]);
            }
        }
        for (; j + 8 <= n; j += 8) {
            const __m256 y = lrsa_vexp8_avx2_normal(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
            _mm256_storeu_ps(s + j, y);
            acc = _mm256_add_ps(acc, y);
        }
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 y = lrsa_vexp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
        _mm256_storeu_ps(s + j, y);
        acc = _mm256_add_ps(acc, y);
    }
    if (j < n) { /* the missing lanes add +0, which leaves the lane sums (>= +0) unchanged */
        const __m256i head = lrsa_avx2_head_mask(n - j);
        __m256 y = lrsa_vexp8_avx2(_mm256_sub_ps(_mm256_maskload_ps(s + j, head), vs));
        y = _mm256_and_ps(y, _mm256_castsi256_ps(head));
        _mm256_maskstore_ps(s + j, head, y);
        acc = _mm256_add_ps(acc, y);
    }
    return acc;
}

/* s[j] = lrsa_vexpf(s[j] - sub) for j < n; returns lrsa_row_sum of the results when want_sum. */
LRSA_AVX2_FN float lrsa_exp_shift_sum_avx2(float *s, int64_t n, float sub, int normal,
                                           int want_sum) {
    const __m256 acc = lrsa_exp_shift_lanes_avx2(s, n, sub, normal);
    if (!want_sum) return 0.0f;
    float p[8];
    _mm256_storeu_ps(p, acc);
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* The row sums of eight rows' lanes (acc[i] of row i, from lrsa_exp_shift_lanes_avx2), row i in
 * lane i: ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)) as lrsa_row_sum adds them. */
LRSA_AVX2_FN __m256 lrsa_rows8_sum_lanes_avx2(__m256 acc[8]) {
    lrsa_avx2_transpose8(acc);
    return _mm256_add_ps(
        _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])),
        _mm256_add_ps(_mm256_add_ps(acc[4], acc[5]), _mm256_add_ps(acc[6], acc[7])));
}

/* Whether every s[j] - sub of a row whose extremes are lo and hi lies in the normal range of
 * lrsa_vexp8_avx2_normal (rounding is monotonic, so the extremes bound every difference). */
static inline int lrsa_vexp_row_normal(float lo, float hi, float sub) {
    return (lo - sub) >= LRSA_VEXP_NORMAL_LO && (hi - sub) <= LRSA_VEXP_NORMAL_HI;
}
#endif
#endif
