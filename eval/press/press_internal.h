/* Shared between the press files (eval/press/press*.c) and the prefill that runs a press
 * (eval/run/prefill.c: observer, scorers).
 * Not part of the public press API (eval/press/press.h). */
#ifndef LRSA_EVAL_PRESS_INTERNAL_H
#define LRSA_EVAL_PRESS_INTERNAL_H
#include <stdint.h>

#include "eval/press/press.h"

/* What the observer collected during a press prefill. */
typedef struct lrsa_press_obs {
    int n_layers, n_q_heads, head_dim;
    int64_t window;   /* queries kept per layer: the last `window` fed tokens */
    int64_t w_len;    /* queries actually held (min(window, tokens fed)) */
    float **wq;       /* [layers] -> [w_len, Hq, D] post-RoPE queries of the last w_len tokens */
    int32_t *wq_pos;  /* [w_len] their absolute positions */
    double **h2o_acc; /* [layers * kv_heads] -> [rows]: H2O accumulated attention (may be NULL) */
    /* Internal bookkeeping of the observer (eval/press/press_observe.c). */
    int n_kv_heads;
    int64_t prev_len; /* w_len before the current forward (layer 0 updates w_len) */
    int64_t n_seen;   /* tokens observed (the end position of the last forward) */
} lrsa_press_obs;

/* Sets up an observer for model m keeping the last `window` queries of every layer (0: none)
 * and, with h2o, accumulating H2O's attention mass. The cache it observes must start empty
 * (H2O averages over the queries from position 0). */
void lrsa_press_obs_init(lrsa_press_obs *o, const lrsa_model *m, int64_t window, int h2o);
void lrsa_press_obs_free(lrsa_press_obs *o);
/* The hook for lrsa_cached_forward_observed / lrsa_prefill_observed. */
lrsa_layer_observer lrsa_press_obs_hook(lrsa_press_obs *o);

/* Attention probabilities of the observer's last nw window queries (rows w_len-nw .. w_len-1)
 * of query head h of `layer` over the rows of its KV head in cache c (full cache: row t is at
 * position pos[t]); a query sees the rows at positions <= its own. out: [nw, len] row-major,
 * zero where not visible. Softmax in fp32 with the maximum subtracted, scale 1/sqrt(D). */
void lrsa_press_window_attention(const lrsa_press_obs *o, const lrsa_kv_cache *c, int layer, int h,
                                 int64_t nw, float *out);

/* SnapKV's score row for KV head g of `layer` (kv-compression.md 3.3): see press_scorers.c. */
void lrsa_press_snapkv_row(const lrsa_press_spec *s, const lrsa_press_obs *o,
                           const lrsa_kv_cache *c, int layer, int g, float *score);
/* The scorers of eval/press/press_scorers.c (STREAMING, SNAPKV, H2O, PYRAMIDKV, TOVA, KNORM,
 * LAGKV_KVPRESS) into scores allocated for c; o may be NULL for the query-free ones. Sink
 * protection is added by the caller (the press prefill, eval/run/prefill.c). */
int lrsa_press_score_builtin(const lrsa_press_spec *s, const lrsa_press_obs *o,
                             const lrsa_kv_cache *c, lrsa_press_scores *out);
/* 1-D pooling of x[n] into y[n] with an odd kernel, stride 1, padding kernel/2: AVG divides the
 * window sum by kernel (zero padding counted, torch avg_pool1d's default), MAX takes the
 * largest in-range value. */
void lrsa_press_pool1d(const float *x, float *y, int64_t n, int kernel, lrsa_press_pool pool);

/* Allocates scores shaped like the cache's current lengths (values uninitialised). */
int lrsa_press_scores_alloc(lrsa_press_scores *s, const lrsa_kv_cache *c);

/* KVZIP (kv-compression.md section 2): after the context ids[0..n) were prefilled into the full
 * cache c, feeds the reconstruction prompt (s->kvzip_* fields) and the context again in chunks
 * through the cache, scoring each cached context row by the max, over the reconstruction
 * queries and the G query heads of its group, of its attention probability; then trims the
 * cache back to the context. Sink rows get +INFINITY. Implemented in eval/press/press_kvzip.c. */
int lrsa_press_score_kvzip(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                           const int32_t *ids, int64_t n, lrsa_press_scores *out, lrsa_err *e);

/* COMPRESSKV (section 1.2): scores from the window queries of the semantic-retrieval heads named
 * in s->compresskv_file, shared across the layer's KV heads. eval/press/press_compresskv.c. */
int lrsa_press_score_compresskv(const lrsa_model *m, const lrsa_kv_cache *c,
                                const lrsa_press_spec *s, const lrsa_press_obs *obs,
                                lrsa_press_scores *out, lrsa_err *e);
/* Per-layer token budgets (section 1.3) from the file's layer weights for a cache of T rows and
 * the spec's budget; budget[l] in [window + sink, T]. eval/press/press_compresskv.c. */
int lrsa_compresskv_layer_budgets(const lrsa_press_spec *s, int n_layers, int64_t T,
                                  int64_t *budget, lrsa_err *e);

/* LRSA_SELECT_GLOBAL: n_keep[l * kv_heads + g] for every (layer, KV head) from ONE ranking of
 * all scores of all layers and heads (score descending, ties by layer, head, row ascending);
 * the total is the sum of the per-head budgets the spec gives (keep * len or min(tokens, len)
 * per head), so it matches the uniform selector's memory. +INFINITY rows rank first, so
 * protected rows stay while the total allows. Keeping each head's top n_keep (ties: lower row
 * first) gives exactly the globally ranked set. eval/press/press_select.c. */
int lrsa_press_select_global(const lrsa_press_spec *s, const lrsa_press_scores *sc, int64_t *n_keep,
                             lrsa_err *e);
#endif
