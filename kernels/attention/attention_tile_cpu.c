/* Tile engine for CPU attention: BLAS on [BQ x BK] tiles plus an online softmax. */
#include "kernels/attention/attention_tile.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

void lrsa_attn_scratch_init(lrsa_attn_scratch *w, int D) {
    w->s = lrsa_alloc_aligned(sizeof(float) * LRSA_ATTN_BQ * LRSA_ATTN_BK);
    w->dp = lrsa_alloc_aligned(sizeof(float) * LRSA_ATTN_BQ * LRSA_ATTN_BK);
    w->acc = lrsa_alloc_aligned(sizeof(float) * LRSA_ATTN_BQ * (size_t)(D > 0 ? D : 1));
    w->m = lrsa_alloc_aligned(sizeof(float) * LRSA_ATTN_BQ);
    w->l = lrsa_alloc_aligned(sizeof(float) * LRSA_ATTN_BQ);
    w->delta = lrsa_alloc_aligned(sizeof(float) * LRSA_ATTN_BQ);
}

void lrsa_attn_scratch_free(lrsa_attn_scratch *w) {
    free(w->s);
    free(w->dp);
    free(w->acc);
    free(w->m);
    free(w->l);
    free(w->delta);
    memset(w, 0, sizeof(*w));
}

void lrsa_attn_zero_rows(float *x, int64_t ld, int64_t n, int D) {
    for (int64_t r = 0; r < n; r++) memset(x + r * ld, 0, sizeof(float) * (size_t)D);
}

/* Number of keys of the segment that any of the rows qpos0 .. qpos_last can see. */
static int seg_visible_len(const lrsa_attn_seg *sg, int64_t qpos_last) {
    if (!sg->causal) return sg->n;
    int64_t lim = qpos_last - sg->pos0 + 1;
    if (lim <= 0) return 0;
    return lim < sg->n ? (int)lim : sg->n;
}

/* Last visible column (exclusive) of query row at position qp within the key block starting at
 * segment row j0 of width nk. */
static int row_limit(const lrsa_attn_seg *sg, int64_t qp, int j0, int nk) {
    if (!sg->causal) return nk;
    int64_t lim = qp - (sg->pos0 + j0) + 1;
    if (lim <= 0) return 0;
    return lim < nk ? (int)lim : nk;
}

void lrsa_attn_tile_forward(float *out, int64_t o_ld, float *lse, const float *q, int64_t q_ld,
                            int nq, int64_t qpos0, const lrsa_attn_seg *segs, int nseg, int D,
                            float scale, lrsa_attn_scratch *w) {
    const int BK = LRSA_ATTN_BK;
    memset(w->acc, 0, sizeof(float) * (size_t)nq * (size_t)D);
    for (int r = 0; r < nq; r++) {
        w->m[r] = -INFINITY;
        w->l[r] = 0.0f;
    }
    for (int si = 0; si < nseg; si++) {
        const lrsa_attn_seg *sg = &segs[si];
        int nvis = seg_visible_len(sg, qpos0 + nq - 1);
        for (int j0 = 0; j0 < nvis; j0 += BK) {
            int nk = nvis - j0 < BK ? nvis - j0 : BK;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale, q, (int)q_ld,
                        sg->k + j0 * sg->ld, (int)sg->ld, 0.0f, w->s, BK);
            for (int r = 0; r < nq; r++) {
                float *srow = w->s + (int64_t)r * BK;
                int lim = row_limit(sg, qpos0 + r, j0, nk);
                float mx = -INFINITY;
                /* written so that a NaN score propagates (a diverged model must give a NaN
                 * loss, not an abort or a silently finite output) */
                for (int j = 0; j < lim; j++)
                    if (!(srow[j] <= mx)) mx = srow[j];
                float m_new = (mx > w->m[r] || isnan(mx)) ? mx : w->m[r];
                if (m_new == -INFINITY) { /* nothing visible yet: the row stays empty */
                    memset(srow, 0, sizeof(float) * (size_t)nk);
                    continue;
                }
                /* rescale what was accumulated under the old max */
                float alpha = expf(w->m[r] - m_new);
                float sum = 0.0f;
                for (int j = 0; j < lim; j++) {
                    srow[j] = expf(srow[j] - m_new);
                    sum += srow[j];
                }
                for (int j = lim; j < nk; j++) srow[j] = 0.0f;
                w->l[r] = w->l[r] * alpha + sum;
                w->m[r] = m_new;
                if (alpha != 1.0f) {
                    float *arow = w->acc + (int64_t)r * D;
                    for (int c = 0; c < D; c++) arow[c] *= alpha;
                }
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, w->s, BK,
                        sg->v + j0 * sg->ld, (int)sg->ld, 1.0f, w->acc, D);
        }
    }
    for (int r = 0; r < nq; r++) {
        /* l == 0 only when every score was -inf (non-finite inputs): report NaN */
        float inv = w->l[r] > 0.0f ? 1.0f / w->l[r] : NAN;
        const float *arow = w->acc + (int64_t)r * D;
        float *orow = out + r * o_ld;
        for (int c = 0; c < D; c++) orow[c] = arow[c] * inv;
        lse[r] = w->l[r] > 0.0f ? w->m[r] + logf(w->l[r]) : NAN;
    }
}

void lrsa_attn_tile_backward(float *dq, int64_t dq_ld, const float *dout, int64_t do_ld,
                             const float *q, int64_t q_ld, const float *out, int64_t o_ld,
                             const float *lse, int nq, int64_t qpos0, const lrsa_attn_seg *segs,
                             int nseg, int D, float scale, lrsa_attn_scratch *w) {
    const int BK = LRSA_ATTN_BK;
    /* pre-pass: delta = rowsum(dout * out), the softmax-Jacobian term of every row */
    for (int r = 0; r < nq; r++) {
        const float *a = dout + r * do_ld, *b = out + r * o_ld;
        float d = 0.0f;
        for (int c = 0; c < D; c++) d += a[c] * b[c];
        w->delta[r] = d;
    }
    if (dq) lrsa_attn_zero_rows(dq, dq_ld, nq, D);
    for (int si = 0; si < nseg; si++) {
        const lrsa_attn_seg *sg = &segs[si];
        int nvis = seg_visible_len(sg, qpos0 + nq - 1);
        for (int j0 = 0; j0 < nvis; j0 += BK) {
            int nk = nvis - j0 < BK ? nvis - j0 : BK;
            const float *kb = sg->k + j0 * sg->ld, *vb = sg->v + j0 * sg->ld;
            /* recompute P = exp(scale * q k^T - lse), zero where masked */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale, q, (int)q_ld, kb,
                        (int)sg->ld, 0.0f, w->s, BK);
            for (int r = 0; r < nq; r++) {
                float *srow = w->s + (int64_t)r * BK;
                int lim = row_limit(sg, qpos0 + r, j0, nk);
                for (int j = 0; j < lim; j++) srow[j] = expf(srow[j] - lse[r]);
                for (int j = lim; j < nk; j++) srow[j] = 0.0f;
            }
            /* dV += P^T dout */
            if (sg->dv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, 1.0f, w->s, BK,
                            dout, (int)do_ld, 1.0f, sg->dv + j0 * sg->dld, (int)sg->dld);
            /* dP = dout V^T, then dS = P * (dP - delta) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, 1.0f, dout, (int)do_ld,
                        vb, (int)sg->ld, 0.0f, w->dp, BK);
            for (int r = 0; r < nq; r++) {
                float *prow = w->s + (int64_t)r * BK, *drow = w->dp + (int64_t)r * BK;
                for (int j = 0; j < nk; j++) drow[j] = prow[j] * (drow[j] - w->delta[r]);
            }
            /* dQ += scale dS K;  dK += scale dS^T Q */
            if (dq)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, scale, w->dp, BK,
                            kb, (int)sg->ld, 1.0f, dq, (int)dq_ld);
            if (sg->dk)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, scale, w->dp, BK, q,
                            (int)q_ld, 1.0f, sg->dk + j0 * sg->dld, (int)sg->dld);
        }
    }
}
