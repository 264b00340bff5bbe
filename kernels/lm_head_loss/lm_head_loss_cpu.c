/* Fused final RMSNorm + LM head + cross-entropy (forward and backward in one pass).
 *
 * Only rows with a nonzero loss weight matter, so they are gathered into chunks of at most
 * LM_CHUNK (256) rows; per chunk: normalise, one SGEMM for the [chunk, V] logits, a stable
 * log-softmax, and (when a gradient is wanted) the softmax gradient written over the logits,
 * one SGEMM for dW, one for d(normed), then the RMSNorm backward. Peak extra memory is
 * chunk * V floats (at most 128 MB, see chunk_rows), never N * V. */
#include "kernels/lm_head_loss/lm_head_loss.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/sgemm_rows.h"
#include "kernels/cpu/vexp.h"
#include "kernels/cpu/vrow.h"
#include "kernels/rmsnorm/rmsnorm.h"

/* Rows per chunk: the dW update is a rank-`chunk` SGEMM that reads and writes all of dW, so
 * bigger chunks amortise that traffic (64 -> 256 rows made the fused call 13% faster at
 * V = 49152); the logits buffer [chunk, V] is kept under LM_LOGITS_BUDGET floats (128 MB). */
enum { LM_CHUNK = 256, LM_CHUNK_MIN = 16 };
#define LM_LOGITS_BUDGET (32LL * 1024 * 1024)

static int chunk_rows(int V) {
    long long r = LM_LOGITS_BUDGET / (V > 0 ? V : 1);
    return r > LM_CHUNK ? LM_CHUNK : r < LM_CHUNK_MIN ? LM_CHUNK_MIN : (int)r;
}

typedef struct lm_scratch {
    float *hrows;  /* [chunk, C] gathered hidden rows */
    float *xn;     /* [chunk, C] normalised rows (the LM head input) */
    float *dxn;    /* [chunk, C] gradient of xn, then of hrows */
    float *rstd;   /* [chunk] */
    float *logits; /* [chunk, V] logits, then probabilities, then dlogits */
    double *nll;   /* [chunk] */
} lm_scratch;

/* rows: the chunk size actually needed (fewer than LM_CHUNK when few rows carry a loss). */
static void scratch_alloc(lm_scratch *s, int rows, int C, int V) {
    size_t rc = (size_t)rows * (size_t)C;
    s->hrows = lrsa_alloc_aligned(sizeof(float) * rc);
    s->xn = lrsa_alloc_aligned(sizeof(float) * rc);
    s->dxn = lrsa_alloc_aligned(sizeof(float) * rc);
    s->rstd = lrsa_alloc_aligned(sizeof(float) * (size_t)rows);
    s->logits = lrsa_alloc_aligned(sizeof(float) * (size_t)rows * (size_t)V);
    s->nll = lrsa_alloc_aligned(sizeof(double) * (size_t)rows);
}

static void scratch_free(lm_scratch *s) {
    free(s->hrows);
    free(s->xn);
    free(s->dxn);
    free(s->rstd);
    free(s->logits);
    free(s->nll);
}

/* Softmax of one logits row in place (row becomes exp(l - max), lrsa_vexpf); returns the nll
 * of target. *inv_sum receives 1/sum(exp) (summed in double, eight lanes: kernels/cpu/vrow.h)
 * so the caller can finish the probabilities. */
static double row_softmax_nll(float *row, int V, int target, double *inv_sum) {
    float mx = lrsa_row_max(row, V);
    float lt = row[target] - mx;
#pragma omp simd
    for (int v = 0; v < V; v++) row[v] = lrsa_vexpf(row[v] - mx);
    double sum = lrsa_row_sum_d(row, V);
    *inv_sum = 1.0 / sum;
    return log(sum) - (double)lt;
}

/* One chunk of gathered rows idx[0..cnt). Returns the chunk's weighted loss. The rows' softmax
 * is threaded (one row per thread at a time); the loss is summed afterwards in row order. */
static double lm_chunk(lm_scratch *s, const int64_t *idx, int cnt, float *nll_out, float *dh,
                       float *dnorm_w, float *dW, const float *h, const float *norm_w,
                       const float *W, const int32_t *targets, const float *weight, int C, int V,
                       float eps) {
    for (int r = 0; r < cnt; r++)
        memcpy(s->hrows + (size_t)r * C, h + idx[r] * C, sizeof(float) * (size_t)C);
    lrsa_rmsnorm_forward_cpu(s->xn, s->rstd, s->hrows, norm_w, cnt, C, eps);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cnt, V, C, 1.0f, s->xn, C, W, C, 0.0f,
                s->logits, V);
#pragma omp parallel for schedule(static) num_threads(lrsa_cpu_threads_for(cnt, 20 * (int64_t)V))
    for (int r = 0; r < cnt; r++) {
        int64_t i = idx[r];
        int t = targets[i];
        LRSA_CHECK(t >= 0 && t < V, "(target %d of row %lld outside the vocabulary of %d)", t,
                   (long long)i, V);
        float *row = s->logits + (size_t)r * V;
        double inv_sum;
        s->nll[r] = row_softmax_nll(row, V, t, &inv_sum);
        if (dh) { /* dlogits = (softmax - onehot(target)) * weight */
            float scale = (float)(inv_sum * weight[i]);
#pragma omp simd
            for (int v = 0; v < V; v++) row[v] *= scale;
            row[t] -= weight[i];
        }
    }
    double loss = 0.0;
    for (int r = 0; r < cnt; r++) {
        loss += (double)weight[idx[r]] * s->nll[r];
        if (nll_out) nll_out[idx[r]] = (float)s->nll[r];
    }
    if (!dh) return loss;
    if (dW) /* dW[V, C] += dlogits^T @ xn */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, cnt, 1.0f, s->logits, V, s->xn,
                    C, 1.0f, dW, C);
    /* dxn[cnt, C] = dlogits @ W */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cnt, C, V, 1.0f, s->logits, V, W, C,
                0.0f, s->dxn, C);
    lrsa_rmsnorm_backward_cpu(s->dxn, dnorm_w, s->dxn, NULL, s->hrows, norm_w, s->rstd, cnt, C);
    for (int r = 0; r < cnt; r++)
        memcpy(dh + idx[r] * C, s->dxn + (size_t)r * C, sizeof(float) * (size_t)C);
    return loss;
}

double lrsa_lm_head_loss_cpu(float *nll_out, float *dh, float *dnorm_w, float *dW, const float *h,
                             const float *norm_w, const float *W, const int32_t *targets,
                             const float *weight, int64_t N, int C, int V, float eps) {
    if (nll_out) memset(nll_out, 0, sizeof(float) * (size_t)N);
    if (dh) memset(dh, 0, sizeof(float) * (size_t)N * (size_t)C); /* masked rows stay zero */
    int64_t active = 0;
    for (int64_t i = 0; i < N; i++) active += weight[i] != 0.0f;
    if (active == 0) return 0.0;
    lm_scratch s;
    int chunk = chunk_rows(V);
    scratch_alloc(&s, active < chunk ? (int)active : chunk, C, V);
    int64_t idx[LM_CHUNK];
    int cnt = 0;
    double loss = 0.0;
    for (int64_t i = 0; i < N; i++) {
        if (weight[i] == 0.0f) continue;
        idx[cnt++] = i;
        if (cnt == chunk) {
            loss += lm_chunk(&s, idx, cnt, nll_out, dh, dnorm_w, dW, h, norm_w, W, targets, weight,
                             C, V, eps);
            cnt = 0;
        }
    }
    if (cnt > 0)
        loss += lm_chunk(&s, idx, cnt, nll_out, dh, dnorm_w, dW, h, norm_w, W, targets, weight, C,
                         V, eps);
    scratch_free(&s);
    return loss;
}

void lrsa_lm_head_logits_cpu(float *logits, const float *h, const float *norm_w, const float *W,
                             int64_t N, int C, int V, float eps) {
    if (N <= 0) return;
    float *xn =
        lrsa_alloc_aligned(sizeof(float) * (size_t)(N < LM_CHUNK ? N : LM_CHUNK) * (size_t)C);
    for (int64_t i0 = 0; i0 < N; i0 += LM_CHUNK) { /* logits go straight to the caller's rows */
        int cnt = (int)(N - i0 < LM_CHUNK ? N - i0 : LM_CHUNK);
        lrsa_rmsnorm_forward_cpu(xn, NULL, h + i0 * C, norm_w, cnt, C, eps);
        if (cnt <= LRSA_SGEMM_ROWS_MAX) /* decoding: the direct product, same bits */
            lrsa_sgemm_rows_nt_threaded(logits + i0 * (int64_t)V, V, xn, C, cnt, W, C, V, C, 1.0f,
                                        0);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cnt, V, C, 1.0f, xn, C, W, C, 0.0f,
                        logits + i0 * (int64_t)V, V);
    }
    free(xn);
}
