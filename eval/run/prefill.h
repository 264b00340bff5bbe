/* Forward passes of a model over a KV cache, built from the model's block API: embed, then per
 * layer q/k/v at absolute positions, append K/V to the cache, cached attention, output block;
 * after the whole forward the cache runs its compression events (use, then compress:
 * lagkv-lrsa.md section 4). Prefill in both modes: one-shot and chunked. */
#ifndef LRSA_EVAL_PREFILL_H
#define LRSA_EVAL_PREFILL_H
#include <stdint.h>

#include "eval/run/answer_nll.h"
#include "eval/cache/kv_cache.h"
#include "model/model.h"

/* A cache shaped for the model under a press (full cache unless press->spec.method is LAGKV). */
int lrsa_kv_cache_for_model(lrsa_kv_cache *c, const lrsa_model *m, const lrsa_press_config *press,
                            lrsa_err *e);

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

/* Feeds n prompt tokens. ONESHOT: one exact forward of all of them, then one event per layer.
 * CHUNKED (compressing cache): forwards that end on the partition grid, so the first covers
 * S + 2L tokens and every later one L (the last may be shorter), each followed by its events.
 * A full cache is always fed in one forward (chunking would not change its results).
 * logits as in lrsa_cached_forward ([n, V] or [V]). Token ids are checked against the vocab. */
int lrsa_prefill(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int64_t n,
                 lrsa_prefill_mode mode, float *logits, int all_logits, lrsa_err *e);
/* lrsa_prefill with an observer on every forward (obs may be NULL). */
int lrsa_prefill_observed(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int64_t n,
                          lrsa_prefill_mode mode, float *logits, int all_logits,
                          const lrsa_layer_observer *obs, lrsa_err *e);

/* The end (exclusive absolute position) of the next chunked-prefill forward after `seen`
 * tokens: S + 2L first, then the next partition boundary S + jL. */
int64_t lrsa_chunk_end(int64_t seen, const lrsa_lagkv_params *p);

const char *lrsa_prefill_mode_name(lrsa_prefill_mode mode);
#endif
