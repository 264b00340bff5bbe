/* The KV cache of compressed inference: per layer and KV head, the post-RoPE K/V rows of the
 * tokens still kept, with their original absolute positions, and LagKV incremental compression
 * (../shared/docs/lagkv-lrsa.md section 4).
 *
 * Every (layer, KV head) owns its own rows, length and `base`, so heads may have different
 * lengths (LagKV keeps them equal; other presses will not). A compression event compacts the
 * rows in place and shrinks the allocation when it is much larger than what is kept, so the
 * memory follows the kept tokens. */
#ifndef LRSA_EVAL_KV_CACHE_H
#define LRSA_EVAL_KV_CACHE_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "kernels/lagkv/lagkv.h"

typedef struct lrsa_kv_head {
    float *k, *v;   /* [cap, D] each, rows in cache order (ascending original position) */
    int32_t *pos;   /* [cap] original absolute position of each row */
    int64_t len;    /* rows in use */
    int64_t cap;    /* rows allocated */
    int64_t base;   /* LagKV: length of the finalised prefix (sink + kept), initially S */
    int64_t events; /* compression events run on this head */
} lrsa_kv_head;

typedef struct lrsa_kv_cache {
    int n_layers, n_kv_heads, head_dim;
    int compress;            /* 0: full cache (no compression); 1: LagKV */
    lrsa_lagkv_params lagkv; /* used when compress */
    int64_t seen;            /* tokens of the sequence fed so far (the next absolute position) */
    lrsa_kv_head *heads;     /* [n_layers * n_kv_heads] */
} lrsa_kv_cache;

/* lagkv == NULL gives a full cache. The LagKV parameters are validated (error names the bad one).
 */
int lrsa_kv_cache_init(lrsa_kv_cache *c, int n_layers, int n_kv_heads, int head_dim,
                       const lrsa_lagkv_params *lagkv, lrsa_err *e);
void lrsa_kv_cache_free(lrsa_kv_cache *c);
/* Empties the cache (keeps the allocations) for a new sequence. */
void lrsa_kv_cache_reset(lrsa_kv_cache *c);

static inline lrsa_kv_head *lrsa_kv_cache_head(lrsa_kv_cache *c, int layer, int g) {
    return &c->heads[(int64_t)layer * c->n_kv_heads + g];
}

/* Appends N rows to every KV head of one layer. Row n of KV head g is read from
 * k + n*row_stride + g*D (and v likewise): the fused qkv layout of the model's block API, with
 * k = qkv + Hq*D, v = qkv + (Hq+Hkv)*D, row_stride = (Hq+2Hkv)*D. pos[N]: absolute positions.
 * Does not compress (use, then compress: see lrsa_kv_cache_compress_layer). */
void lrsa_kv_cache_append(lrsa_kv_cache *c, int layer, const float *k, const float *v,
                          int64_t row_stride, const int32_t *pos, int64_t N);

/* Runs the LagKV event of every KV head of one layer if its trigger holds (T >= base + 2L);
 * a full cache never compresses. Returns the number of heads that ran an event. */
int lrsa_kv_cache_compress_layer(lrsa_kv_cache *c, int layer);
/* The same for every layer (call after a whole forward). Returns the number of head events. */
int lrsa_kv_cache_compress(lrsa_kv_cache *c);

/* Keeps only rows idx[0..n) (ascending row indices, each < len) of one (layer, KV head), in
 * order, and shrinks the allocation to exactly n rows (so memory follows the kept rows). LagKV
 * `base` is clamped to the new length. */
void lrsa_kv_cache_keep_rows(lrsa_kv_cache *c, int layer, int g, const int64_t *idx, int64_t n);
/* A deep copy (rows, positions, lengths, bases, LagKV state) with allocations of exactly the
 * used rows. */
void lrsa_kv_cache_clone(lrsa_kv_cache *dst, const lrsa_kv_cache *src);
/* Drops every row at an absolute position >= p and sets seen = p (p <= seen): trims a question
 * and its answer back off a compressed context, or KVzip's reconstruction rows. LagKV `base` is
 * clamped to the new length. The allocation is kept (the next question reuses it). */
void lrsa_kv_cache_truncate(lrsa_kv_cache *c, int64_t p);

/* Statistics. Bytes per kept token = n_layers * n_kv_heads * 2 * D * sizeof(float). */
int64_t lrsa_kv_cache_kept_rows(const lrsa_kv_cache *c); /* summed over layers and heads */
/* Number of (layer, KV head, span) triples whose rows include at least one original position of
 * the span [rows[3i+1], rows[3i+2]) (rows as the dataset's /needle_spans: sample, start, end):
 * whether compression kept some token of each needle. */
int64_t lrsa_kv_cache_spans_kept(const lrsa_kv_cache *c, const int64_t *rows, int64_t n_spans);
/* Number of (layer, KV head, span token) rows kept, summed over the spans (a token in two
 * overlapping spans counts twice): divided by n_layers * n_kv_heads * (summed span lengths), how
 * much of each needle compression kept, not only whether some of it survived. */
int64_t lrsa_kv_cache_span_tokens_kept(const lrsa_kv_cache *c, const int64_t *rows,
                                       int64_t n_spans);
/* Both as rates of a sample's spans: *any = spans_kept / (n_layers * n_kv_heads * n_spans),
 * *tokens = span_tokens_kept / (n_layers * n_kv_heads * summed span lengths). Returns 0 (and
 * leaves both alone) when the sample has no spans, 1 otherwise. */
int lrsa_kv_cache_needle_rates(const lrsa_kv_cache *c, const int64_t *rows, int64_t n_spans,
                               double *any, double *tokens);
int64_t lrsa_kv_cache_max_len(const lrsa_kv_cache *c); /* longest (layer, head) */
size_t lrsa_kv_cache_bytes_per_token(const lrsa_kv_cache *c);
/* Live K/V bytes: sum over heads of len * 2 * D * sizeof(float). */
size_t lrsa_kv_cache_live_bytes(const lrsa_kv_cache *c);
/* Allocated bytes (K, V and positions at capacity). */
size_t lrsa_kv_cache_alloc_bytes(const lrsa_kv_cache *c);

/* Length of a cache after ONE event on an uncompressed cache of T0 tokens (section 4's general
 * size formula; T0 when no event triggers). */
int64_t lrsa_lagkv_oneshot_len(int64_t T0, const lrsa_lagkv_params *p);
#endif
