/* The forward pass of a model over a KV cache, built from the model's block API: embed, then per
 * layer q/k/v at absolute positions, append K/V to the cache, cached attention, output block;
 * after the whole forward the cache runs its compression events (use, then compress:
 * lagkv-lrsa.md section 4). The prefill modes (eval/run/prefill.h) and the presses' own passes
 * (KVzip's reconstruction) are built on it. A press watches a forward through the layer
 * observer declared here, so the code that feeds the cache calls the press, never the other
 * way round. */
#ifndef LRSA_EVAL_CACHED_FORWARD_H
#define LRSA_EVAL_CACHED_FORWARD_H
#include <stdint.h>

#include "eval/cache/kv_cache.h"
#include "model/model.h"

/* ---- The observer hooked into the cached forward ---- */
/* Called once per layer of every cached forward, after the new rows were appended and attended,
 * before the layer's output block: q = post-RoPE queries of the N new tokens (row n, head h at
 * q + n*q_stride + h*D), pos their absolute positions. */
typedef struct lrsa_layer_observer {
    void (*fn)(void *user, const lrsa_kv_cache *c, int layer, const float *q, int64_t q_stride,
               int n_q_heads, const int32_t *pos, int64_t N);
    void *user;
} lrsa_layer_observer;

/* ---- Several sequences per forward (batched evaluation) ---- */
/* One sequence of a batched forward: n new tokens of its own sequence, fed into its own cache at
 * absolute positions cache->seen .. cache->seen + n - 1. logits: NULL, [n, V] (all_logits) or [V]
 * of its last token. obs (may be NULL) watches this sequence only. */
typedef struct lrsa_forward_seq {
    lrsa_kv_cache *cache;
    const int32_t *ids;
    int64_t n;
    float *logits;
    int all_logits;
    const lrsa_layer_observer *obs;
} lrsa_forward_seq;

/* One forward of several sequences, each over its own cache (distinct caches). The rows of all
 * sequences are packed into one matrix (no padding) for everything around attention: embedding,
 * q/k/v, the output block and the LM head of the last-token logits are one GEMM over all rows,
 * so B sequences of short chunks or single decode tokens make B times taller GEMMs. Attention
 * runs per sequence over its own cache (lrsa_cache_attention), and each cache runs its own
 * compression events after the forward. Per row the arithmetic is that of one
 * lrsa_cached_forward_observed per sequence; only SGEMM's rounding may differ, because OpenBLAS
 * accumulates a row differently depending on how many rows share the call (docs/EVAL.md,
 * "Batched evaluation"). One sequence gives exactly lrsa_cached_forward_observed. Returns the
 * number of (layer, head) events over all caches. */
int lrsa_cached_forward_batch(const lrsa_model *m, const lrsa_forward_seq *seqs, int n_seqs);

/* One forward of N new tokens at absolute positions c->seen .. c->seen + N - 1. logits may be
 * NULL; otherwise it receives [N, V] (all_logits) or [V] of the last token. Then every layer's
 * compression event runs if it triggers. Returns the number of (layer, head) events. */
int lrsa_cached_forward(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int64_t N,
                        float *logits, int all_logits);
/* The same, calling obs (may be NULL) for every layer after the new rows were appended and
 * attended (the press observer: post-RoPE queries of the N tokens and their positions). */
int lrsa_cached_forward_observed(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                                 int64_t N, float *logits, int all_logits,
                                 const lrsa_layer_observer *obs);
#endif
