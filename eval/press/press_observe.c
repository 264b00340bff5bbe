/* The press observer: hooked into the cached forward, it keeps the last `window` post-RoPE
 * queries of every layer (SnapKV, PyramidKV, TOVA, CompressKV score from them after the
 * prefill) and, for H2O, adds up per cached row the attention probability every observed query
 * gives it. H2O's sums are computed block by block (64 queries x the visible rows), never as
 * a [T, T] matrix. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/press/press_internal.h"

#define QBLOCK 64

void lrsa_press_obs_init(lrsa_press_obs *o, const lrsa_model *m, int64_t window, int h2o) {
    memset(o, 0, sizeof(*o));
    o->n_layers = m->cfg.num_hidden_layers;
    o->n_q_heads = m->cfg.num_attention_heads;
    o->n_kv_heads = m->cfg.num_key_value_heads;
    o->head_dim = m->cfg.head_dim;
    o->window = window > 0 ? window : 0;
    if (o->window > 0) {
        o->wq = lrsa_calloc((size_t)o->n_layers, sizeof(float *));
        for (int l = 0; l < o->n_layers; l++)
            o->wq[l] = lrsa_malloc((size_t)o->window * o->n_q_heads * o->head_dim * sizeof(float));
        o->wq_pos = lrsa_malloc((size_t)o->window * sizeof(int32_t));
    }
    if (h2o) o->h2o_acc = lrsa_calloc((size_t)o->n_layers * o->n_kv_heads, sizeof(double *));
}

void lrsa_press_obs_free(lrsa_press_obs *o) {
    if (o->wq)
        for (int l = 0; l < o->n_layers; l++) free(o->wq[l]);
    free(o->wq);
    free(o->wq_pos);
    if (o->h2o_acc)
        for (int64_t i = 0; i < (int64_t)o->n_layers * o->n_kv_heads; i++) free(o->h2o_acc[i]);
    free(o->h2o_acc);
    memset(o, 0, sizeof(*o));
}

/* Shifts the held window queries of one layer and appends the newest of the N new ones. */
static void keep_window(lrsa_press_obs *o, int layer, const float *q, int64_t q_stride,
                        const int32_t *pos, int64_t N) {
    const int64_t row = (int64_t)o->n_q_heads * o->head_dim;
    const int64_t new_len = o->prev_len + N < o->window ? o->prev_len + N : o->window;
    const int64_t take = N < new_len ? N : new_len; /* newest queries taken from this forward */
    const int64_t old_keep = new_len - take;        /* held queries that stay */
    float *w = o->wq[layer];
    if (old_keep > 0 && o->prev_len > old_keep)
        memmove(w, w + (o->prev_len - old_keep) * row, (size_t)(old_keep * row) * sizeof(float));
    for (int64_t i = 0; i < take; i++)
        memcpy(w + (old_keep + i) * row, q + (N - take + i) * q_stride,
               (size_t)row * sizeof(float));
    if (layer == o->n_layers - 1) { /* positions and length move once per forward */
        if (old_keep > 0 && o->prev_len > old_keep)
            memmove(o->wq_pos, o->wq_pos + (o->prev_len - old_keep),
                    (size_t)old_keep * sizeof(int32_t));
        for (int64_t i = 0; i < take; i++) o->wq_pos[old_keep + i] = pos[N - take + i];
        o->w_len = new_len;
    }
}

/* H2O: adds the attention probabilities of the N new queries (all query heads of each KV group)
 * to the running sums of the rows they see. The new rows are the last N of each head. */
static void h2o_accumulate(lrsa_press_obs *o, const lrsa_kv_cache *c, int layer, const float *q,
                           int64_t q_stride, int64_t N) {
    const int D = o->head_dim, Hkv = o->n_kv_heads, G = o->n_q_heads / o->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)D);
    const lrsa_kv_head *h0 = &c->heads[(int64_t)layer * Hkv];
    const int64_t len = h0->len;
    float *s = lrsa_malloc((size_t)QBLOCK * len * sizeof(float));
    for (int g = 0; g < Hkv; g++) {
        const lrsa_kv_head *kh = &c->heads[(int64_t)layer * Hkv + g];
        LRSA_CHECK(kh->len == len, "(H2O observes a full cache)");
        double *acc = o->h2o_acc[(int64_t)layer * Hkv + g];
        const int64_t len0 = len - N;
        for (int hg = 0; hg < G; hg++) {
            const int h = g * G + hg;
            for (int64_t i0 = 0; i0 < N; i0 += QBLOCK) {
                const int64_t nb = N - i0 < QBLOCK ? N - i0 : QBLOCK;
                const int64_t nk = len0 + i0 + nb;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nk, D, scale,
                            q + i0 * q_stride + (int64_t)h * D, (int)q_stride, kh->k, D, 0.0f, s,
                            (int)nk);
                for (int64_t r = 0; r < nb; r++) {
                    float *rowp = s + r * nk;
                    const int64_t vis = len0 + i0 + r + 1;
                    float mx = -INFINITY;
                    for (int64_t t = 0; t < vis; t++) mx = rowp[t] > mx ? rowp[t] : mx;
                    float sum = 0.0f;
                    for (int64_t t = 0; t < vis; t++) {
                        rowp[t] = expf(rowp[t] - mx);
                        sum += rowp[t];
                    }
                    const double inv = 1.0 / (double)sum;
                    for (int64_t t = 0; t < vis; t++) acc[t] += (double)rowp[t] * inv;
                }
            }
        }
    }
    free(s);
}

static void observe(void *user, const lrsa_kv_cache *c, int layer, const float *q, int64_t q_stride,
                    int n_q_heads, const int32_t *pos, int64_t N) {
    lrsa_press_obs *o = user;
    LRSA_CHECK(n_q_heads == o->n_q_heads && layer >= 0 && layer < o->n_layers);
    if (o->h2o_acc) {
        /* Grow every head's sums to the new length once per forward (zeros for the new rows). */
        const int64_t len = c->heads[(int64_t)layer * o->n_kv_heads].len;
        for (int g = 0; g < o->n_kv_heads; g++) {
            double **acc = &o->h2o_acc[(int64_t)layer * o->n_kv_heads + g];
            const int64_t old = len - N;
            LRSA_CHECK(old >= 0);
            *acc = lrsa_realloc(*acc, (size_t)(len > 0 ? len : 1) * sizeof(double));
            for (int64_t t = old; t < len; t++) (*acc)[t] = 0.0;
        }
        h2o_accumulate(o, c, layer, q, q_stride, N);
    }
    if (o->window > 0) keep_window(o, layer, q, q_stride, pos, N);
    if (layer == o->n_layers - 1) {
        o->prev_len = o->w_len;
        o->n_seen = (int64_t)pos[N - 1] + 1;
    }
}

lrsa_layer_observer lrsa_press_obs_hook(lrsa_press_obs *o) {
    return (lrsa_layer_observer){.fn = observe, .user = o};
}
