/* AVX2+FMA tile products of the attention forward (attention_tile_simd.h). Compiled for the
 * generic x86-64 target like the rest of the project: only the functions marked LRSA_AVX2_FMA
 * use AVX2/FMA instructions, and callers reach them after lrsa_attn_simd_available().
 *
 * Register blocks: 6 stacked query rows x 16 columns (12 accumulators, one chain per element)
 * or 6 x 8 with a second set of accumulators for the two-chain elements. The 6 rows match the
 * halves of OpenBLAS's 12-column groups, so one block never mixes summation orders. */
#include "kernels/attention/attention_tile_simd.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define LRSA_AVX2_FMA __attribute__((target("avx2,fma")))

int lrsa_attn_simd_available(void) {
    const char *off = getenv("LRSA_ATTN_PORTABLE");
    if (off && off[0] && strcmp(off, "0") != 0) return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* The prefetches of pf due once `done` of the product's `total` rows are finished: rows
 * [*next, n * done / total), each from its first to its last cache line. */
static void prefetch_due(const lrsa_attn_pf *pf, int *next, int done, int total) {
    const int due = (int)((int64_t)pf->n * done / total);
    for (; *next < due; (*next)++) {
        const float *row = pf->rows + *next * pf->ld;
        const uintptr_t first = (uintptr_t)row >> 6, last = ((uintptr_t)(row + pf->width) - 1) >> 6;
        for (uintptr_t line = first; line <= last; line++)
            _mm_prefetch((const char *)(line << 6), _MM_HINT_T1);
    }
}

/* The stacked rows of one register block: 6 in OpenBLAS's 12-column groups, then 4, then the
 * last 1-3 (rows past the end repeat row 0 and are not stored). */
static int block_rows(int i, int M) {
    const int N12 = 12 * (M / 12), N4 = N12 + 4 * ((M - N12) / 4);
    return i < N12 ? 6 : i < N4 ? 4 : M - i;
}

/* c[r][0..1] = sum_k a[r][k*as] * b[k*bs + 0..15], one FMA chain per element from k = 0.
 * Inlined so that the common as == 1 compiles to unit-stride loads. */
LRSA_AVX2_FMA static inline __attribute__((always_inline)) void
block_6x16(const float *const a[6], int64_t as, const float *b, int64_t bs, int64_t b1off, int K,
           __m256 c[12]) {
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    __m256 c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int k = 0; k < K; k++) {
        const int64_t ka = k * as;
        const __m256 b0 = _mm256_loadu_ps(b + k * bs), b1 = _mm256_loadu_ps(b + k * bs + b1off);
        __m256 x = _mm256_broadcast_ss(a0 + ka);
        c0 = _mm256_fmadd_ps(x, b0, c0);
        c1 = _mm256_fmadd_ps(x, b1, c1);
        x = _mm256_broadcast_ss(a1 + ka);
        c2 = _mm256_fmadd_ps(x, b0, c2);
        c3 = _mm256_fmadd_ps(x, b1, c3);
        x = _mm256_broadcast_ss(a2 + ka);
        c4 = _mm256_fmadd_ps(x, b0, c4);
        c5 = _mm256_fmadd_ps(x, b1, c5);
        x = _mm256_broadcast_ss(a3 + ka);
        c6 = _mm256_fmadd_ps(x, b0, c6);
        c7 = _mm256_fmadd_ps(x, b1, c7);
        x = _mm256_broadcast_ss(a4 + ka);
        c8 = _mm256_fmadd_ps(x, b0, c8);
        c9 = _mm256_fmadd_ps(x, b1, c9);
        x = _mm256_broadcast_ss(a5 + ka);
        c10 = _mm256_fmadd_ps(x, b0, c10);
        c11 = _mm256_fmadd_ps(x, b1, c11);
    }
    c[0] = c0, c[1] = c1, c[2] = c2, c[3] = c3, c[4] = c4, c[5] = c5;
    c[6] = c6, c[7] = c7, c[8] = c8, c[9] = c9, c[10] = c10, c[11] = c11;
}

/* c[r] = sum_k a[r][k*as] * b[k*bs + 0..7]: one chain (two == 0) or, with two, even and odd k
 * in two chains over the first 8*floor(K/8) terms, the rest on the even one, added at the end. */
LRSA_AVX2_FMA static inline __attribute__((always_inline)) void
block_6x8(const float *const a[6], int64_t as, const float *b, int64_t bs, int K, int two,
          __m256 c[6]) {
    __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, e4 = e0, e5 = e0;
    __m256 o0 = e0, o1 = e0, o2 = e0, o3 = e0, o4 = e0, o5 = e0;
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    int k = 0;
    if (two)
        for (; k < 8 * (K / 8); k += 2) {
            const int64_t ke = k * as, ko = ke + as;
            const __m256 be = _mm256_loadu_ps(b + k * bs), bo = _mm256_loadu_ps(b + (k + 1) * bs);
            e0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + ke), be, e0);
            e1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + ke), be, e1);
            e2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + ke), be, e2);
            e3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + ke), be, e3);
            e4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + ke), be, e4);
            e5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + ke), be, e5);
            o0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + ko), bo, o0);
            o1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + ko), bo, o1);
            o2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + ko), bo, o2);
            o3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + ko), bo, o3);
            o4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + ko), bo, o4);
            o5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + ko), bo, o5);
        }
    for (; k < K; k++) {
        const int64_t ka = k * as;
        const __m256 be = _mm256_loadu_ps(b + k * bs);
        e0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0 + ka), be, e0);
        e1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1 + ka), be, e1);
        e2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2 + ka), be, e2);
        e3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3 + ka), be, e3);
        e4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a4 + ka), be, e4);
        e5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a5 + ka), be, e5);
    }
    if (two) { /* OpenBLAS adds the odd set even when it stayed zero (K < 8): -0 becomes +0 */
        e0 = _mm256_add_ps(e0, o0), e1 = _mm256_add_ps(e1, o1), e2 = _mm256_add_ps(e2, o2);
        e3 = _mm256_add_ps(e3, o3), e4 = _mm256_add_ps(e4, o4), e5 = _mm256_add_ps(e5, o5);
    }
    c[0] = e0, c[1] = e1, c[2] = e2, c[3] = e3, c[4] = e4, c[5] = e5;
}

/* Row pointers of a block of `rows` (<= 6) rows, ld apart; missing rows repeat row 0. */
static void block_row_ptrs(const float *a[6], const float *a_first, int64_t ld, int rows) {
    for (int r = 0; r < 6; r++) a[r] = a_first + (r < rows ? r : 0) * ld;
}

/* kt[(j / 8 * D + d) * 8 + j % 8] = k[j * ld + d] for d < D (a multiple of 8), j < nk; zeros
 * for j in [nk, nk8): panel-major, so that a block's 8 keys of one d are 32 contiguous bytes and
 * a panel is D * 32 contiguous bytes. 8 x 8 blocks transposed in registers. */
LRSA_AVX2_FMA static void pack_keys_transposed(float *kt, const float *k, int64_t ld, int nk,
                                               int D) {
    const int nk8 = (nk + 7) & ~7;
    int j0 = 0;
    for (; j0 + 8 <= nk; j0 += 8)
        for (int d0 = 0; d0 < D; d0 += 8) {
            const float *src = k + j0 * ld + d0;
            __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld);
            __m256 r2 = _mm256_loadu_ps(src + 2 * ld), r3 = _mm256_loadu_ps(src + 3 * ld);
            __m256 r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld);
            __m256 r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
            float *dst = kt + ((int64_t)(j0 / 8) * D + d0) * 8;
            _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(dst + 16, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(dst + 24, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(dst + 32, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(dst + 40, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(dst + 48, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(dst + 56, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    for (int d = 0; d < D; d++)
        for (int j = j0; j < nk8; j++)
            kt[((int64_t)(j / 8) * D + d) * 8 + j % 8] = j < nk ? k[j * ld + d] : 0.0f;
}

LRSA_AVX2_FMA void lrsa_attn_scores_avx2(const float *q, int M, int D, const float *k, int64_t ld,
                                         int nk, float alpha, float *s, int sld, float *kt,
                                         lrsa_attn_pf pf) {
    const int npanel = (nk + 7) / 8;
    pack_keys_transposed(kt, k, ld, nk, D);
    const __m256 va = _mm256_set1_ps(alpha), zero = _mm256_setzero_ps();
    int pf_next = 0;
    for (int i = 0; i < M;) {
        const int rows = block_rows(i, M);
        prefetch_due(&pf, &pf_next, i + rows, M);
        const float *a[6];
        block_row_ptrs(a, q + (int64_t)i * D, D, rows);
        for (int p = 0; p < npanel;) {
            __m256 c[12];
            /* OpenBLAS sees this product as an nk x M column-major one: keys are its rows */
            int two = lrsa_attn_blas_two_chain(8 * p, i, nk, M);
            int wide = !two && p + 1 < npanel && !lrsa_attn_blas_two_chain(8 * p + 8, i, nk, M);
            if (wide)
                block_6x16(a, 1, kt + (int64_t)8 * p * D, 8, 8 * D, D, c);
            else
                block_6x8(a, 1, kt + (int64_t)8 * p * D, 8, D, two, c);
            for (int r = 0; r < rows; r++) {
                float *srow = s + (int64_t)(i + r) * sld + 8 * p;
                if (wide) {
                    _mm256_storeu_ps(srow, _mm256_fmadd_ps(va, c[2 * r], zero));
                    _mm256_storeu_ps(srow + 8, _mm256_fmadd_ps(va, c[2 * r + 1], zero));
                } else {
                    _mm256_storeu_ps(srow, _mm256_fmadd_ps(va, c[r], zero));
                }
            }
            p += wide ? 2 : 1;
        }
        i += rows;
    }
}

/* The K terms from k0 on that one call of OpenBLAS's kernel sums: the driver (level3.c) splits
 * K into blocks of GEMM_Q = 320 terms (Zen/Haswell sgemm) when at least 2 * GEMM_Q remain, and
 * the last K in (GEMM_Q, 2 GEMM_Q) into two halves, the first rounded up to 8; each block's sum
 * is stored (alpha * sum + C) before the next starts. */
static int blas_k_block(int k0, int K) {
    const int Q = 320, U = 8, rest = K - k0;
    if (rest >= 2 * Q) return Q;
    if (rest > Q) return (rest / 2 + U - 1) / U * U;
    return rest;
}

/* c[i * ldc + col] = alpha * sum_k A(i, k) b[k * ldb + col] + c[i * ldc + col] for i < n,
 * col < D (D % 8 == 0), with A(i, k) = a[i * ai + k * ak]: the order of the row-major
 * cblas_sgemm of C[n x D] += alpha A B with beta 1, which OpenBLAS runs as a D x n column-major
 * product (channels are its rows, the n output rows its columns). Inlined so that ak == 1
 * (A's rows in place) and ak == lda (A stored transposed) each get their own loads. */
LRSA_AVX2_FMA static inline __attribute__((always_inline)) void
products_acc(const float *a, int64_t ai, int64_t ak, int n, int K, const float *b, int64_t ldb,
             int D, float alpha, float *c, int64_t ldc, lrsa_attn_pf pf) {
    const int npanel = D / 8;
    int pf_next = 0;
    const __m256 va = _mm256_set1_ps(alpha);
    for (int k0 = 0; k0 < K;) {
        const int kb = blas_k_block(k0, K);
        const float *ak0 = a + k0 * ak, *bk0 = b + k0 * ldb;
        for (int i = 0; i < n;) {
            const int rows = block_rows(i, n);
            if (k0 == 0) prefetch_due(&pf, &pf_next, i + rows, n);
            const float *ar[6];
            block_row_ptrs(ar, ak0 + i * ai, ai, rows);
            for (int cp = 0; cp < npanel;) {
                __m256 acc[12];
                int two = lrsa_attn_blas_two_chain(8 * cp, i, D, n);
                int wide =
                    !two && cp + 1 < npanel && !lrsa_attn_blas_two_chain(8 * cp + 8, i, D, n);
                if (wide)
                    block_6x16(ar, ak, bk0 + 8 * cp, ldb, 8, kb, acc);
                else
                    block_6x8(ar, ak, bk0 + 8 * cp, ldb, kb, two, acc);
                for (int r = 0; r < rows; r++) {
                    float *crow = c + (int64_t)(i + r) * ldc + 8 * cp;
                    if (wide) {
                        _mm256_storeu_ps(crow,
                                         _mm256_fmadd_ps(va, acc[2 * r], _mm256_loadu_ps(crow)));
                        _mm256_storeu_ps(crow + 8, _mm256_fmadd_ps(va, acc[2 * r + 1],
                                                                   _mm256_loadu_ps(crow + 8)));
                    } else {
                        _mm256_storeu_ps(crow, _mm256_fmadd_ps(va, acc[r], _mm256_loadu_ps(crow)));
                    }
                }
                cp += wide ? 2 : 1;
            }
            i += rows;
        }
        k0 += kb;
    }
}

LRSA_AVX2_FMA void lrsa_attn_nn_avx2(const float *a, int lda, int M, int K, const float *b,
                                     int64_t ldb, int D, float alpha, float *c, int64_t ldc,
                                     lrsa_attn_pf pf) {
    products_acc(a, lda, 1, M, K, b, ldb, D, alpha, c, ldc, pf);
}

LRSA_AVX2_FMA void lrsa_attn_tn_avx2(const float *a, int lda, int N, int K, const float *b,
                                     int64_t ldb, int D, float alpha, float *c, int64_t ldc) {
    const lrsa_attn_pf none = {0};
    products_acc(a, 1, lda, N, K, b, ldb, D, alpha, c, ldc, none);
}

#else /* not x86-64 gcc/clang: the cblas path only */
int lrsa_attn_simd_available(void) {
    return 0;
}
void lrsa_attn_scores_avx2(const float *q, int M, int D, const float *k, int64_t ld, int nk,
                           float alpha, float *s, int sld, float *kt, lrsa_attn_pf pf) {
    (void)q, (void)M, (void)D, (void)k, (void)ld, (void)nk, (void)alpha, (void)s, (void)sld;
    (void)kt, (void)pf;
    abort();
}
void lrsa_attn_nn_avx2(const float *a, int lda, int M, int K, const float *b, int64_t ldb, int D,
                       float alpha, float *c, int64_t ldc, lrsa_attn_pf pf) {
    (void)a, (void)lda, (void)M, (void)K, (void)b, (void)ldb, (void)D, (void)alpha, (void)c;
    (void)ldc, (void)pf;
    abort();
}
void lrsa_attn_tn_avx2(const float *a, int lda, int N, int K, const float *b, int64_t ldb, int D,
                       float alpha, float *c, int64_t ldc) {
    (void)a, (void)lda, (void)N, (void)K, (void)b, (void)ldb, (void)D, (void)alpha, (void)c;
    (void)ldc;
    abort();
}
#endif
