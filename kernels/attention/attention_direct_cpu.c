/* The forward key-tile products of the attention engine, with the direct path for blocks of at
 * most LRSA_ATTN_DIRECT_MAX_ROWS stacked rows (attention_direct.h). */
#include "kernels/attention/attention_direct.h"

#include <cblas.h>
#include <math.h>

#include "base/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define LRSA_DIRECT_X86 1
#include <immintrin.h>
#endif

/* Plain C, one element at a time: the reference order of both paths. */
static void scores_plain(float *s, int s_ld, const float *q, int rows, const float *k, int64_t k_ld,
                         int nk, int D, float scale) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < nk; j++) {
            const float *qr = q + (int64_t)r * D, *kj = k + j * k_ld;
            float t = 0.0f;
            for (int d = 0; d < D; d++) t = fmaf(qr[d], kj[d], t);
            s[(int64_t)r * s_ld + j] = t * scale + 0.0f; /* + 0: the beta-0 SGEMM's -0 -> +0 */
        }
}

/* Columns [0, width) of acc rows (acc_ld apart): a chain over the keys per element (kept for
 * 64 columns at a time, so V is read along its rows), then added once. */
static void pv_plain(float *acc, int64_t acc_ld, const float *p, int p_ld, int rows, const float *v,
                     int64_t v_ld, int nk, int width) {
    enum { CB = 64 };
    float t[CB];
    for (int r = 0; r < rows; r++)
        for (int c0 = 0; c0 < width; c0 += CB) {
            const int cn = width - c0 < CB ? width - c0 : CB;
            for (int c = 0; c < cn; c++) t[c] = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float pj = p[(int64_t)r * p_ld + j], *vj = v + j * v_ld + c0;
                for (int c = 0; c < cn; c++) t[c] = fmaf(pj, vj[c], t[c]);
            }
            float *a = acc + r * acc_ld + c0;
            for (int c = 0; c < cn; c++) a[c] = a[c] + t[c];
        }
}

#ifdef LRSA_DIRECT_X86
#define DIRECT_AVX2        __attribute__((target("avx2,fma")))
#define DIRECT_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* Keys 0..7 (ld apart), dims 0..3, with the key index across the lanes: col[x] lane u holds
 * k[u * ld + x]. Two 128-bit rows per register and in-lane 4x4 transposes: no lane-crossing
 * shuffles, which cost several micro-ops on Zen 1. */
DIRECT_AVX2_INLINE void key_columns4(const float *k, int64_t ld, __m256 col[4]) {
    __m256 a[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        a[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(k + i * ld)),
                                    _mm_loadu_ps(k + (i + 4) * ld), 1);
    const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
    const __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
    col[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    col[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    col[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    col[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* Scores of keys 0 .. 8B-1 (B blocks of 8) for R rows: lane u of block b is key 8b + u's chain
 * over the dims in order. B * R chains at once hide the FMA latency. The small loops are
 * unrolled so that the accumulators stay in registers. */
DIRECT_AVX2_INLINE void scores_keys(float *s, int s_ld, const float *q, const int R, const float *k,
                                    int64_t ld, int D, float scale, const int B) {
    __m256 acc[2][LRSA_ATTN_DIRECT_MAX_ROWS];
#pragma GCC unroll 6
    for (int i = 0; i < B * R; i++) acc[i / R][i % R] = _mm256_setzero_ps();
    int d = 0;
    for (; d + 4 <= D; d += 4) {
        __m256 col[2][4];
#pragma GCC unroll 2
        for (int b = 0; b < B; b++) key_columns4(k + 8 * b * ld + d, ld, col[b]);
#pragma GCC unroll 4
        for (int x = 0; x < 4; x++)
#pragma GCC unroll 3
            for (int r = 0; r < R; r++) {
                const __m256 qx = _mm256_broadcast_ss(q + r * D + d + x);
#pragma GCC unroll 2
                for (int b = 0; b < B; b++) acc[b][r] = _mm256_fmadd_ps(qx, col[b][x], acc[b][r]);
            }
    }
    for (; d < D; d++)
#pragma GCC unroll 2
        for (int b = 0; b < B; b++) {
            const float *kd = k + 8 * b * ld + d;
            const __m256 col = _mm256_set_ps(kd[7 * ld], kd[6 * ld], kd[5 * ld], kd[4 * ld],
                                             kd[3 * ld], kd[2 * ld], kd[ld], kd[0]);
#pragma GCC unroll 3
            for (int r = 0; r < R; r++)
                acc[b][r] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + r * D + d), col, acc[b][r]);
        }
    const __m256 sc = _mm256_set1_ps(scale), zero = _mm256_setzero_ps();
#pragma GCC unroll 6
    for (int i = 0; i < B * R; i++)
        _mm256_storeu_ps(s + (int64_t)(i % R) * s_ld + 8 * (i / R),
                         _mm256_add_ps(_mm256_mul_ps(acc[i / R][i % R], sc), zero));
}

/* Keys 0 .. 8B-1 for `rows` rows, with R a constant in each call. */
DIRECT_AVX2_INLINE void scores_block(float *s, int s_ld, const float *q, int rows, const float *k,
                                     int64_t ld, int D, float scale, const int B) {
    if (rows == 3)
        scores_keys(s, s_ld, q, 3, k, ld, D, scale, B);
    else if (rows == 2)
        scores_keys(s, s_ld, q, 2, k, ld, D, scale, B);
    else
        scores_keys(s, s_ld, q, 1, k, ld, D, scale, B);
}

DIRECT_AVX2 static void scores_avx2(float *s, int s_ld, const float *q, int rows, const float *k,
                                    int64_t k_ld, int nk, int D, float scale) {
    int j = 0;
    for (; j + 16 <= nk; j += 16)
        scores_block(s + j, s_ld, q, rows, k + j * k_ld, k_ld, D, scale, 2);
    for (; j + 8 <= nk; j += 8) scores_block(s + j, s_ld, q, rows, k + j * k_ld, k_ld, D, scale, 1);
    if (j < nk) scores_plain(s + j, s_ld, q, rows, k + j * k_ld, k_ld, nk - j, D, scale);
}

/* Columns c0 .. c0 + 8W - 1 of R rows: per element a chain over the keys in order (the output
 * dims across the lanes, each V row loaded once for all rows), then added to acc. */
DIRECT_AVX2_INLINE void pv_cols(float *acc, const float *p, int p_ld, const int R, const float *v,
                                int64_t v_ld, int nk, int D, int c0, const int W) {
    __m256 t[LRSA_ATTN_DIRECT_MAX_ROWS][4];
#pragma GCC unroll 3
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int w = 0; w < W; w++) t[r][w] = _mm256_setzero_ps();
    for (int j = 0; j < nk; j++) {
        const float *vj = v + j * v_ld + c0;
        __m256 vv[4];
#pragma GCC unroll 4
        for (int w = 0; w < W; w++) vv[w] = _mm256_loadu_ps(vj + 8 * w);
#pragma GCC unroll 3
        for (int r = 0; r < R; r++) {
            const __m256 pr = _mm256_broadcast_ss(p + (int64_t)r * p_ld + j);
#pragma GCC unroll 4
            for (int w = 0; w < W; w++) t[r][w] = _mm256_fmadd_ps(pr, vv[w], t[r][w]);
        }
    }
#pragma GCC unroll 3
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int w = 0; w < W; w++) {
            float *a = acc + (int64_t)r * D + c0 + 8 * w;
            _mm256_storeu_ps(a, _mm256_add_ps(_mm256_loadu_ps(a), t[r][w]));
        }
}

DIRECT_AVX2_INLINE void pv_cols_rows(float *acc, const float *p, int p_ld, int rows, const float *v,
                                     int64_t v_ld, int nk, int D, int c0, const int W) {
    if (rows == 3)
        pv_cols(acc, p, p_ld, 3, v, v_ld, nk, D, c0, W);
    else if (rows == 2)
        pv_cols(acc, p, p_ld, 2, v, v_ld, nk, D, c0, W);
    else
        pv_cols(acc, p, p_ld, 1, v, v_ld, nk, D, c0, W);
}

DIRECT_AVX2 static void pv_avx2(float *acc, const float *p, int p_ld, int rows, const float *v,
                                int64_t v_ld, int nk, int D) {
    int c0 = 0;
    for (; c0 + 32 <= D; c0 += 32) pv_cols_rows(acc, p, p_ld, rows, v, v_ld, nk, D, c0, 4);
    for (; c0 + 8 <= D; c0 += 8) pv_cols_rows(acc, p, p_ld, rows, v, v_ld, nk, D, c0, 1);
    if (c0 < D) pv_plain(acc + c0, D, p, p_ld, rows, v + c0, v_ld, nk, D - c0);
}

static int have_avx2_fma(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

void lrsa_attn_direct_scores(float *s, int s_ld, const float *q, int rows, const float *k,
                             int64_t k_ld, int nk, int D, float scale, lrsa_attn_direct_impl impl) {
    LRSA_CHECK(rows >= 1 && rows <= LRSA_ATTN_DIRECT_MAX_ROWS, "(direct path: 1 to 3 rows)");
#ifdef LRSA_DIRECT_X86
    if (impl == LRSA_ATTN_DIRECT_AUTO && have_avx2_fma()) {
        scores_avx2(s, s_ld, q, rows, k, k_ld, nk, D, scale);
        return;
    }
#endif
    scores_plain(s, s_ld, q, rows, k, k_ld, nk, D, scale);
}

void lrsa_attn_direct_pv(float *acc, const float *p, int p_ld, int rows, const float *v,
                         int64_t v_ld, int nk, int D, lrsa_attn_direct_impl impl) {
    LRSA_CHECK(rows >= 1 && rows <= LRSA_ATTN_DIRECT_MAX_ROWS, "(direct path: 1 to 3 rows)");
#ifdef LRSA_DIRECT_X86
    if (impl == LRSA_ATTN_DIRECT_AUTO && have_avx2_fma()) {
        pv_avx2(acc, p, p_ld, rows, v, v_ld, nk, D);
        return;
    }
#endif
    pv_plain(acc, D, p, p_ld, rows, v, v_ld, nk, D);
}

void lrsa_attn_tile_scores(float *s, int s_ld, const float *q, int rows, const float *k,
                           int64_t k_ld, int nk, int D, float scale) {
    if (rows <= LRSA_ATTN_DIRECT_MAX_ROWS)
        lrsa_attn_direct_scores(s, s_ld, q, rows, k, k_ld, nk, D, scale, LRSA_ATTN_DIRECT_AUTO);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, D, scale, q, D, k, (int)k_ld,
                    0.0f, s, s_ld);
}

void lrsa_attn_tile_pv(float *acc, const float *p, int p_ld, int rows, const float *v, int64_t v_ld,
                       int nk, int D) {
    if (rows <= LRSA_ATTN_DIRECT_MAX_ROWS)
        lrsa_attn_direct_pv(acc, p, p_ld, rows, v, v_ld, nk, D, LRSA_ATTN_DIRECT_AUTO);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, nk, 1.0f, p, p_ld, v,
                    (int)v_ld, 1.0f, acc, D);
}
