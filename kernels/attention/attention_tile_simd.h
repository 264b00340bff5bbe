/* AVX2+FMA tile products of the CPU attention (attention_tile.h), used in place of the
 * cblas_sgemm calls per key tile (two in the forward, five in the backward) when the CPU has
 * AVX2 and FMA and D is a multiple of 8 (and at most 256).
 *
 * Why: every tile product through cblas_sgemm re-packs the block's queries (the same G*nq x D
 * rows for every key tile) and pays OpenBLAS's per-call set-up; these kernels read the packed
 * queries in place, pack only the key tile (transposed, once per tile for all stacked rows) and
 * read V rows and the backward's probability and dS tiles (as rows or as columns) in place.
 *
 * Same bits as OpenBLAS: each output element is summed in the order OpenBLAS 0.3.21's
 * single-threaded Haswell/Zen SGEMM (sgemm_kernel_8x4_haswell_2.c behind driver/level3) uses
 * for the same call, described by lrsa_attn_blas_two_chain below, then stored as
 * alpha * sum + C in one FMA like its store (K split into blocks of up to 320 terms, each
 * stored in turn, as its driver does past 320 terms; the D side is never split, so the callers
 * keep D <= 256: from D = 328 on the driver's order differs). So on machines where OpenBLAS runs
 * that kernel (this project's CI VM: "Zen") the attention gives the same bits with either path;
 * elsewhere both are correctly ordered fp32 sums that differ in the last bits. */
#ifndef LRSA_KERNELS_ATTENTION_TILE_SIMD_H
#define LRSA_KERNELS_ATTENTION_TILE_SIMD_H
#include <stdint.h>

/* 1 when the CPU has AVX2 and FMA and LRSA_ATTN_PORTABLE is unset or "0". */
int lrsa_attn_simd_available(void);

/* Summation order of element (r, n) of a column-major SGEMM of kernel size Mk x Nk (the
 * row-major call's N x M) in OpenBLAS's Haswell kernel: 0 = one FMA chain over k = 0..K-1;
 * 1 = two chains, even and odd k over the first 8*floor(K/8) terms (the rest continuing the
 * even chain), added at the end. Columns come in groups of 12 (two halves of 6, "L" and "R")
 * while 12 remain, then groups of 4, then the last 1-3; rows in panels of 8. Two chains are
 * used by the 8x6 kernels that start and end the staggered 16x6 sweep (the L half's first
 * panel and the last full panel of the half that lags) and by the 8x4 kernel. */
static inline int lrsa_attn_blas_two_chain(int r, int n, int Mk, int Nk) {
    const int F = Mk / 8, N12 = 12 * (Nk / 12);
    if (r >= 8 * F) return 0;
    if (n < N12) {
        if (Mk < 16) return 0;
        const int left = (n % 12) < 6, p = r / 8, lag_left = F % 2 == 0;
        return (left && p == 0) || (p == F - 1 && left == lag_left);
    }
    return n - N12 < 4 * ((Nk - N12) / 4);
}

/* Rows that a product asks the L2 cache for while it works: rows[r * ld + 0 .. width) for
 * r < n, prefetched line by line, spread evenly over the product's register blocks. The forward
 * passes the V tile to the score product and the next K tile to P V, so that neither arrives
 * from L3 when its product starts (measured on Zen 3: docs/KERNELS.md). n == 0: nothing.
 * Prefetches change no value. */
typedef struct lrsa_attn_pf {
    const float *rows;
    int64_t ld;
    int n, width;
} lrsa_attn_pf;

/* s[i * sld + j] = alpha * q_i . k_j for i < M, j < nk, where q_i = q + i * D (packed rows)
 * and k_j = k + j * ld; columns nk .. roundup(nk, 8) - 1 of s are written with zeros.
 * kt: scratch of D * roundup(nk, 8) floats (the key tile transposed, panel by panel of 8 keys). The
 * order is cblas_sgemm(RowMajor, NoTrans, Trans, M, nk, D, alpha, q, D, k, ld, 0, s, sld)'s. Needs
 * nk <= sld and roundup(nk, 8) <= sld. */
void lrsa_attn_scores_avx2(const float *q, int M, int D, const float *k, int64_t ld, int nk,
                           float alpha, float *s, int sld, float *kt, lrsa_attn_pf pf);

/* c[i * ldc + col] += alpha * sum_k a[i * lda + k] b[k * ldb + col] for i < M, col < D
 * (D % 8 == 0), in the order of cblas_sgemm(RowMajor, NoTrans, NoTrans, M, D, K, alpha, a, lda,
 * b, ldb, 1, c, ldc): the forward's acc += P V (alpha 1) and the backward's dQ += scale dS K. */
void lrsa_attn_nn_avx2(const float *a, int lda, int M, int K, const float *b, int64_t ldb, int D,
                       float alpha, float *c, int64_t ldc, lrsa_attn_pf pf);

/* c[j * ldc + col] += alpha * sum_k a[k * lda + j] b[k * ldb + col] for j < N, col < D
 * (D % 8 == 0): A stored transposed ([K x N], lda apart), in the order of
 * cblas_sgemm(RowMajor, Trans, NoTrans, N, D, K, alpha, a, lda, b, ldb, 1, c, ldc): the
 * backward's dV += P^T dout (alpha 1) and dK += scale dS^T Q, read from the tiles in place. */
void lrsa_attn_tn_avx2(const float *a, int lda, int N, int K, const float *b, int64_t ldb, int D,
                       float alpha, float *c, int64_t ldc);
#endif
