/* The scorers of the baseline presses (kv-compression.md section 3), one score per (layer, KV
 * head, cached row) from the cache and what the observer collected; higher = keep, +INFINITY =
 * protected. Attention-based scores come from window queries (w x T per head), never from a
 * [T, T] matrix; H2O's sums were accumulated block by block during the prefill. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/press/press_internal.h"

int lrsa_press_scores_alloc(lrsa_press_scores *s, const lrsa_kv_cache *c) {
    memset(s, 0, sizeof(*s));
    s->n_layers = c->n_layers;
    s->n_kv_heads = c->n_kv_heads;
    const int64_t nh = (int64_t)c->n_layers * c->n_kv_heads;
    s->len = lrsa_calloc((size_t)nh, sizeof(int64_t));
    s->score = lrsa_calloc((size_t)nh, sizeof(float *));
    for (int64_t i = 0; i < nh; i++) {
        s->len[i] = c->heads[i].len;
        s->score[i] = lrsa_malloc((size_t)(s->len[i] > 0 ? s->len[i] : 1) * sizeof(float));
    }
    return 0;
}

void lrsa_press_scores_free(lrsa_press_scores *s) {
    if (s->score)
        for (int64_t i = 0; i < (int64_t)s->n_layers * s->n_kv_heads; i++) free(s->score[i]);
    free(s->score);
    free(s->len);
    memset(s, 0, sizeof(*s));
}

void lrsa_press_window_attention(const lrsa_press_obs *o, const lrsa_kv_cache *c, int layer, int h,
                                 int64_t nw, float *out) {
    const int D = c->head_dim, G = o->n_q_heads / c->n_kv_heads;
    const lrsa_kv_head *kh = &c->heads[(int64_t)layer * c->n_kv_heads + h / G];
    const int64_t T = kh->len, row = (int64_t)o->n_q_heads * D;
    LRSA_CHECK(nw >= 0 && nw <= o->w_len);
    if (nw == 0 || T == 0) return;
    const float *q = o->wq[layer] + (o->w_len - nw) * row + (int64_t)h * D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nw, (int)T, D, 1.0f / sqrtf((float)D),
                q, (int)row, kh->k, D, 0.0f, out, (int)T);
    for (int64_t j = 0; j < nw; j++) {
        float *r = out + j * T;
        const int32_t qpos = o->wq_pos[o->w_len - nw + j];
        float mx = -INFINITY;
        for (int64_t t = 0; t < T; t++)
            if (kh->pos[t] <= qpos && r[t] > mx) mx = r[t];
        float sum = 0.0f;
        for (int64_t t = 0; t < T; t++) {
            r[t] = kh->pos[t] <= qpos ? expf(r[t] - mx) : 0.0f;
            sum += r[t];
        }
        const float inv = 1.0f / sum;
        for (int64_t t = 0; t < T; t++) r[t] *= inv;
    }
}

void lrsa_press_pool1d(const float *x, float *y, int64_t n, int kernel, lrsa_press_pool pool) {
    const int64_t half = kernel / 2;
    for (int64_t i = 0; i < n; i++) {
        const int64_t lo = i - half < 0 ? 0 : i - half, hi = i + half >= n ? n - 1 : i + half;
        if (pool == LRSA_POOL_MAX) {
            float m = -INFINITY;
            for (int64_t j = lo; j <= hi; j++) m = x[j] > m ? x[j] : m;
            y[i] = m;
        } else {
            double s = 0.0;
            for (int64_t j = lo; j <= hi; j++) s += x[j];
            y[i] = (float)(s / kernel);
        }
    }
}

/* SnapKV (3.3), kvpress's variant: for every query head h of KV group g, the softmax attention
 * of the last w prompt queries over all rows (each query sees the rows up to itself), summed
 * over the w queries, restricted to the T - w context rows, pooled with `kernel`; then the mean
 * over the G heads of the group. The w window rows get +INFINITY (protected). (Summing instead
 * of kvpress's mean over window queries scales every score of a layer alike, so the selection is
 * the same.) A prompt no longer than the window is all window: everything is kept. */
void lrsa_press_snapkv_row(const lrsa_press_spec *s, const lrsa_press_obs *o,
                           const lrsa_kv_cache *c, int layer, int g, float *score) {
    const int G = o->n_q_heads / c->n_kv_heads;
    const int64_t T = c->heads[(int64_t)layer * c->n_kv_heads + g].len;
    const int64_t w = s->window < o->w_len ? s->window : o->w_len;
    const int64_t n_ctx = T - w > 0 ? T - w : 0;
    for (int64_t t = n_ctx; t < T; t++) score[t] = INFINITY;
    if (n_ctx == 0) return;
    float *att = lrsa_malloc((size_t)(w > 0 ? w : 1) * T * sizeof(float));
    float *sum = lrsa_malloc((size_t)n_ctx * sizeof(float));
    float *pooled = lrsa_malloc((size_t)n_ctx * sizeof(float));
    double *acc = lrsa_calloc((size_t)n_ctx, sizeof(double));
    for (int hg = 0; hg < G; hg++) {
        lrsa_press_window_attention(o, c, layer, g * G + hg, w, att);
        for (int64_t t = 0; t < n_ctx; t++) {
            double a = 0.0;
            for (int64_t j = 0; j < w; j++) a += att[j * T + t];
            sum[t] = (float)a;
        }
        lrsa_press_pool1d(sum, pooled, n_ctx, s->kernel, s->pool);
        for (int64_t t = 0; t < n_ctx; t++) acc[t] += pooled[t];
    }
    for (int64_t t = 0; t < n_ctx; t++) score[t] = (float)(acc[t] / G);
    free(att);
    free(sum);
    free(pooled);
    free(acc);
}

/* TOVA (3.5), kvpress's prefill version: the last prompt query's attention over all rows,
 * averaged over ALL query heads of the layer (the spec: "averaged over all heads of the
 * layer"), the same row for every KV head; the last row is protected. */
static void tova_layer(const lrsa_press_obs *o, const lrsa_kv_cache *c, int layer,
                       lrsa_press_scores *out) {
    const int Hkv = c->n_kv_heads;
    const int64_t T = c->heads[(int64_t)layer * Hkv].len;
    float *att = lrsa_malloc((size_t)T * sizeof(float));
    double *acc = lrsa_calloc((size_t)T, sizeof(double));
    for (int h = 0; h < o->n_q_heads; h++) {
        lrsa_press_window_attention(o, c, layer, h, 1, att);
        for (int64_t t = 0; t < T; t++) acc[t] += att[t];
    }
    for (int g = 0; g < Hkv; g++) {
        float *s = out->score[(int64_t)layer * Hkv + g];
        for (int64_t t = 0; t < T; t++) s[t] = (float)(acc[t] / o->n_q_heads);
        s[T - 1] = INFINITY;
    }
    free(att);
    free(acc);
}

/* H2O (3.2), the prefill variant: s_i = (attention mass row i received from the observed
 * queries, summed over the G heads of its group) / G / (number of observed queries that can see
 * row i, = tokens observed - pos_i). */
static void h2o_head(const lrsa_press_obs *o, const lrsa_kv_head *h, const double *acc, int G,
                     float *s) {
    for (int64_t t = 0; t < h->len; t++) {
        const double cnt = (double)(o->n_seen - h->pos[t]);
        s[t] = cnt > 0 ? (float)(acc[t] / G / cnt) : 0.0f;
    }
}

/* KNorm (3.7): minus the key's L2 norm (low-norm keys get high attention later). */
static void knorm_head(const lrsa_kv_head *h, int D, float *s) {
    for (int64_t t = 0; t < h->len; t++) {
        double n = 0.0;
        for (int d = 0; d < D; d++) n += (double)h->k[t * D + d] * h->k[t * D + d];
        s[t] = (float)-sqrt(n);
    }
}

/* StreamingLLM (3.1): the more recent, the higher (score = position), so any top-n keeps the
 * sink (protected separately) plus the most recent rows. Same selection as kvpress's 0/1 score
 * for every n_keep >= sink, and independent of the budget (so it can be swept). */
static void streaming_head(const lrsa_kv_head *h, float *s) {
    for (int64_t t = 0; t < h->len; t++) s[t] = (float)h->pos[t];
}

typedef struct score_idx {
    float s;
    int32_t i;
} score_idx;

static int by_score_desc(const void *a, const void *b) {
    const score_idx *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return x->i < y->i ? -1 : (x->i > y->i);
}

/* LagKV as kvpress's LagKVPress (lagkv-lrsa.md section 4, compatibility mode): the region
 * after the sink is cut into n = (T - S)/L partitions; each partition but the last is scored
 * against its successor with the LagKV score, and its rows get their rank within it divided
 * by L (lowest score 0, highest (L-1)/L; equal scores: the lower row ranks higher, our top-k
 * rule); the last partition and the leftover get 1.0, the sink +INFINITY. A cache shorter than
 * S + 2L falls back to sink + most recent (position scores). One top-n_keep over the context
 * then keeps the same number of top-ranked rows from every partition; where n_keep = S +
 * (n-1)k + L + leftover this is exactly LagKV's one-shot selection (lrsa_lagkv_select_cpu).
 * Differences from LagKV proper: the budget is a fraction of the whole cache, not of each
 * partition; when it is not a multiple of the partition count, ties between partitions go to
 * the earlier partitions; the tail is kept before any scored row (score 1.0 > every rank). */
static void lagkv_kvpress_head(const lrsa_kv_head *h, int D, const lrsa_lagkv_params *p, float *s) {
    const int64_t T = h->len, S = p->sink, L = p->lag;
    if (T < S + 2 * L) {
        streaming_head(h, s);
        return;
    }
    const int64_t n = (T - S) / L;
    for (int64_t t = S + (n - 1) * L; t < T; t++) s[t] = 1.0f;
    float *raw = lrsa_malloc((size_t)L * sizeof(float));
    score_idx *si = lrsa_malloc((size_t)L * sizeof(score_idx));
    for (int64_t j = 0; j + 1 < n; j++) {
        const int64_t start = S + j * L;
        lrsa_lagkv_score_partition(raw, h->k + start * D, h->v + start * D, h->k + (start + L) * D,
                                   h->v + (start + L) * D, (int)L, D, D, p->value_weight);
        for (int64_t i = 0; i < L; i++)
            si[i] = (score_idx){isnan(raw[i]) ? -INFINITY : raw[i], (int32_t)i};
        qsort(si, (size_t)L, sizeof(score_idx), by_score_desc);
        for (int64_t r = 0; r < L; r++) s[start + si[r].i] = (float)(L - 1 - r) / (float)L;
    }
    free(raw);
    free(si);
}

int lrsa_press_score_builtin(const lrsa_press_spec *s, const lrsa_press_obs *o,
                             const lrsa_kv_cache *c, lrsa_press_scores *out) {
    const int Hkv = c->n_kv_heads, D = c->head_dim, G = o ? o->n_q_heads / Hkv : 1;
    for (int l = 0; l < c->n_layers; l++) {
        if (s->method == LRSA_PRESS_TOVA) {
            tova_layer(o, c, l, out);
            continue;
        }
        for (int g = 0; g < Hkv; g++) {
            const int64_t i = (int64_t)l * Hkv + g;
            const lrsa_kv_head *h = &c->heads[i];
            float *sc = out->score[i];
            switch (s->method) {
                case LRSA_PRESS_STREAMING:
                    streaming_head(h, sc);
                    break;
                case LRSA_PRESS_KNORM:
                    knorm_head(h, D, sc);
                    break;
                case LRSA_PRESS_H2O:
                    h2o_head(o, h, o->h2o_acc[i], G, sc);
                    break;
                case LRSA_PRESS_SNAPKV:
                case LRSA_PRESS_PYRAMIDKV:
                    lrsa_press_snapkv_row(s, o, c, l, g, sc);
                    break;
                case LRSA_PRESS_LAGKV_KVPRESS:
                    lagkv_kvpress_head(h, D, &s->lagkv, sc);
                    break;
                default:
                    LRSA_CHECK(0, "(not a built-in scorer)");
            }
        }
    }
    return 0;
}
