/* CompressKV online scoring and layer budgets (kv-compression.md sections 1.2 and 1.3): per
 * layer, the window queries of the layer's first_k semantic retrieval heads (from the per-model
 * file of `lrsa compresskv`) score the non-window rows; one score per row, shared by all KV
 * heads of the layer (one index set per layer, as the reference code does). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/press/compresskv.h"
#include "eval/press/press_internal.h"

void lrsa_compresskv_layer_scores(const lrsa_kv_cache *c, int layer, const float *wq, int64_t w_len,
                                  int n_q_heads, const int32_t *heads, int n_heads, int kernel,
                                  lrsa_press_pool pool, int sink, float *score) {
    const int D = c->head_dim, Hkv = c->n_kv_heads, G = n_q_heads / Hkv;
    const int64_t T = c->heads[(int64_t)layer * Hkv].len;
    const int64_t n_sc = T - w_len; /* non-window rows */
    LRSA_CHECK(n_sc >= 0 && n_heads > 0 && kernel >= 1);
    const float scale = 1.0f / sqrtf((float)D);
    double *acc = lrsa_calloc((size_t)(n_sc > 0 ? n_sc : 1), sizeof(double));
    double *sum_heads = lrsa_calloc((size_t)(n_sc > 0 ? n_sc : 1), sizeof(double));
    float *p = lrsa_malloc((size_t)(w_len > 0 ? w_len : 1) * (T > 0 ? T : 1) * sizeof(float));
    for (int i = 0; i < n_heads; i++) {
        const int h = heads[i];
        const lrsa_kv_head *kh = &c->heads[(int64_t)layer * Hkv + h / G];
        LRSA_CHECK(kh->len == T, "(CompressKV shares one index set: heads must have one length)");
        if (w_len > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)w_len, (int)T, D, scale,
                        wq + (int64_t)h * D, n_q_heads * D, kh->k, D, 0.0f, p, (int)T);
        for (int64_t t = 0; t < n_sc; t++) acc[t] = 0.0;
        for (int64_t j = 0; j < w_len; j++) {
            float *row = p + j * T;
            const int64_t vis = n_sc + j + 1; /* the window query's own row and earlier */
            float mx = -INFINITY;
            for (int64_t t = 0; t < vis; t++) mx = row[t] > mx ? row[t] : mx;
            double sum = 0.0;
            for (int64_t t = 0; t < vis; t++) sum += (row[t] = expf(row[t] - mx));
            for (int64_t t = 0; t < n_sc; t++) acc[t] += row[t] / sum;
        }
        const int half = kernel / 2;
        for (int64_t t = 0; t < n_sc; t++) {
            double v = pool == LRSA_POOL_MAX ? -INFINITY : 0.0;
            for (int64_t u = t - half; u <= t + half; u++) {
                const double x = u >= 0 && u < n_sc ? acc[u] : 0.0; /* zero padding */
                v = pool == LRSA_POOL_MAX ? (x > v ? x : v) : v + x;
            }
            sum_heads[t] += pool == LRSA_POOL_MAX ? v : v / kernel;
        }
    }
    for (int64_t t = 0; t < n_sc; t++) score[t] = (float)(sum_heads[t] / n_heads);
    for (int64_t t = n_sc; t < T; t++) score[t] = INFINITY;
    for (int64_t t = 0; t < sink && t < T; t++) score[t] = INFINITY;
    free(acc);
    free(sum_heads);
    free(p);
}

void lrsa_srh_step_mass(const lrsa_kv_cache *c, int layer, const float *q_last, int n_q_heads,
                        int64_t r0, int64_t r1, double *mass) {
    const int D = c->head_dim, Hkv = c->n_kv_heads, G = n_q_heads / Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    for (int g = 0; g < Hkv; g++) {
        const lrsa_kv_head *kh = &c->heads[(int64_t)layer * Hkv + g];
        const int64_t T = kh->len;
        float *s = lrsa_malloc((size_t)(T > 0 ? T : 1) * sizeof(float));
        for (int hg = 0; hg < G; hg++) {
            const int h = g * G + hg;
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)T, D, scale, kh->k, D,
                        q_last + (int64_t)h * D, 1, 0.0f, s, 1);
            float mx = -INFINITY;
            for (int64_t t = 0; t < T; t++) mx = s[t] > mx ? s[t] : mx;
            double sum = 0.0, in = 0.0;
            for (int64_t t = 0; t < T; t++) {
                const double x = exp((double)(s[t] - mx));
                sum += x;
                if (t >= r0 && t < r1) in += x;
            }
            mass[h] = in / sum;
        }
        free(s);
    }
}

int lrsa_press_score_compresskv(const lrsa_model *m, const lrsa_kv_cache *c,
                                const lrsa_press_spec *s, const lrsa_press_obs *obs,
                                lrsa_press_scores *out, lrsa_err *e) {
    lrsa_compresskv_file f;
    if (lrsa_compresskv_load(&f, s->compresskv_file, e) != 0) return -1;
    if (lrsa_compresskv_check_model(&f, s->compresskv_file, &m->cfg, e) != 0) {
        lrsa_compresskv_free(&f);
        return -1;
    }
    const int L = c->n_layers, Hkv = c->n_kv_heads, Hq = f.n_q_heads;
    int rc = 0;
    for (int l = 0; l < L && rc == 0; l++) {
        const int64_t T = c->heads[(int64_t)l * Hkv].len;
        for (int g = 1; g < Hkv; g++)
            if (c->heads[(int64_t)l * Hkv + g].len != T)
                rc = lrsa_errorf(e,
                                 "compresskv: layer %d has KV heads of different lengths; it "
                                 "scores a full cache",
                                 l);
    }
    if (rc == 0 && lrsa_press_scores_alloc(out, c) != 0)
        rc = lrsa_errorf(e, "compresskv: could not allocate the scores");
    if (rc) {
        lrsa_compresskv_free(&f);
        return -1;
    }
    const int kernel = s->kernel > 0 ? s->kernel : 5;
    for (int l = 0; l < L; l++) {
        const int64_t T = c->heads[(int64_t)l * Hkv].len;
        const int64_t w = obs->w_len < T ? obs->w_len : T;
        /* the window queries held are the last obs->w_len; use the last w of them */
        const float *wq = obs->wq[l] + (obs->w_len - w) * (int64_t)Hq * c->head_dim;
        float *sc = out->score[(int64_t)l * Hkv];
        lrsa_compresskv_layer_scores(c, l, wq, w, Hq, f.heads + (int64_t)l * Hq, f.first_k, kernel,
                                     s->pool, s->sink, sc);
        for (int g = 1; g < Hkv; g++)
            memcpy(out->score[(int64_t)l * Hkv + g], sc, (size_t)T * sizeof(float));
    }
    out->score_s = 0.0;
    lrsa_compresskv_free(&f);
    return 0;
}

int lrsa_compresskv_layer_budgets(const lrsa_press_spec *s, int n_layers, int64_t T,
                                  int64_t *budget, lrsa_err *e) {
    lrsa_compresskv_file f;
    if (lrsa_compresskv_load(&f, s->compresskv_file, e) != 0) return -1;
    if (f.n_layers != n_layers) {
        lrsa_errorf(e, "%s: made for a model with %d layers (%s); this one has %d",
                    s->compresskv_file, f.n_layers, f.name, n_layers);
        lrsa_compresskv_free(&f);
        return -1;
    }
    int64_t B;
    if (s->tokens_per_layer > 0)
        B = s->tokens_per_layer < T ? s->tokens_per_layer : T;
    else
        B = (int64_t)(s->keep * (double)T);
    /* lo: the protected rows, and at least the paper's 32 minimum when the budget allows */
    int64_t lo = (int64_t)s->window + s->sink;
    if (lo < 32) lo = B < 32 ? (B > lo ? B : lo) : 32;
    if (lo > T) lo = T;
    int64_t hi = 3 * B > lo ? 3 * B : lo;
    if (hi > T) hi = T;
    lrsa_compresskv_allocate(f.layer_weight, n_layers, B, lo, hi, budget);
    lrsa_compresskv_free(&f);
    return 0;
}
