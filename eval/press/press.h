/* KV-cache presses: the compression methods of the evaluator (../shared/docs/kv-compression.md).
 *
 * A press is split the way section 0 and section 5 of that page ask:
 *   - a SCORER gives one score per (layer, KV head, cached row); higher = keep. It sees the
 *     cache (post-RoPE K/V at original positions) and, through an observer hooked into the
 *     cached forward, the post-RoPE queries of every token fed while it observes (all of the
 *     prompt for H2O, the last `window` for SnapKV/PyramidKV/TOVA, the reconstruction prompt's
 *     for KVzip). Scorers never build a [T, T] matrix: they work on query blocks.
 *   - a SELECTOR turns scores into a kept set per (layer, KV head): uniform top-k per head,
 *     head-adaptive (flattened over a layer's heads with an alpha safeguard) or per-layer
 *     budgets (PyramidKV, CompressKV, KVzip global).
 *   - the cache is COMPACTED for real (lrsa_kv_cache_keep_rows): rows are moved and the
 *     allocation shrinks, so memory follows the kept tokens; heads may end up ragged.
 * Protected tokens (the first `sink` rows, the last `window` rows) get +INFINITY scores so every
 * selector keeps them.
 *
 * Budgets are stored as a keep fraction (of the rows in the cache when the press runs) or as
 * tokens per layer (per KV head), and converted at the edges: n_keep = (int64)(keep * T) for a
 * fraction, min(tokens, T) for a token budget; kvpress's compression_ratio is 1 - keep.
 *
 * "Score once, sweep budgets": lrsa_press_score fills an lrsa_press_scores from a full cache;
 * lrsa_press_apply selects with any budget and compacts a clone of that cache, so a grid over
 * keep fractions prefills each sample once (not for PyramidKV/CompressKV per-layer budgets,
 * which are recomputed per budget inside apply, still from the same scores).
 *
 * Running a press on a sample (lrsa_press_prefill_and_score, lrsa_press_compress) belongs to the
 * prefill, one floor up (eval/run/prefill.h): it hooks the press's observer into the cached
 * forward and then calls the scorer, so no press calls the prefill.
 *
 * LagKV's own incremental compression (chunked or one-shot prefill) stays inside the cache
 * (lrsa_kv_cache with compress = 1, eval/cache/kv_cache.h); the press method LAGKV maps to it. The
 * kvpress-compatible variant (LAGKV_KVPRESS) is a scorer here: LagKV partition scores, then a
 * uniform top-k over the whole context. */
#ifndef LRSA_EVAL_PRESS_H
#define LRSA_EVAL_PRESS_H
#include <stdint.h>

#include "base/error.h"
#include "data/tokenizer.h"
#include "eval/cache/cached_forward.h"
#include "eval/cache/kv_cache.h"
#include "model/model.h"

typedef enum lrsa_press_method {
    LRSA_PRESS_NONE = 0,      /* full cache */
    LRSA_PRESS_LAGKV,         /* incremental LagKV inside the cache (chunked / one-shot) */
    LRSA_PRESS_LAGKV_KVPRESS, /* LagKV scores, uniform top-k over the context (kvpress) */
    LRSA_PRESS_STREAMING,     /* StreamingLLM: sink + most recent */
    LRSA_PRESS_SNAPKV,        /* window attention, pooled (kernel), mean over the group */
    LRSA_PRESS_H2O,           /* accumulated attention of all prompt queries (prefill variant) */
    LRSA_PRESS_PYRAMIDKV,     /* SnapKV scores, pyramid per-layer budgets */
    LRSA_PRESS_TOVA,          /* attention of the last query, mean over heads */
    LRSA_PRESS_KNORM,         /* minus the L2 norm of the key */
    LRSA_PRESS_KVZIP,         /* max attention of the context-reconstruction queries */
    LRSA_PRESS_COMPRESSKV,    /* semantic-retrieval-head scores, per-layer budgets from a file */
    LRSA_PRESS_COUNT
} lrsa_press_method;

typedef enum lrsa_press_selector {
    LRSA_SELECT_UNIFORM = 0,   /* top-n_keep per (layer, KV head) */
    LRSA_SELECT_HEAD_ADAPTIVE, /* AdaKV: per layer, the top (sum of the heads' n_keep) over all
                                  heads together; every head first keeps its top
                                  (int)(alpha * n_keep) (the safeguard) */
    LRSA_SELECT_LAYER_BUDGET,  /* per-layer budgets (PyramidKV's formula, CompressKV's file),
                                  then top-budget per head inside the layer; the default and only
                                  selector of PYRAMIDKV and COMPRESSKV */
    /* One threshold over ALL layers and KV heads together (KVzip's non-uniform pair-level
     * budget, its default): the total kept equals the uniform budget's, each (layer, head) gets
     * as many rows as it has scores above the threshold. Counts come from
     * lrsa_press_select_global (eval/press/press_select.c, declared in press_internal.h); the press
     * core then keeps each head's top n_keep. (Added by helper kvzip.) */
    LRSA_SELECT_GLOBAL
} lrsa_press_selector;

typedef enum lrsa_press_pool { LRSA_POOL_AVG = 0, LRSA_POOL_MAX } lrsa_press_pool;

/* Prefill modes (label every result with its mode). Only LAGKV's compressing cache depends on
 * it; every other press prefills its full cache in one forward (chunking a full cache changes
 * nothing). */
typedef enum lrsa_prefill_mode { LRSA_PREFILL_CHUNKED = 0, LRSA_PREFILL_ONESHOT } lrsa_prefill_mode;

/* Where the question goes (kv-compression.md section 0, "query-agnostic vs query-aware").
 * AWARE (= 0, the first evaluator's behaviour): the whole prompt, question included, is
 *   prefilled under the press; LAGKV keeps compressing incrementally while the answer is fed,
 *   the other presses compress once after the prefill.
 * AGNOSTIC (kvpress's default): only the context is prefilled and compressed; the question and
 *   the answer are then fed on the compressed cache with compression off (lrsa_press_freeze),
 *   and the cache is trimmed back to the context after each answer (lrsa_kv_cache_truncate). */
typedef enum lrsa_press_protocol {
    LRSA_PROTOCOL_AWARE = 0,
    LRSA_PROTOCOL_AGNOSTIC
} lrsa_press_protocol;

typedef struct lrsa_press_spec {
    lrsa_press_method method;
    /* Budget: exactly one of keep (in (0, 1]) or tokens_per_layer (> 0) is set; the other is 0. */
    double keep;
    int64_t tokens_per_layer;
    lrsa_press_selector selector;
    float alpha; /* head-adaptive safeguard fraction (default 0.2) */
    int sink;    /* protected first rows (StreamingLLM 4, LagKV S) */
    int window;  /* observation window (SnapKV family, default 64); protected */
    int kernel;  /* SnapKV pooling kernel (default 5, odd) */
    lrsa_press_pool pool;
    float pyramid_beta;          /* PyramidKV: budget slope parameter (default 20) */
    lrsa_lagkv_params lagkv;     /* LAGKV, LAGKV_KVPRESS */
    const char *compresskv_file; /* COMPRESSKV: per-model heads/budgets file (lrsa compresskv) */
    int kvzip_chunk;             /* KVzip: reconstruction chunk length in tokens (default 2048) */
    /* KVzip: token ids of the reconstruction prompt ("Repeat the previous context:" in the
     * model's chat format), set by the caller that holds the tokenizer; borrowed. */
    const int32_t *kvzip_prompt_ids;
    int64_t n_kvzip_prompt;
    lrsa_prefill_mode prefill; /* LAGKV only: chunked or one-shot (others: one forward) */
} lrsa_press_spec;

/* Defaults of every field for a method (keep = 1). */
void lrsa_press_spec_defaults(lrsa_press_spec *s, lrsa_press_method method);
/* Validates the spec; the error names the field, the value and the valid range. */
int lrsa_press_spec_check(const lrsa_press_spec *s, lrsa_err *e);
/* "snapkv", "lagkv", ... <-> method. Unknown names give an error listing the valid ones. */
const char *lrsa_press_method_name(lrsa_press_method m);
int lrsa_press_method_parse(const char *name, lrsa_press_method *out, lrsa_err *e);
/* A one-line label for results: "snapkv(keep=0.25,window=64,kernel=5,pool=avg,uniform)". */
const char *lrsa_press_describe_spec(const lrsa_press_spec *s, char *buf, int cap);
/* Does the method score from queries the observer must collect during prefill? */
int lrsa_press_needs_queries(const lrsa_press_spec *s);

/* ---- Scores ---- */
typedef struct lrsa_press_scores {
    int n_layers, n_kv_heads;
    int64_t *len;  /* [layers * kv_heads]: rows scored (the cache length at scoring time) */
    float **score; /* [layers * kv_heads] -> [len] */
    /* Seconds the scorer spent in forwards of its own beyond the prefill (KVzip's
     * reconstruction passes; 0 for scorers that only read the observer). The grid reports
     * KVzip's overhead as score_s / (prefill-and-score time - score_s). Set by the scorer. */
    double score_s;
} lrsa_press_scores;

void lrsa_press_scores_free(lrsa_press_scores *s);

/* Selects with the spec's budget and compacts `c` (which must hold exactly the scored rows).
 * kept_fraction (may be NULL): [layers * kv_heads] kept rows / scored rows after the press.
 * Protected rows (+INFINITY) are always kept, even when they alone exceed the budget.
 * LAGKV: nothing to select (its cache compressed itself); kept_fraction is the cache's
 * rows / c->seen. NONE: keeps everything. */
int lrsa_press_apply(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                     const lrsa_press_scores *sc, double *kept_fraction, lrsa_err *e);

/* ---- Budgets, protocols, the one-call path ---- */
/* Rows kept of T under the spec's budget: (int64_t)(keep * T) (kvpress's int(T * (1 - r))) or
 * min(tokens_per_layer, T); at least 1 when T > 0. */
int64_t lrsa_press_n_keep(const lrsa_press_spec *s, int64_t T);
/* Sets a keep-fraction budget (tokens_per_layer = 0); for LAGKV also its per-partition r
 * (lagkv.keep), which is that method's budget. What a grid calls per budget point. */
void lrsa_press_set_keep(lrsa_press_spec *s, double keep);
/* PyramidKV per-layer budgets (kv-compression.md 3.4) for T rows; budget[l] counts every kept
 * row of a head of layer l, the window included. */
void lrsa_pyramid_budgets(const lrsa_press_spec *s, int n_layers, int64_t T, int64_t *budget);
const char *lrsa_press_protocol_name(lrsa_press_protocol p); /* "aware", "agnostic" */
int lrsa_press_protocol_parse(const char *name, lrsa_press_protocol *out, lrsa_err *e);
/* The prefill mode a result should be labelled with: the spec's for LAGKV, "oneshot" for every
 * other press (their full cache is always fed in one forward). */
const char *lrsa_press_prefill_label(const lrsa_press_spec *s);
/* Can one scoring serve several budgets (clone + apply per budget)? 0 for LAGKV, whose budget
 * shapes the prefill itself, and for NONE (nothing to sweep). */
int lrsa_press_sweepable(const lrsa_press_spec *s);

/* The cache a press runs on, shaped for the model: a compressing LagKV cache for LAGKV
 * (s->lagkv), a full cache otherwise. */
int lrsa_press_cache_init(lrsa_kv_cache *c, const lrsa_model *m, const lrsa_press_spec *s,
                          lrsa_err *e);
/* Stops any further compression of the cache (LAGKV's incremental events); the other presses
 * never compress outside apply. The agnostic protocol calls it once the context is compressed.
 */
void lrsa_press_freeze(lrsa_kv_cache *c);

/* Where the question starts inside a prompt ids[0..prompt_len) built by the chat template
 * (data/chat.h), for the agnostic protocol: the datasets (data/dataset.h) store one prompt per
 * sample with no context/question split, and `lrsa prepare` writes the user turn as
 * instruction + "\n\n" + context + "\n\n" + question. So: find the end of the last user turn
 * (the last end-of-turn id before prompt_len, lrsa_chat_stop_ids; the prompt end for format
 * NONE), decode that turn (after its last special token), find its last "\n\n" in the text
 * (however the tokenizer splits it), and the question starts after the token that completes
 * it. Returns that index (the context length), or -1 when there is no such token
 * with a non-empty question after it. */
int64_t lrsa_press_question_start(const lrsa_tokenizer *tok, const int32_t *ids,
                                  int64_t prompt_len);
#endif
