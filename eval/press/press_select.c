/* Selectors (kv-compression.md sections 0 and 3.8) and the compaction of lrsa_press_apply:
 * scores -> kept rows per (layer, KV head) -> lrsa_kv_cache_keep_rows. Ranking everywhere:
 * score descending, equal scores to the lower row (then the lower head), NaN last; +INFINITY
 * (protected) rows are always kept, even beyond the budget. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/press/press_internal.h"

typedef struct ranked {
    float s;
    int32_t g;   /* KV head (head-adaptive pools a layer's heads) */
    int64_t row; /* row index in the head */
} ranked;

static float key(float s) {
    return isnan(s) ? -INFINITY : s;
}

static int ranked_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    const float sx = key(x->s), sy = key(y->s);
    if (sx != sy) return sx < sy ? 1 : -1;
    if (x->g != y->g) return x->g < y->g ? -1 : 1;
    return x->row < y->row ? -1 : (x->row > y->row);
}

static int64_t n_protected(const float *s, int64_t n) {
    int64_t p = 0;
    for (int64_t t = 0; t < n; t++) p += s[t] == INFINITY;
    return p;
}

/* Marks the top `n` rows of one head (protected rows first, whatever n is). */
static void mark_top(const float *s, int64_t len, int64_t n, uint8_t *keep) {
    const int64_t np = n_protected(s, len);
    if (n < np) n = np;
    if (n > len) n = len;
    ranked *r = lrsa_malloc((size_t)(len > 0 ? len : 1) * sizeof(ranked));
    for (int64_t t = 0; t < len; t++) r[t] = (ranked){s[t], 0, t};
    qsort(r, (size_t)len, sizeof(ranked), ranked_desc);
    for (int64_t i = 0; i < n; i++) keep[r[i].row] = 1;
    free(r);
}

/* AdaKV (3.8) on one layer: each head first keeps its top (int)(alpha * n_keep_g) (the
 * safeguard) and its protected rows; the rest of the layer's budget, sum_g n_keep_g, goes to the
 * highest remaining scores of all heads together. */
static void mark_adaptive(const lrsa_press_spec *s, const lrsa_press_scores *sc, int layer,
                          uint8_t **keep) {
    const int H = sc->n_kv_heads;
    int64_t budget = 0, marked = 0, total = 0;
    for (int g = 0; g < H; g++) {
        const int64_t i = (int64_t)layer * H + g, len = sc->len[i];
        const int64_t nk = lrsa_press_n_keep(s, len);
        budget += nk;
        total += len;
        mark_top(sc->score[i], len, (int64_t)(s->alpha * (double)nk), keep[g]);
        for (int64_t t = 0; t < len; t++) marked += keep[g][t];
    }
    if (marked >= budget) return;
    ranked *r = lrsa_malloc((size_t)(total > 0 ? total : 1) * sizeof(ranked));
    int64_t n = 0;
    for (int g = 0; g < H; g++) {
        const int64_t i = (int64_t)layer * H + g;
        for (int64_t t = 0; t < sc->len[i]; t++)
            if (!keep[g][t]) r[n++] = (ranked){sc->score[i][t], g, t};
    }
    qsort(r, (size_t)n, sizeof(ranked), ranked_desc);
    for (int64_t j = 0; j < budget - marked && j < n; j++) keep[r[j].g][r[j].row] = 1;
    free(r);
}

static void compact(lrsa_kv_cache *c, int layer, int g, const uint8_t *keep, int64_t len) {
    int64_t *idx = lrsa_malloc((size_t)(len > 0 ? len : 1) * sizeof(int64_t));
    int64_t n = 0;
    for (int64_t t = 0; t < len; t++)
        if (keep[t]) idx[n++] = t;
    lrsa_kv_cache_keep_rows(c, layer, g, idx, n);
    free(idx);
}

int lrsa_press_apply(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                     const lrsa_press_scores *sc, double *kept_fraction, lrsa_err *e) {
    (void)m;
    const int L = c->n_layers, H = c->n_kv_heads;
    const int64_t nh = (int64_t)L * H;
    if (lrsa_press_spec_check(s, e) != 0) return -1;
    if (s->method == LRSA_PRESS_NONE || s->method == LRSA_PRESS_LAGKV) {
        if (kept_fraction)
            for (int64_t i = 0; i < nh; i++)
                kept_fraction[i] = c->seen > 0 ? (double)c->heads[i].len / (double)c->seen : 1.0;
        return 0;
    }
    if (!sc || sc->n_layers != L || sc->n_kv_heads != H)
        return lrsa_errorf(e, "press %s: the scores were made for another cache shape",
                           lrsa_press_method_name(s->method));
    for (int64_t i = 0; i < nh; i++)
        if (sc->len[i] != c->heads[i].len)
            return lrsa_errorf(e,
                               "press %s: layer %lld head %lld holds %lld rows but %lld were "
                               "scored; apply to (a clone of) the cache that was scored",
                               lrsa_press_method_name(s->method), (long long)(i / H),
                               (long long)(i % H), (long long)c->heads[i].len,
                               (long long)sc->len[i]);
    int64_t *n_keep = lrsa_malloc((size_t)nh * sizeof(int64_t));
    int rc = 0;
    if (s->selector == LRSA_SELECT_GLOBAL) {
        rc = lrsa_press_select_global(s, sc, n_keep, e);
    } else if (s->selector == LRSA_SELECT_LAYER_BUDGET) {
        int64_t *b = lrsa_malloc((size_t)L * sizeof(int64_t));
        const int64_t T = c->heads[0].len;
        for (int64_t i = 0; i < nh; i++)
            if (c->heads[i].len != T) {
                rc = lrsa_errorf(e, "press %s: per-layer budgets need equal head lengths",
                                 lrsa_press_method_name(s->method));
                break;
            }
        if (rc == 0) {
            if (s->method == LRSA_PRESS_PYRAMIDKV)
                lrsa_pyramid_budgets(s, L, T, b);
            else
                rc = lrsa_compresskv_layer_budgets(s, L, T, b, e);
        }
        for (int64_t i = 0; rc == 0 && i < nh; i++) n_keep[i] = b[i / H];
        free(b);
    } else {
        for (int64_t i = 0; i < nh; i++) n_keep[i] = lrsa_press_n_keep(s, sc->len[i]);
    }
    if (rc != 0) {
        free(n_keep);
        return -1;
    }
    uint8_t **keep = lrsa_malloc((size_t)H * sizeof(uint8_t *));
    for (int l = 0; l < L; l++) {
        for (int g = 0; g < H; g++) {
            const int64_t len = sc->len[(int64_t)l * H + g];
            keep[g] = lrsa_calloc((size_t)(len > 0 ? len : 1), 1);
        }
        if (s->selector == LRSA_SELECT_HEAD_ADAPTIVE)
            mark_adaptive(s, sc, l, keep);
        else
            for (int g = 0; g < H; g++) {
                const int64_t i = (int64_t)l * H + g;
                mark_top(sc->score[i], sc->len[i], n_keep[i], keep[g]);
            }
        for (int g = 0; g < H; g++) {
            const int64_t i = (int64_t)l * H + g;
            compact(c, l, g, keep[g], sc->len[i]);
            if (kept_fraction)
                kept_fraction[i] =
                    sc->len[i] > 0 ? (double)c->heads[i].len / (double)sc->len[i] : 1.0;
            free(keep[g]);
        }
    }
    free(keep);
    free(n_keep);
    return 0;
}

/* ---- LRSA_SELECT_GLOBAL ---- */
typedef struct ranked_global {
    float score;
    int32_t head;
    int64_t row;
} ranked_global;

static int ranked_global_cmp(const void *pa, const void *pb) {
    const ranked_global *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->head != b->head) return a->head < b->head ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

int lrsa_press_select_global(const lrsa_press_spec *s, const lrsa_press_scores *sc, int64_t *n_keep,
                             lrsa_err *e) {
    const int64_t LH = (int64_t)sc->n_layers * sc->n_kv_heads;
    int64_t total = 0, rows = 0;
    for (int64_t i = 0; i < LH; i++) {
        const int64_t T = sc->len[i];
        if (!(s->tokens_per_layer > 0) && !(s->keep > 0.0 && s->keep <= 1.0))
            return lrsa_errorf(e,
                               "global selector: the budget is unset (keep = %g, "
                               "tokens_per_layer = %lld); set keep in (0, 1] or tokens > 0",
                               s->keep, (long long)s->tokens_per_layer);
        total += lrsa_press_n_keep(s, T); /* the uniform selector's count for this head */
        rows += T;
        n_keep[i] = 0;
    }
    ranked_global *all = lrsa_malloc((size_t)(rows > 0 ? rows : 1) * sizeof(ranked_global));
    int64_t w = 0;
    for (int64_t i = 0; i < LH; i++)
        for (int64_t t = 0; t < sc->len[i]; t++) {
            const float v = sc->score[i][t];
            all[w++] = (ranked_global){isnan(v) ? -INFINITY : v, (int32_t)i, t};
        }
    qsort(all, (size_t)rows, sizeof(ranked_global), ranked_global_cmp);
    for (int64_t j = 0; j < total; j++) n_keep[all[j].head]++;
    free(all);
    return 0;
}
