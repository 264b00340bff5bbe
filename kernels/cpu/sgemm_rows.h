/* Matrix products with very few rows on the left (1 to 3: a decode step's linear layers and LM
 * head, the attention tiles of one position), which OpenBLAS's SGEMM runs far below the memory
 * bandwidth (it packs the whole right-hand matrix first): 4 GB/s for the LM head of one token
 * where a plain stream reaches 11 (docs/KERNELS.md, "Few-row products").
 *
 * The right-hand matrix is streamed once: for C = A B^T its rows are read 16 at a time with the
 * row index across the vector lanes (in-lane 4x4 transposes), for C += A B each of its rows is
 * added into the accumulators with the columns across the lanes. AVX2 + FMA when the CPU has
 * them (chosen at run time; the build stays generic x86-64), plain C with fmaf otherwise.
 *
 * Numerics: the order of OpenBLAS's SGEMM driver and kernel on the machine this was measured on
 * (Debian 12's OpenBLAS 0.3.21, Zen core), checked element by element: the inner index is cut
 * into blocks (LRSA_SGEMM_ROWS_KBLOCK while twice that remains, then half the rest rounded up
 * to 16, then the rest); per block each element is one FMA chain from zero in index order, and
 * C = fma(alpha, chain, C), C starting at +0 (beta 0) or at its value (beta 1). Both paths give
 * the same bits; where OpenBLAS runs that kernel they are also the bits of cblas_sgemm, so
 * switching to them changed no result (tests/kernels/test_sgemm_rows.c reports which holds). */
#ifndef LRSA_KERNELS_CPU_SGEMM_ROWS_H
#define LRSA_KERNELS_CPU_SGEMM_ROWS_H
#include <stdint.h>

/* Most left-hand rows: up to 3 OpenBLAS's kernel keeps one chain per element; from 4 rows on
 * it sums in another order, so this path would change bits. The inner-index block (the
 * driver's GEMM_Q on that core). */
enum { LRSA_SGEMM_ROWS_MAX = 3, LRSA_SGEMM_ROWS_KBLOCK = 320 };

/* Which code: the AVX2 + FMA one when the CPU has both (AUTO), or plain C (tests). */
typedef enum { LRSA_SGEMM_ROWS_AUTO, LRSA_SGEMM_ROWS_PLAIN } lrsa_sgemm_rows_impl;

/* C[r, j] = (beta1 ? C[r, j] : +0) + alpha * sum_k A[r, k] B[j, k] for r < rows, j < n (in the
 * order above): cblas_sgemm(RowMajor, NoTrans, Trans, rows, n, K, alpha, A, lda, B, ldb,
 * beta1 ? 1 : 0, C, ldc). rows <= LRSA_SGEMM_ROWS_MAX. One thread. */
void lrsa_sgemm_rows_nt(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                        const float *b, int64_t ldb, int64_t n, int K, float alpha, int beta1,
                        lrsa_sgemm_rows_impl impl);

/* The same, threaded over blocks of 256 of the n outputs (the process's thread count,
 * kernels/cpu/cpu_threads.h; the blocks do not depend on it, nor do the bits). */
void lrsa_sgemm_rows_nt_threaded(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                                 const float *b, int64_t ldb, int64_t n, int K, float alpha,
                                 int beta1);

/* C[r, j] += sum_k A[r, k] B[k, j] for r < rows, j < n: cblas_sgemm(RowMajor, NoTrans, NoTrans,
 * rows, n, K, 1, A, lda, B, ldb, 1, C, ldc). rows <= LRSA_SGEMM_ROWS_MAX. One thread. */
void lrsa_sgemm_rows_nn(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                        const float *b, int64_t ldb, int n, int K, lrsa_sgemm_rows_impl impl);
#endif
