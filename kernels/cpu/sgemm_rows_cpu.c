/* Few-row matrix products in the order of OpenBLAS's SGEMM (sgemm_rows.h): plain C, and AVX2 +
 * FMA chosen at run time. */
#include "kernels/cpu/sgemm_rows.h"

#include <math.h>

#include "base/error.h"
#include "kernels/cpu/cpu_threads.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define ROWS_X86 1
#include <immintrin.h>
#endif

/* Length of the inner-index block that starts with `rest` indices left (the driver's rule). */
static int k_block(int rest) {
    const int Q = LRSA_SGEMM_ROWS_KBLOCK;
    if (rest >= 2 * Q) return Q;
    if (rest > Q) return (rest / 2 + 15) / 16 * 16;
    return rest;
}

/* Plain C, one element at a time: the reference order of both paths. */
static void nt_plain(float *c, int64_t ldc, const float *a, int64_t lda, int rows, const float *b,
                     int64_t ldb, int64_t n, int K, float alpha, int beta1) {
    for (int r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) {
            const float *ar = a + r * lda, *bj = b + j * ldb;
            float x = beta1 ? c[r * ldc + j] : 0.0f;
            for (int k0 = 0, kb; k0 < K; k0 += kb) {
                kb = k_block(K - k0);
                float t = 0.0f;
                for (int k = k0; k < k0 + kb; k++) t = fmaf(ar[k], bj[k], t);
                x = fmaf(alpha, t, x);
            }
            c[r * ldc + j] = x;
        }
}

/* Columns [0, n) of C += A B: per block a chain kept for 64 columns at a time (so B is read
 * along its rows), then added to C. */
static void nn_plain(float *c, int64_t ldc, const float *a, int64_t lda, int rows, const float *b,
                     int64_t ldb, int n, int K) {
    enum { CB = 64 };
    float t[CB];
    for (int r = 0; r < rows; r++)
        for (int c0 = 0; c0 < n; c0 += CB) {
            const int cn = n - c0 < CB ? n - c0 : CB;
            float *cr = c + r * ldc + c0;
            for (int k0 = 0, kb; k0 < K; k0 += kb) {
                kb = k_block(K - k0);
                for (int x = 0; x < cn; x++) t[x] = 0.0f;
                for (int k = k0; k < k0 + kb; k++) {
                    const float ak = a[r * lda + k], *bk = b + k * ldb + c0;
                    for (int x = 0; x < cn; x++) t[x] = fmaf(ak, bk[x], t[x]);
                }
                for (int x = 0; x < cn; x++) cr[x] = t[x] + cr[x];
            }
        }
}

#ifdef ROWS_X86
#define ROWS_AVX2        __attribute__((target("avx2,fma")))
#define ROWS_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* Rows 0..7 of B (ld apart), columns 0..3, with the row index across the lanes: col[x] lane u
 * holds b[u * ld + x]. Two 128-bit rows per register and in-lane 4x4 transposes: no
 * lane-crossing shuffles, which cost several micro-ops on Zen 1. */
ROWS_AVX2_INLINE void b_columns4(const float *b, int64_t ld, __m256 col[4]) {
    __m256 x[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        x[i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(b + i * ld)),
                                    _mm_loadu_ps(b + (i + 4) * ld), 1);
    const __m256 t0 = _mm256_unpacklo_ps(x[0], x[1]), t1 = _mm256_unpackhi_ps(x[0], x[1]);
    const __m256 t2 = _mm256_unpacklo_ps(x[2], x[3]), t3 = _mm256_unpackhi_ps(x[2], x[3]);
    col[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    col[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    col[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    col[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* C = A B^T for outputs 0 .. 8NB-1 (NB blocks of 8) and R rows: lane u of block i is output
 * 8i + u, one chain per inner block; NB * R chains at once hide the FMA latency. The small
 * loops are unrolled so that the accumulators stay in registers. */
ROWS_AVX2_INLINE void nt_outputs(float *c, int64_t ldc, const float *a, int64_t lda, const int R,
                                 const float *b, int64_t ldb, int K, float alpha, int beta1,
                                 const int NB) {
    __m256 cv[2][LRSA_SGEMM_ROWS_MAX];
    const __m256 al = _mm256_set1_ps(alpha);
#pragma GCC unroll 6
    for (int i = 0; i < NB * R; i++)
        cv[i / R][i % R] =
            beta1 ? _mm256_loadu_ps(c + (i % R) * ldc + 8 * (i / R)) : _mm256_setzero_ps();
    for (int k0 = 0, kb; k0 < K; k0 += kb) {
        kb = k_block(K - k0);
        __m256 acc[2][LRSA_SGEMM_ROWS_MAX];
#pragma GCC unroll 6
        for (int i = 0; i < NB * R; i++) acc[i / R][i % R] = _mm256_setzero_ps();
        int k = k0;
        for (; k + 4 <= k0 + kb; k += 4) {
            __m256 col[2][4];
#pragma GCC unroll 2
            for (int i = 0; i < NB; i++) b_columns4(b + 8 * i * ldb + k, ldb, col[i]);
#pragma GCC unroll 4
            for (int x = 0; x < 4; x++)
#pragma GCC unroll 3
                for (int r = 0; r < R; r++) {
                    const __m256 ax = _mm256_broadcast_ss(a + r * lda + k + x);
#pragma GCC unroll 2
                    for (int i = 0; i < NB; i++)
                        acc[i][r] = _mm256_fmadd_ps(ax, col[i][x], acc[i][r]);
                }
        }
        for (; k < k0 + kb; k++)
#pragma GCC unroll 2
            for (int i = 0; i < NB; i++) {
                const float *bk = b + 8 * i * ldb + k;
                const __m256 col = _mm256_set_ps(bk[7 * ldb], bk[6 * ldb], bk[5 * ldb], bk[4 * ldb],
                                                 bk[3 * ldb], bk[2 * ldb], bk[ldb], bk[0]);
#pragma GCC unroll 3
                for (int r = 0; r < R; r++)
                    acc[i][r] =
                        _mm256_fmadd_ps(_mm256_broadcast_ss(a + r * lda + k), col, acc[i][r]);
            }
#pragma GCC unroll 6
        for (int i = 0; i < NB * R; i++)
            cv[i / R][i % R] = _mm256_fmadd_ps(acc[i / R][i % R], al, cv[i / R][i % R]);
    }
#pragma GCC unroll 6
    for (int i = 0; i < NB * R; i++)
        _mm256_storeu_ps(c + (i % R) * ldc + 8 * (i / R), cv[i / R][i % R]);
}

/* Outputs 0 .. 8NB-1 for `rows` rows, with R a constant in each call. */
ROWS_AVX2_INLINE void nt_block(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                               const float *b, int64_t ldb, int K, float alpha, int beta1,
                               const int NB) {
    if (rows == 3)
        nt_outputs(c, ldc, a, lda, 3, b, ldb, K, alpha, beta1, NB);
    else if (rows == 2)
        nt_outputs(c, ldc, a, lda, 2, b, ldb, K, alpha, beta1, NB);
    else
        nt_outputs(c, ldc, a, lda, 1, b, ldb, K, alpha, beta1, NB);
}

ROWS_AVX2 static void nt_avx2(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                              const float *b, int64_t ldb, int64_t n, int K, float alpha,
                              int beta1) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        nt_block(c + j, ldc, a, lda, rows, b + j * ldb, ldb, K, alpha, beta1, 2);
    for (; j + 8 <= n; j += 8)
        nt_block(c + j, ldc, a, lda, rows, b + j * ldb, ldb, K, alpha, beta1, 1);
    if (j < n) nt_plain(c + j, ldc, a, lda, rows, b + j * ldb, ldb, n - j, K, alpha, beta1);
}

/* Columns c0 .. c0 + 8W - 1 of C += A B for R rows: per element a chain over each inner block
 * (the columns across the lanes, each B row loaded once for all rows), then added to C. */
ROWS_AVX2_INLINE void nn_cols(float *c, int64_t ldc, const float *a, int64_t lda, const int R,
                              const float *b, int64_t ldb, int K, int c0, const int W) {
    for (int k0 = 0, kb; k0 < K; k0 += kb) {
        kb = k_block(K - k0);
        __m256 t[LRSA_SGEMM_ROWS_MAX][4];
#pragma GCC unroll 3
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int w = 0; w < W; w++) t[r][w] = _mm256_setzero_ps();
        for (int k = k0; k < k0 + kb; k++) {
            const float *bk = b + k * ldb + c0;
            __m256 bv[4];
#pragma GCC unroll 4
            for (int w = 0; w < W; w++) bv[w] = _mm256_loadu_ps(bk + 8 * w);
#pragma GCC unroll 3
            for (int r = 0; r < R; r++) {
                const __m256 ar = _mm256_broadcast_ss(a + r * lda + k);
#pragma GCC unroll 4
                for (int w = 0; w < W; w++) t[r][w] = _mm256_fmadd_ps(ar, bv[w], t[r][w]);
            }
        }
#pragma GCC unroll 3
        for (int r = 0; r < R; r++)
#pragma GCC unroll 4
            for (int w = 0; w < W; w++) {
                float *cr = c + r * ldc + c0 + 8 * w;
                _mm256_storeu_ps(cr, _mm256_add_ps(t[r][w], _mm256_loadu_ps(cr)));
            }
    }
}

ROWS_AVX2_INLINE void nn_cols_rows(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                                   const float *b, int64_t ldb, int K, int c0, const int W) {
    if (rows == 3)
        nn_cols(c, ldc, a, lda, 3, b, ldb, K, c0, W);
    else if (rows == 2)
        nn_cols(c, ldc, a, lda, 2, b, ldb, K, c0, W);
    else
        nn_cols(c, ldc, a, lda, 1, b, ldb, K, c0, W);
}

ROWS_AVX2 static void nn_avx2(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                              const float *b, int64_t ldb, int n, int K) {
    int c0 = 0;
    for (; c0 + 32 <= n; c0 += 32) nn_cols_rows(c, ldc, a, lda, rows, b, ldb, K, c0, 4);
    for (; c0 + 8 <= n; c0 += 8) nn_cols_rows(c, ldc, a, lda, rows, b, ldb, K, c0, 1);
    if (c0 < n) nn_plain(c + c0, ldc, a, lda, rows, b + c0, ldb, n - c0, K);
}

static int have_avx2_fma(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

void lrsa_sgemm_rows_nt(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                        const float *b, int64_t ldb, int64_t n, int K, float alpha, int beta1,
                        lrsa_sgemm_rows_impl impl) {
    LRSA_CHECK(rows >= 1 && rows <= LRSA_SGEMM_ROWS_MAX, "(few-row product: 1 to 3 rows)");
#ifdef ROWS_X86
    if (impl == LRSA_SGEMM_ROWS_AUTO && have_avx2_fma()) {
        nt_avx2(c, ldc, a, lda, rows, b, ldb, n, K, alpha, beta1);
        return;
    }
#endif
    nt_plain(c, ldc, a, lda, rows, b, ldb, n, K, alpha, beta1);
}

void lrsa_sgemm_rows_nt_threaded(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                                 const float *b, int64_t ldb, int64_t n, int K, float alpha,
                                 int beta1) {
    enum { NB = 256 };
    const int64_t nblk = (n + NB - 1) / NB;
    const int threads = lrsa_cpu_threads_for(n, 2 * (int64_t)rows * K);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t i = 0; i < nblk; i++) {
        const int64_t j0 = i * NB, nj = n - j0 < NB ? n - j0 : NB;
        lrsa_sgemm_rows_nt(c + j0, ldc, a, lda, rows, b + j0 * ldb, ldb, nj, K, alpha, beta1,
                           LRSA_SGEMM_ROWS_AUTO);
    }
}

void lrsa_sgemm_rows_nn(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                        const float *b, int64_t ldb, int n, int K, lrsa_sgemm_rows_impl impl) {
    LRSA_CHECK(rows >= 1 && rows <= LRSA_SGEMM_ROWS_MAX, "(few-row product: 1 to 3 rows)");
#ifdef ROWS_X86
    if (impl == LRSA_SGEMM_ROWS_AUTO && have_avx2_fma()) {
        nn_avx2(c, ldc, a, lda, rows, b, ldb, n, K);
        return;
    }
#endif
    nn_plain(c, ldc, a, lda, rows, b, ldb, n, K);
}
