/* KV cache storage and LagKV incremental compression (lagkv-lrsa.md section 4). */
#include "eval/cache/kv_cache.h"

#include <stdlib.h>
#include <string.h>

int lrsa_kv_cache_init(lrsa_kv_cache *c, int n_layers, int n_kv_heads, int head_dim,
                       const lrsa_lagkv_params *lagkv, lrsa_err *e) {
    memset(c, 0, sizeof(*c));
    if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0)
        return lrsa_errorf(e,
                           "KV cache: layers (%d), KV heads (%d) and head_dim (%d) must all be "
                           "positive; check the model's config.json",
                           n_layers, n_kv_heads, head_dim);
    if (lagkv) {
        if (lrsa_lagkv_validate(lagkv, e) != 0) return lrsa_err_prefix(e, "KV cache: ");
        c->compress = 1;
        c->lagkv = *lagkv;
    }
    c->n_layers = n_layers;
    c->n_kv_heads = n_kv_heads;
    c->head_dim = head_dim;
    c->heads = lrsa_calloc((size_t)n_layers * n_kv_heads, sizeof(lrsa_kv_head));
    lrsa_kv_cache_reset(c);
    return 0;
}

void lrsa_kv_cache_free(lrsa_kv_cache *c) {
    if (!c->heads) return;
    for (int64_t i = 0; i < (int64_t)c->n_layers * c->n_kv_heads; i++) {
        free(c->heads[i].k);
        free(c->heads[i].v);
        free(c->heads[i].pos);
    }
    free(c->heads);
    memset(c, 0, sizeof(*c));
}

void lrsa_kv_cache_reset(lrsa_kv_cache *c) {
    c->seen = 0;
    for (int64_t i = 0; i < (int64_t)c->n_layers * c->n_kv_heads; i++) {
        c->heads[i].len = 0;
        c->heads[i].events = 0;
        c->heads[i].base = c->compress ? c->lagkv.sink : 0;
    }
}

/* Reallocates one head's rows to exactly `cap` (growing or shrinking). */
static void head_set_cap(lrsa_kv_head *h, int64_t cap, int D) {
    LRSA_CHECK(cap >= h->len);
    if (cap == 0) cap = 1; /* keep pointers valid */
    h->k = lrsa_realloc(h->k, (size_t)cap * D * sizeof(float));
    h->v = lrsa_realloc(h->v, (size_t)cap * D * sizeof(float));
    h->pos = lrsa_realloc(h->pos, (size_t)cap * sizeof(int32_t));
    h->cap = cap;
}

void lrsa_kv_cache_append(lrsa_kv_cache *c, int layer, const float *k, const float *v,
                          int64_t row_stride, const int32_t *pos, int64_t N) {
    LRSA_CHECK(layer >= 0 && layer < c->n_layers);
    const int D = c->head_dim;
    for (int g = 0; g < c->n_kv_heads; g++) {
        lrsa_kv_head *h = lrsa_kv_cache_head(c, layer, g);
        if (h->len + N > h->cap) {
            /* Grow by 1/4 (not 2x): the allocation should stay close to the kept rows; the
             * copies this costs are amortised over at least cap/4 appended rows. */
            int64_t cap = h->cap + h->cap / 4;
            if (cap < h->len + N) cap = h->len + N;
            if (cap < 64) cap = 64;
            head_set_cap(h, cap, D);
        }
        for (int64_t n = 0; n < N; n++) {
            memcpy(h->k + (h->len + n) * D, k + n * row_stride + (int64_t)g * D,
                   (size_t)D * sizeof(float));
            memcpy(h->v + (h->len + n) * D, v + n * row_stride + (int64_t)g * D,
                   (size_t)D * sizeof(float));
            h->pos[h->len + n] = pos[n];
        }
        h->len += N;
    }
    /* `seen` counts tokens of the sequence; every layer sees the same tokens, so layer 0 moves it.
     */
    if (layer == 0 && N > 0) {
        int64_t next = (int64_t)pos[N - 1] + 1;
        if (next > c->seen) c->seen = next;
    }
}

static void move_row(lrsa_kv_head *h, int64_t dst, int64_t src, int D) {
    if (dst == src) return;
    memmove(h->k + dst * D, h->k + src * D, (size_t)D * sizeof(float));
    memmove(h->v + dst * D, h->v + src * D, (size_t)D * sizeof(float));
    h->pos[dst] = h->pos[src];
}

/* One LagKV event on one head, if T >= base + 2L. The region [base, end) is cut into n
 * partitions of L rows; P_0..P_{n-2} are each scored against their successor and keep k rows
 * (ascending); P_{n-1} and the leftover stay whole. Each partition is scored before anything
 * moves into it (the write cursor never passes the start of the partition being scored or of
 * its reference), and rows only move toward the front, in order. */
static int head_event(lrsa_kv_head *h, const lrsa_lagkv_params *p, int D) {
    const int64_t L = p->lag;
    if (h->len < h->base + 2 * L) return 0;
    const int64_t n = (h->len - h->base) / L;
    const int kk = lrsa_lagkv_k(p);
    const int64_t n_scored = n - 1;
    float *score = lrsa_malloc((size_t)L * sizeof(float));
    int32_t *idx = lrsa_malloc((size_t)(kk > 0 ? kk : 1) * sizeof(int32_t));
    int64_t w = h->base;
    for (int64_t j = 0; j < n_scored; j++) {
        const int64_t start = h->base + j * L;
        lrsa_lagkv_score_partition(score, h->k + start * D, h->v + start * D,
                                   h->k + (start + L) * D, h->v + (start + L) * D, (int)L, D, D,
                                   p->value_weight);
        lrsa_lagkv_topk_ascending(idx, score, (int)L, kk);
        for (int i = 0; i < kk; i++) {
            int64_t src = start + idx[i];
            LRSA_CHECK(src >= w && src < start + L, "(selection out of its partition)");
            move_row(h, w++, src, D);
        }
    }
    free(score);
    free(idx);
    for (int64_t src = h->base + n_scored * L; src < h->len; src++) move_row(h, w++, src, D);
    h->base += n_scored * kk;
    h->len = w;
    h->events++;
    /* Give memory back when the allocation is well above what is kept plus room for the next
     * 2L rows (so steady-state decoding does not reallocate at every event). */
    int64_t want = h->len + 2 * L;
    if (h->cap > want + want / 2) head_set_cap(h, want, D);
    return 1;
}

int lrsa_kv_cache_compress_layer(lrsa_kv_cache *c, int layer) {
    if (!c->compress) return 0;
    int events = 0;
    for (int g = 0; g < c->n_kv_heads; g++)
        events += head_event(lrsa_kv_cache_head(c, layer, g), &c->lagkv, c->head_dim);
    return events;
}

int lrsa_kv_cache_compress(lrsa_kv_cache *c) {
    int events = 0;
    for (int l = 0; l < c->n_layers; l++) events += lrsa_kv_cache_compress_layer(c, l);
    return events;
}

int64_t lrsa_kv_cache_kept_rows(const lrsa_kv_cache *c) {
    int64_t s = 0;
    for (int64_t i = 0; i < (int64_t)c->n_layers * c->n_kv_heads; i++) s += c->heads[i].len;
    return s;
}

int64_t lrsa_kv_cache_spans_kept(const lrsa_kv_cache *c, const int64_t *rows, int64_t n_spans) {
    int64_t kept = 0;
    for (int64_t h = 0; h < (int64_t)c->n_layers * c->n_kv_heads; h++) {
        const lrsa_kv_head *hd = &c->heads[h];
        for (int64_t i = 0; i < n_spans; i++) {
            int any = 0;
            for (int64_t r = 0; r < hd->len && !any; r++)
                any = hd->pos[r] >= rows[3 * i + 1] && hd->pos[r] < rows[3 * i + 2];
            kept += any;
        }
    }
    return kept;
}

int64_t lrsa_kv_cache_span_tokens_kept(const lrsa_kv_cache *c, const int64_t *rows,
                                       int64_t n_spans) {
    int64_t kept = 0;
    for (int64_t h = 0; h < (int64_t)c->n_layers * c->n_kv_heads; h++) {
        const lrsa_kv_head *hd = &c->heads[h];
        for (int64_t r = 0; r < hd->len; r++)
            for (int64_t i = 0; i < n_spans; i++)
                kept += hd->pos[r] >= rows[3 * i + 1] && hd->pos[r] < rows[3 * i + 2];
    }
    return kept;
}

int lrsa_kv_cache_needle_rates(const lrsa_kv_cache *c, const int64_t *rows, int64_t n_spans,
                               double *any, double *tokens) {
    if (n_spans <= 0) return 0;
    const int64_t heads = (int64_t)c->n_layers * c->n_kv_heads;
    int64_t span_tokens = 0;
    for (int64_t k = 0; k < n_spans; k++) span_tokens += rows[3 * k + 2] - rows[3 * k + 1];
    *any = (double)lrsa_kv_cache_spans_kept(c, rows, n_spans) / (double)(heads * n_spans);
    *tokens = span_tokens > 0 ? (double)lrsa_kv_cache_span_tokens_kept(c, rows, n_spans) /
                                    (double)(heads * span_tokens)
                              : 0.0;
    return 1;
}

int64_t lrsa_kv_cache_max_len(const lrsa_kv_cache *c) {
    int64_t m = 0;
    for (int64_t i = 0; i < (int64_t)c->n_layers * c->n_kv_heads; i++)
        if (c->heads[i].len > m) m = c->heads[i].len;
    return m;
}

size_t lrsa_kv_cache_bytes_per_token(const lrsa_kv_cache *c) {
    return (size_t)c->n_layers * c->n_kv_heads * 2 * c->head_dim * sizeof(float);
}

size_t lrsa_kv_cache_live_bytes(const lrsa_kv_cache *c) {
    return (size_t)lrsa_kv_cache_kept_rows(c) * 2 * c->head_dim * sizeof(float);
}

size_t lrsa_kv_cache_alloc_bytes(const lrsa_kv_cache *c) {
    size_t s = 0;
    for (int64_t i = 0; i < (int64_t)c->n_layers * c->n_kv_heads; i++)
        s += (size_t)c->heads[i].cap * (2 * c->head_dim * sizeof(float) + sizeof(int32_t));
    return s;
}

int64_t lrsa_lagkv_oneshot_len(int64_t T0, const lrsa_lagkv_params *p) {
    const int64_t S = p->sink, L = p->lag;
    if (T0 < S + 2 * L) return T0;
    const int64_t n = (T0 - S) / L;
    return S + (int64_t)lrsa_lagkv_k(p) * (n - 1) + L + (T0 - S) % L;
}

void lrsa_kv_cache_keep_rows(lrsa_kv_cache *c, int layer, int g, const int64_t *idx, int64_t n) {
    lrsa_kv_head *h = lrsa_kv_cache_head(c, layer, g);
    const int D = c->head_dim;
    LRSA_CHECK(n >= 0 && n <= h->len);
    for (int64_t i = 0; i < n; i++) {
        LRSA_CHECK(idx[i] >= i && idx[i] < h->len && (i == 0 || idx[i] > idx[i - 1]),
                   "(kept rows must be ascending row indices)");
        move_row(h, i, idx[i], D); /* idx[i] >= i: rows only move toward the front */
    }
    h->len = n;
    if (h->base > n) h->base = n;
    head_set_cap(h, n, D);
}

void lrsa_kv_cache_clone(lrsa_kv_cache *dst, const lrsa_kv_cache *src) {
    *dst = *src;
    const int64_t nh = (int64_t)src->n_layers * src->n_kv_heads;
    const int D = src->head_dim;
    dst->heads = lrsa_calloc((size_t)nh, sizeof(lrsa_kv_head));
    for (int64_t i = 0; i < nh; i++) {
        const lrsa_kv_head *s = &src->heads[i];
        lrsa_kv_head *d = &dst->heads[i];
        *d = *s;
        d->k = d->v = NULL;
        d->pos = NULL;
        d->cap = 0;
        head_set_cap(d, s->len, D);
        memcpy(d->k, s->k, (size_t)s->len * D * sizeof(float));
        memcpy(d->v, s->v, (size_t)s->len * D * sizeof(float));
        memcpy(d->pos, s->pos, (size_t)s->len * sizeof(int32_t));
    }
}

void lrsa_kv_cache_truncate(lrsa_kv_cache *c, int64_t p) {
    LRSA_CHECK(p >= 0 && p <= c->seen, "(truncate past the tokens seen)");
    for (int64_t i = 0; i < (int64_t)c->n_layers * c->n_kv_heads; i++) {
        lrsa_kv_head *h = &c->heads[i];
        /* Rows are in ascending original position: cut at the first row at or past p. */
        int64_t lo = 0, hi = h->len;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (h->pos[mid] < p)
                lo = mid + 1;
            else
                hi = mid;
        }
        h->len = lo;
        if (h->base > lo) h->base = lo;
    }
    c->seen = p;
}
