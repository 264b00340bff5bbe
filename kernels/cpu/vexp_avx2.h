/* AVX2 versions of lrsa_vexpf (vexp.h) and of the row reductions of vrow.h, written with
 * intrinsics for the softmax rows of the attention tiles, with the same bits as the scalar code:
 * the same IEEE fp32 operations in the same order, no FMA (the functions are compiled for
 * target "avx2" only, which gcc cannot contract into FMAs), and the eight interleaved lanes of
 * vrow.h as the eight lanes of one vector.
 *
 * Faster than the compiler's vectorisation of the same loops (the target_clones of
 * cpu_clones.h) by two things: lrsa_vexp8_avx2_normal drops the subnormal/overflow/NaN handling
 * for rows whose arguments all lie in [-87, 88] (checked once per row from its extremes), and
 * the exponentials and their row sum are one pass.
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

/* Lanes 0 .. n-1 all ones (0 <= n <= 8). */
LRSA_AVX2_FN __m256i lrsa_avx2_head_mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* lrsa_row_max(s, n) (NaN when any entry is NaN, -inf when n == 0), and in *mn the minimum of
 * the non-NaN entries (+inf when none). max_ps(x, m) is isgreater(x, m) ? x : m lane by lane,
 * as in vrow.h. */
LRSA_AVX2_FN float lrsa_row_max_min_avx2(const float *s, int64_t n, float *mn) {
    __m256 mx = _mm256_set1_ps(-INFINITY), mi = _mm256_set1_ps(INFINITY);
    __m256 bad = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 x = _mm256_loadu_ps(s + j);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        mx = _mm256_max_ps(x, mx);
        mi = _mm256_min_ps(x, mi);
    }
    if (j < n) { /* missing lanes read as -inf for the maximum, +inf for the minimum */
        const __m256i head = lrsa_avx2_head_mask(n - j);
        const __m256 x = _mm256_maskload_ps(s + j, head), hm = _mm256_castsi256_ps(head);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        mx = _mm256_max_ps(_mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, hm), mx);
        mi = _mm256_min_ps(_mm256_blendv_ps(_mm256_set1_ps(INFINITY), x, hm), mi);
    }
    float m8[8], i8[8];
    _mm256_storeu_ps(m8, mx);
    _mm256_storeu_ps(i8, mi);
    float m = m8[0], lo = i8[0];
    for (int u = 1; u < 8; u++) {
        m = isgreater(m8[u], m) ? m8[u] : m;
        lo = isless(i8[u], lo) ? i8[u] : lo;
    }
    *mn = lo;
    return _mm256_movemask_ps(bad) ? NAN : m;
}

/* s[j] = lrsa_vexpf(s[j] - sub) for j < n; returns lrsa_row_sum of the results when want_sum.
 * normal: the caller checked that every s[j] - sub lies in [LRSA_VEXP_NORMAL_LO, ..._HI]. */
LRSA_AVX2_FN float lrsa_exp_shift_sum_avx2(float *s, int64_t n, float sub, int normal,
                                           int want_sum) {
    const __m256 vs = _mm256_set1_ps(sub);
    __m256 acc = _mm256_setzero_ps();
    int64_t j = 0;
    if (normal)
        for (; j + 8 <= n; j += 8) {
            const __m256 y = lrsa_vexp8_avx2_normal(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
            _mm256_storeu_ps(s + j, y);
            acc = _mm256_add_ps(acc, y);
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
    if (!want_sum) return 0.0f;
    float p[8];
    _mm256_storeu_ps(p, acc);
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* Whether every s[j] - sub of a row whose extremes are lo and hi lies in the normal range of
 * lrsa_vexp8_avx2_normal (rounding is monotonic, so the extremes bound every difference). */
static inline int lrsa_vexp_row_normal(float lo, float hi, float sub) {
    return (lo - sub) >= LRSA_VEXP_NORMAL_LO && (hi - sub) <= LRSA_VEXP_NORMAL_HI;
}
#endif
#endif
