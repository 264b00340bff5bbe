/* Tile engine for CPU attention (attention_tile.h): SGEMMs on [G*nq x BK] tiles of stacked
 * query heads plus a vectorised online softmax. */
#include "kernels/attention/attention_tile.h"
#include "kernels/attention/attention_tile_simd.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/cpu/cpu_clones.h"
#include "kernels/cpu/sgemm_rows.h"
#include "kernels/cpu/vexp.h"
#include "kernels/cpu/vexp_avx2.h"
#include "kernels/cpu/vrow.h"

int lrsa_attn_block_positions(int G) {
    int p = LRSA_ATTN_MAX_ROWS / (G > 0 ? G : 1);
    if (p > LRSA_ATTN_BQ) p = LRSA_ATTN_BQ;
    return p > 0 ? p : 1;
}

void lrsa_attn_scratch_init(lrsa_attn_scratch *w, int rows, int D) {
    w->rows = rows > 0 ? rows : 1;
    w->D = D > 0 ? D : 1;
    size_t rd = sizeof(float) * (size_t)w->rows * (size_t)w->D;
    size_t rk = sizeof(float) * (size_t)w->rows * LRSA_ATTN_BK;
    w->q = lrsa_alloc_aligned(rd);
    w->o = lrsa_alloc_aligned(rd);
    w->acc = lrsa_alloc_aligned(rd);
    w->s = lrsa_alloc_aligned(rk);
    w->dp = lrsa_alloc_aligned(rk);
    w->m = lrsa_alloc_aligned(sizeof(float) * (size_t)w->rows);
    w->l = lrsa_alloc_aligned(sizeof(float) * (size_t)w->rows);
    w->delta = lrsa_alloc_aligned(sizeof(float) * (size_t)w->rows);
    w->kt = lrsa_alloc_aligned(sizeof(float) * (size_t)w->D * LRSA_ATTN_BK);
#ifdef LRSA_HAVE_VEXP_AVX2
    w->avx2 = lrsa_attn_simd_available();
#else
    w->avx2 = 0;
#endif
}

void lrsa_attn_scratch_free(lrsa_attn_scratch *w) {
    free(w->q);
    free(w->o);
    free(w->acc);
    free(w->s);
    free(w->dp);
    free(w->m);
    free(w->l);
    free(w->delta);
    free(w->kt);
    memset(w, 0, sizeof(*w));
}

void lrsa_attn_zero_rows(float *x, int64_t ld, int64_t n, int D) {
    for (int64_t r = 0; r < n; r++) memset(x + r * ld, 0, sizeof(float) * (size_t)D);
}

/* Number of keys of the segment that any of the rows up to qpos_last can see. */
static int seg_visible_len(const lrsa_attn_seg *sg, int64_t qpos_last) {
    if (!sg->causal) return sg->n;
    int64_t lim = qpos_last - sg->pos0 + 1;
    if (lim <= 0) return 0;
    return lim < sg->n ? (int)lim : sg->n;
}

/* Last visible column (exclusive) of the query at position qp within the key tile starting at
 * segment row j0 of width nk. */
static int row_limit(const lrsa_attn_seg *sg, int64_t qp, int j0, int nk) {
    if (!sg->causal) return nk;
    int64_t lim = qp - (sg->pos0 + j0) + 1;
    if (lim <= 0) return 0;
    return lim < nk ? (int)lim : nk;
}

/* Packs rows of the G heads of a block (head-major: row j*nq + t) into dst [G*nq, D]. */
static void pack_rows(float *dst, const float *src, int64_t ld, int nq, int G, int D) {
    for (int j = 0; j < G; j++)
        for (int t = 0; t < nq; t++)
            memcpy(dst + ((int64_t)j * nq + t) * D, src + t * ld + (int64_t)j * D,
                   sizeof(float) * (size_t)D);
}

/* s[j] = e^(s[j] - sub) for j < n. */
LRSA_INLINE_HELPER void exp_shifted(float *s, int n, float sub) {
#pragma omp simd
    for (int j = 0; j < n; j++) s[j] = lrsa_vexpf(s[j] - sub);
}

LRSA_INLINE_HELPER void scale_row(float *x, int n, float a) {
#pragma omp simd
    for (int c = 0; c < n; c++) x[c] *= a;
}

/* One row's online-softmax step over a score tile: srow[0..lim) are its visible scores,
 * srow[lim..nk) are masked. srow becomes the unnormalised probabilities (0 where masked);
 * (m, l) are updated and the row's accumulator is rescaled to the new maximum. */
LRSA_INLINE_HELPER void online_row(float *srow, int lim, int nk, float *m, float *l, float *arow,
                                   int D) {
    float mx = lrsa_row_max(srow, lim);
    float m_new = (isgreater(mx, *m) || isnan(mx)) ? mx : *m;
    if (m_new == -INFINITY) { /* nothing visible yet: the row stays empty */
        memset(srow, 0, sizeof(float) * (size_t)nk);
        return;
    }
    float alpha = lrsa_vexpf(*m - m_new); /* rescales what was accumulated under the old max */
    exp_shifted(srow, lim, m_new);
    float sum = lrsa_row_sum(srow, lim);
    if (nk > lim) memset(srow + lim, 0, sizeof(float) * (size_t)(nk - lim));
    *l = *l * alpha + sum;
    *m = m_new;
    if (alpha != 1.0f) scale_row(arow, D, alpha);
}

/* The online-softmax step of every row of the score tile of keys j0 .. j0+nk-1 of the segment:
 * most of the forward's time outside the SGEMMs, hence the AVX2 version (cpu_clones.h). */
LRSA_AVX2_CLONES static void online_tile(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb,
                                         const lrsa_attn_seg *sg, int j0, int nk) {
    const int BK = LRSA_ATTN_BK, D = w->D, nq = qb->nq;
    for (int j = 0; j < qb->G; j++)
        for (int t = 0; t < nq; t++) {
            int r = j * nq + t;
            online_row(w->s + (int64_t)r * BK, row_limit(sg, qb->qpos0 + t, j0, nk), nk, &w->m[r],
                       &w->l[r], w->acc + (int64_t)r * D, D);
        }
}

#ifdef LRSA_HAVE_VEXP_AVX2
/* Rows r0 .. r0+7 of the score tile (rows past M repeat row r0 with no visible key): their
 * pointers and visible lengths; returns how many of the eight exist. */
static int rows8(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb, const lrsa_attn_seg *sg, int j0,
                 int nk, int r0, float *srow[8], int lim[8]) {
    const int M = qb->G * qb->nq, nr = M - r0 < 8 ? M - r0 : 8;
    for (int i = 0; i < 8; i++) {
        const int r = r0 + (i < nr ? i : 0);
        srow[i] = w->s + (int64_t)r * LRSA_ATTN_BK;
        lim[i] = i < nr ? row_limit(sg, qb->qpos0 + r % qb->nq, j0, nk) : 0;
    }
    return nr;
}

/* The lanes whose rows lie wholly in the normal range of the exponential around sub
 * (lrsa_vexp_row_normal of each lane), as bits. */
__attribute__((target("avx2"))) static int rows8_normal(__m256 lo, __m256 hi, __m256 sub) {
    const __m256 a =
        _mm256_cmp_ps(_mm256_sub_ps(lo, sub), _mm256_set1_ps(LRSA_VEXP_NORMAL_LO), _CMP_GE_OQ);
    const __m256 b =
        _mm256_cmp_ps(_mm256_sub_ps(hi, sub), _mm256_set1_ps(LRSA_VEXP_NORMAL_HI), _CMP_LE_OQ);
    return _mm256_movemask_ps(_mm256_and_ps(a, b));
}

/* online_tile with the AVX2 row functions of vexp_avx2.h, eight rows at a time: the same steps
 * and bits. Each row's maximum and minimum (which picks the normal-range exponential) come
 * from one pass, folded for the eight rows together; the eight new maxima, rescale factors
 * (lrsa_vexp8_avx2 = lrsa_vexpf lane by lane) and running sums are vector operations; the
 * exponentials are summed as they are stored. */
__attribute__((target("avx2"))) static void online_tile_avx2(lrsa_attn_scratch *w,
                                                             const lrsa_attn_qblock *qb,
                                                             const lrsa_attn_seg *sg, int j0,
                                                             int nk) {
    const int D = w->D, M = qb->G * qb->nq;
    for (int r0 = 0; r0 < M; r0 += 8) {
        float *srow[8], m8[8], alpha8[8];
        int lim[8];
        const int nr = rows8(w, qb, sg, j0, nk, r0, srow, lim);
        const __m256i live = lrsa_avx2_head_mask(nr);
        __m256 lo, mx = lrsa_rows8_max_min_avx2(srow, lim, &lo);
        const __m256 ninf = _mm256_set1_ps(-INFINITY);
        const __m256 m_old =
            _mm256_blendv_ps(ninf, _mm256_maskload_ps(w->m + r0, live), _mm256_castsi256_ps(live));
        /* m_new = (isgreater(mx, m) || isnan(mx)) ? mx : m */
        const __m256 take =
            _mm256_or_ps(_mm256_cmp_ps(mx, m_old, _CMP_GT_OQ), _mm256_cmp_ps(mx, mx, _CMP_UNORD_Q));
        const __m256 m_new = _mm256_blendv_ps(m_old, mx, take);
        const __m256 alpha = lrsa_vexp8_avx2(_mm256_sub_ps(m_old, m_new));
        const __m256 empty = _mm256_cmp_ps(m_new, ninf, _CMP_EQ_OQ); /* nothing visible yet */
        const int normal = rows8_normal(lo, mx, m_new), empty_bits = _mm256_movemask_ps(empty);
        _mm256_storeu_ps(m8, m_new);
        _mm256_storeu_ps(alpha8, alpha);
        __m256 acc[8];
        for (int i = 0; i < 8; i++) {
            acc[i] = _mm256_setzero_ps();
            if (i >= nr) continue;
            if ((empty_bits >> i) & 1) { /* the row stays empty */
                memset(srow[i], 0, sizeof(float) * (size_t)nk);
                continue;
            }
            acc[i] = lrsa_exp_shift_lanes_avx2(srow[i], lim[i], m8[i], (normal >> i) & 1);
            if (nk > lim[i]) memset(srow[i] + lim[i], 0, sizeof(float) * (size_t)(nk - lim[i]));
            /* rescales what was accumulated under the old maximum */
            if (alpha8[i] != 1.0f) scale_row(w->acc + (int64_t)(r0 + i) * D, D, alpha8[i]);
        }
        /* l = l * alpha + sum and m = m_new, where the row exists and is not empty */
        const __m256i keep = _mm256_andnot_si256(_mm256_castps_si256(empty), live);
        const __m256 l_old = _mm256_maskload_ps(w->l + r0, live);
        const __m256 sum = lrsa_rows8_sum_lanes_avx2(acc);
        _mm256_maskstore_ps(w->l + r0, keep, _mm256_add_ps(_mm256_mul_ps(l_old, alpha), sum));
        _mm256_maskstore_ps(w->m + r0, keep, m_new);
    }
}

/* recompute_p_tile with the AVX2 row functions, eight rows at a time. */
__attribute__((target("avx2"))) static void recompute_p_tile_avx2(lrsa_attn_scratch *w,
                                                                  const lrsa_attn_qblock *qb,
                                                                  const lrsa_attn_seg *sg, int j0,
                                                                  int nk) {
    const int M = qb->G * qb->nq;
    for (int r0 = 0; r0 < M; r0 += 8) {
        float *srow[8], sub8[8];
        int lim[8];
        const int nr = rows8(w, qb, sg, j0, nk, r0, srow, lim);
        __m256 lo, hi = lrsa_rows8_max_min_avx2(srow, lim, &lo);
        const __m256 sub = _mm256_maskload_ps(w->m + r0, lrsa_avx2_head_mask(nr));
        const int normal = rows8_normal(lo, hi, sub);
        _mm256_storeu_ps(sub8, sub);
        for (int i = 0; i < nr; i++) {
            lrsa_exp_shift_lanes_avx2(srow[i], lim[i], sub8[i], (normal >> i) & 1);
            if (nk > lim[i]) memset(srow[i] + lim[i], 0, sizeof(float) * (size_t)(nk - lim[i]));
        }
    }
}
#endif

/* 1 when the tile products go through attention_tile_simd.h: AVX2+FMA present, D a multiple of
 * 8, and D <= 256, within the shapes where OpenBLAS's driver neither splits the D side nor a
 * score's D terms, so that the kernels keep cblas_sgemm's bits. */
static int simd_products(const lrsa_attn_scratch *w) {
    return w->avx2 && w->D % 8 == 0 && w->D <= 256;
}

/* out[i * BK + j] = alpha * a_i . k_j for the M packed rows a_i of the block and the nk rows of
 * the key (or value) tile kb: the AVX2 kernel where scratch.avx2 (same bits as the cblas call
 * with OpenBLAS's Haswell/Zen SGEMM, attention_tile_simd.h), else cblas_sgemm. */
static void tile_scores(lrsa_attn_scratch *w, int M, const float *a, const float *kb, int64_t ld,
                        int nk, float alpha, float *out, lrsa_attn_pf pf) {
    const int D = w->D;
    if (simd_products(w))
        lrsa_attn_scores_avx2(a, M, D, kb, ld, nk, alpha, out, LRSA_ATTN_BK, w->kt, pf);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nk, D, alpha, a, D, kb, (int)ld,
                    0.0f, out, LRSA_ATTN_BK);
}

/* The key (or value) rows of the segment's tile from j0 on, as a prefetch request; none when
 * j0 is past the visible keys. */
static lrsa_attn_pf tile_rows(const lrsa_attn_seg *sg, const float *base, int j0, int nvis, int D) {
    lrsa_attn_pf pf = {0};
    if (j0 < nvis) {
        pf.rows = base + j0 * sg->ld;
        pf.ld = sg->ld;
        pf.n = nvis - j0 < LRSA_ATTN_BK ? nvis - j0 : LRSA_ATTN_BK;
        pf.width = D;
    }
    return pf;
}

void lrsa_attn_fwd_begin(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb, int D) {
    const int M = qb->G * qb->nq;
    LRSA_CHECK(M <= w->rows && D == w->D, "(attention scratch too small for the block)");
    pack_rows(w->q, qb->q, qb->q_ld, qb->nq, qb->G, D);
    memset(w->acc, 0, sizeof(float) * (size_t)M * (size_t)D);
    for (int r = 0; r < M; r++) {
        w->m[r] = -INFINITY;
        w->l[r] = 0.0f;
    }
}

void lrsa_attn_fwd_segment(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb,
                           const lrsa_attn_seg *sg, float scale) {
    const int BK = LRSA_ATTN_BK, D = w->D, nq = qb->nq, M = qb->G * nq;
    const int products = simd_products(w);
    int nvis = seg_visible_len(sg, qb->qpos0 + nq - 1);
    for (int j0 = 0; j0 < nvis; j0 += BK) {
        int nk = nvis - j0 < BK ? nvis - j0 : BK;
        const float *kb = sg->k + j0 * sg->ld, *vb = sg->v + j0 * sg->ld;
        /* a decode step's few rows: the direct products, same bits (sgemm_rows.h) */
        const int few = M <= LRSA_SGEMM_ROWS_MAX;
        if (few)
            lrsa_sgemm_rows_nt(w->s, BK, w->q, D, M, kb, sg->ld, nk, D, scale, 0,
                               LRSA_SGEMM_ROWS_AUTO);
        else /* the V tile is fetched while the scores are computed */
            tile_scores(w, M, w->q, kb, sg->ld, nk, scale, w->s, tile_rows(sg, sg->v, j0, nvis, D));
#ifdef LRSA_HAVE_VEXP_AVX2
        if (w->avx2)
            online_tile_avx2(w, qb, sg, j0, nk);
        else
#endif
            online_tile(w, qb, sg, j0, nk);
        if (few)
            lrsa_sgemm_rows_nn(w->acc, D, w->s, BK, M, vb, sg->ld, D, nk, LRSA_SGEMM_ROWS_AUTO);
        else if (products) /* and the next K tile while P V is */
            lrsa_attn_nn_avx2(w->s, BK, M, nk, vb, sg->ld, D, 1.0f, w->acc, D,
                              tile_rows(sg, sg->k, j0 + BK, nvis, D));
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, nk, 1.0f, w->s, BK, vb,
                        (int)sg->ld, 1.0f, w->acc, D);
    }
}

void lrsa_attn_fwd_end(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb) {
    const int D = w->D, nq = qb->nq;
    for (int j = 0; j < qb->G; j++)
        for (int t = 0; t < nq; t++) {
            int r = j * nq + t;
            /* l == 0 only when every score was -inf (non-finite inputs): report NaN */
            float inv = w->l[r] > 0.0f ? 1.0f / w->l[r] : NAN;
            const float *arow = w->acc + (int64_t)r * D;
            float *orow = qb->out + t * qb->o_ld + (int64_t)j * D;
            for (int c = 0; c < D; c++) orow[c] = arow[c] * inv;
            if (qb->lse)
                qb->lse[j * qb->lse_hs + t] = w->l[r] > 0.0f ? w->m[r] + logf(w->l[r]) : NAN;
        }
}

void lrsa_attn_tile_forward(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb,
                            const lrsa_attn_seg *segs, int nseg, int D, float scale) {
    lrsa_attn_fwd_begin(w, qb, D);
    for (int si = 0; si < nseg; si++) lrsa_attn_fwd_segment(w, qb, &segs[si], scale);
    lrsa_attn_fwd_end(w, qb);
}

void lrsa_attn_state_save(const lrsa_attn_scratch *w, int rows, lrsa_attn_state *st) {
    memcpy(st->m, w->m, sizeof(float) * (size_t)rows);
    memcpy(st->l, w->l, sizeof(float) * (size_t)rows);
    memcpy(st->acc, w->acc, sizeof(float) * (size_t)rows * (size_t)w->D);
}

void lrsa_attn_state_merge(lrsa_attn_scratch *w, int rows, const lrsa_attn_state *st) {
    const int D = w->D;
    for (int r = 0; r < rows; r++) {
        float m1 = w->m[r], m2 = st->m[r];
        float mn = (isgreater(m2, m1) || isnan(m2)) ? m2 : m1;
        if (mn == -INFINITY) continue; /* both empty */
        float a1 = lrsa_vexpf(m1 - mn), a2 = lrsa_vexpf(m2 - mn);
        float *acc = w->acc + (int64_t)r * D;
        const float *acc2 = st->acc + (int64_t)r * D;
        for (int c = 0; c < D; c++) acc[c] = acc[c] * a1 + acc2[c] * a2;
        w->l[r] = w->l[r] * a1 + st->l[r] * a2;
        w->m[r] = mn;
    }
}

/* P = exp(S - lse) of every row of the score tile of keys j0 .. j0+nk-1, zero where masked. */
LRSA_AVX2_CLONES static void recompute_p_tile(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb,
                                              const lrsa_attn_seg *sg, int j0, int nk) {
    const int BK = LRSA_ATTN_BK, nq = qb->nq;
    for (int j = 0; j < qb->G; j++)
        for (int t = 0; t < nq; t++) {
            int r = j * nq + t;
            float *srow = w->s + (int64_t)r * BK;
            int lim = row_limit(sg, qb->qpos0 + t, j0, nk);
            exp_shifted(srow, lim, w->m[r]);
            if (nk > lim) memset(srow + lim, 0, sizeof(float) * (size_t)(nk - lim));
        }
}

/* dS = P * (dP - delta) in place of dP, every row of the tile. */
LRSA_AVX2_CLONES static void softmax_grad_tile(lrsa_attn_scratch *w, int M, int nk) {
    const int BK = LRSA_ATTN_BK;
    for (int r = 0; r < M; r++) {
        float *dp = w->dp + (int64_t)r * BK;
        const float *p = w->s + (int64_t)r * BK;
        const float delta = w->delta[r];
#pragma omp simd
        for (int j = 0; j < nk; j++) dp[j] = p[j] * (dp[j] - delta);
    }
}

/* c[j * ldc + col] += alpha * sum_r a[r * BK + j] b[r * D + col] for the nk keys j of a tile
 * and the M packed rows r of the block (dV += P^T dout, dK += scale dS^T Q): the AVX2 kernel
 * where scratch.avx2 (same bits as the cblas call on OpenBLAS's Haswell/Zen SGEMM), else
 * cblas_sgemm. */
static void tile_acc_tn(lrsa_attn_scratch *w, const float *a, int nk, int M, const float *b,
                        float alpha, float *c, int64_t ldc) {
    const int D = w->D;
    if (simd_products(w))
        lrsa_attn_tn_avx2(a, LRSA_ATTN_BK, nk, M, b, D, D, alpha, c, ldc);
    else
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, M, alpha, a, LRSA_ATTN_BK, b, D,
                    1.0f, c, (int)ldc);
}

void lrsa_attn_tile_backward(lrsa_attn_scratch *w, const lrsa_attn_qblock *qb, const float *dout,
                             int64_t do_ld, float *dq, int64_t dq_ld, const lrsa_attn_seg *segs,
                             int nseg, int D, float scale) {
    const int BK = LRSA_ATTN_BK, nq = qb->nq, G = qb->G, M = G * nq;
    LRSA_CHECK(M <= w->rows && D == w->D, "(attention scratch too small for the block)");
    pack_rows(w->q, qb->q, qb->q_ld, nq, G, D);
    pack_rows(w->o, dout, do_ld, nq, G, D);
    /* pre-pass: delta = rowsum(dout * out), the softmax-Jacobian term of every row; the
     * forward's logsumexp goes to m */
    for (int j = 0; j < G; j++)
        for (int t = 0; t < nq; t++) {
            int r = j * nq + t;
            const float *a = w->o + (int64_t)r * D, *b = qb->out + t * qb->o_ld + (int64_t)j * D;
            float d = 0.0f;
            for (int c = 0; c < D; c++) d += a[c] * b[c];
            w->delta[r] = d;
            w->m[r] = qb->lse[j * qb->lse_hs + t];
        }
    if (dq) memset(w->acc, 0, sizeof(float) * (size_t)M * (size_t)D);
    for (int si = 0; si < nseg; si++) {
        const lrsa_attn_seg *sg = &segs[si];
        int nvis = seg_visible_len(sg, qb->qpos0 + nq - 1);
        for (int j0 = 0; j0 < nvis; j0 += BK) {
            int nk = nvis - j0 < BK ? nvis - j0 : BK;
            const float *kb = sg->k + j0 * sg->ld, *vb = sg->v + j0 * sg->ld;
            /* recompute P = exp(scale * q k^T - lse), zero where masked */
            tile_scores(w, M, w->q, kb, sg->ld, nk, scale, w->s, tile_rows(sg, sg->v, j0, nvis, D));
#ifdef LRSA_HAVE_VEXP_AVX2
            if (w->avx2)
                recompute_p_tile_avx2(w, qb, sg, j0, nk);
            else
#endif
                recompute_p_tile(w, qb, sg, j0, nk);
            /* dV += P^T dout */
            if (sg->dv) tile_acc_tn(w, w->s, nk, M, w->o, 1.0f, sg->dv + j0 * sg->dld, sg->dld);
            /* dP = dout V^T, then dS = P * (dP - delta) */
            tile_scores(w, M, w->o, vb, sg->ld, nk, 1.0f, w->dp,
                        tile_rows(sg, sg->k, j0 + BK, nvis, D));
            softmax_grad_tile(w, M, nk);
            /* dQ += scale dS K;  dK += scale dS^T Q */
            if (dq) {
                if (simd_products(w))
                    lrsa_attn_nn_avx2(w->dp, BK, M, nk, kb, sg->ld, D, scale, w->acc, D,
                                      (lrsa_attn_pf){0});
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, nk, scale, w->dp,
                                BK, kb, (int)sg->ld, 1.0f, w->acc, D);
            }
            if (sg->dk) tile_acc_tn(w, w->dp, nk, M, w->q, scale, sg->dk + j0 * sg->dld, sg->dld);
        }
    }
    if (!dq) return;
    for (int j = 0; j < G; j++)
        for (int t = 0; t < nq; t++)
            memcpy(dq + t * dq_ld + (int64_t)j * D, w->acc + ((int64_t)j * nq + t) * D,
                   sizeof(float) * (size_t)D);
}
