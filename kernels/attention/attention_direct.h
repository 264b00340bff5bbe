/* The two products of a forward key tile of the attention engine (attention_tile.h), with a
 * direct path for blocks of very few stacked query rows: a decode step (one position, G query
 * heads per KV head) or the last, short block of a sequence.
 *
 * Why: at 3 rows the two [rows x 128] SGEMMs per key tile spend their time packing and in
 * edge kernels, not streaming the cache; decoding after 8K tokens ran its cached attention at
 * about 3 GB/s of K/V. The direct path reads each K row once for all rows of the block (dot
 * products, the key index across the vector lanes) and adds each V row into the accumulators
 * (the output dims across the lanes), AVX2 + FMA where the CPU has them (chosen at run time, the
 * build stays generic x86-64), plain C with fmaf otherwise.
 *
 * Numerics: the operations and their order are those of OpenBLAS's Haswell/Zen SGEMM kernel at
 * up to 3 rows (measured, docs/ATTENTION.md): every product element is one FMA chain from zero
 * over the inner index in order, then C = alpha * chain + 0 (beta 0) or C + 1 * chain (beta 1).
 * Both paths (AVX2, plain) give the same bits; on a machine where OpenBLAS uses that kernel they
 * are also the bits of the SGEMMs they replace (tests/attention/test_attention_direct.c checks
 * which holds and says so). */
#ifndef LRSA_KERNELS_ATTENTION_DIRECT_H
#define LRSA_KERNELS_ATTENTION_DIRECT_H
#include <stdint.h>

/* Most stacked rows the direct path takes: where OpenBLAS's kernel is still one FMA chain per
 * element (from 4 rows on it sums in another order, so the direct path would change bits). */
enum { LRSA_ATTN_DIRECT_MAX_ROWS = 3 };

/* Which code computes a direct product: the AVX2 + FMA one when the CPU has both (AUTO), or
 * the plain C one (for tests; the same bits). */
typedef enum { LRSA_ATTN_DIRECT_AUTO, LRSA_ATTN_DIRECT_PLAIN } lrsa_attn_direct_impl;

/* s[r * s_ld + j] = scale * (q_r . k_j) + 0 for r < rows, j < nk: q row r at q + r * D, key j at
 * k + j * k_ld. As cblas_sgemm(RowMajor, NoTrans, Trans, rows, nk, D, scale, q, D, k, k_ld, 0,
 * s, s_ld). rows <= LRSA_ATTN_DIRECT_MAX_ROWS. */
void lrsa_attn_direct_scores(float *s, int s_ld, const float *q, int rows, const float *k,
                             int64_t k_ld, int nk, int D, float scale, lrsa_attn_direct_impl impl);

/* acc[r * D + c] += sum over j < nk of p[r * p_ld + j] * v[j * v_ld + c], the sum a chain
 * added once: as cblas_sgemm(RowMajor, NoTrans, NoTrans, rows, D, nk, 1, p, p_ld, v, v_ld, 1,
 * acc, D). rows <= LRSA_ATTN_DIRECT_MAX_ROWS. */
void lrsa_attn_direct_pv(float *acc, const float *p, int p_ld, int rows, const float *v,
                         int64_t v_ld, int nk, int D, lrsa_attn_direct_impl impl);

/* The tile engine's two forward products: the direct path for rows <= LRSA_ATTN_DIRECT_MAX_ROWS,
 * cblas_sgemm otherwise (same arguments as the two functions above). */
void lrsa_attn_tile_scores(float *s, int s_ld, const float *q, int rows, const float *k,
                           int64_t k_ld, int nk, int D, float scale);
void lrsa_attn_tile_pv(float *acc, const float *p, int p_ld, int rows, const float *v, int64_t v_ld,
                       int nk, int D);
#endif
