/* Prefill in both modes, one-shot and chunked, over the cached forward (eval/cache/
 * cached_forward.h, included here), and the prefill that runs a press: it hooks the press's
 * observer into the forward and then asks the press to score, so presses never call the
 * prefill. */
#ifndef LRSA_EVAL_PREFILL_H
#define LRSA_EVAL_PREFILL_H
#include <stdint.h>

#include "eval/run/answer_nll.h"
#include "eval/cache/cached_forward.h"
#include "eval/cache/kv_cache.h"
#include "model/model.h"

/* A cache shaped for the model under a press (full cache unless press->spec.method is LAGKV). */
int lrsa_kv_cache_for_model(lrsa_kv_cache *c, const lrsa_model *m, const lrsa_press_config *press,
                            lrsa_err *e);

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

/* ---- Several prompts at once (batched evaluation) ---- */
/* Rows one batched forward packs at most (a longer single chunk runs alone): bounds the
 * activations' memory (about 32 KB per row for SmolLM2-135M) whatever the batch size. */
#define LRSA_BATCH_MAX_ROWS 2048

/* lrsa_cached_forward_batch of B sequences in order, as few forwards as LRSA_BATCH_MAX_ROWS
 * allows (consecutive sequences share a forward; a longer one runs alone). */
void lrsa_cached_forward_grouped(const lrsa_model *m, const lrsa_forward_seq *seqs, int B);

/* lrsa_prefill_observed of several prompts, each into its own cache: seqs[b] holds the cache,
 * the n prompt ids, logits ([V] or [n, V] with all_logits, or NULL) and an observer, as one
 * prompt would. Each forward packs the next piece of every unfinished prompt
 * (lrsa_cached_forward_batch): a chunked compressing cache advances one chunk per forward, so a
 * short prompt drops out early; a one-shot prompt or a full cache is one piece. A forward packs
 * at most LRSA_BATCH_MAX_ROWS rows; pieces that do not fit wait for the next forward. Every
 * cache sees exactly the forwards lrsa_prefill_observed would give it. */
int lrsa_prefill_batch(const lrsa_model *m, const lrsa_forward_seq *seqs, int B,
                       lrsa_prefill_mode mode, lrsa_err *e);

/* lrsa_press_prefill_and_score of B samples at once (one spec): c[b] empty caches, ids[b] of
 * n[b] tokens, logits NULL or logits[b] as one sample's, out[b] the scores. The prefills are
 * batched (lrsa_prefill_batch, one observer per sample); the scoring (KVzip's reconstruction
 * passes included) runs per sample. */
int lrsa_press_prefill_and_score_batch(const lrsa_model *m, int B, lrsa_kv_cache *const *c,
                                       const lrsa_press_spec *s, const int32_t *const *ids,
                                       const int64_t *n, float *const *logits, int all_logits,
                                       lrsa_press_scores *out, lrsa_err *e);
/* lrsa_press_compress of B samples at once: kept_fraction NULL or [B * layers * kv_heads]
 * (sample b's per-head fractions at b * layers * kv_heads). */
int lrsa_press_compress_batch(const lrsa_model *m, int B, lrsa_kv_cache *const *c,
                              const lrsa_press_spec *s, const int32_t *const *ids, const int64_t *n,
                              float *const *logits, int all_logits, double *kept_fraction,
                              lrsa_err *e);

/* ---- Running a press (eval/press/press.h) on one sample ---- */
/* A press run on one sample: prefills `ids` (the context, or context + question for the
 * query-aware protocol) into the EMPTY full cache `c` while its observer collects what the
 * scorer needs, then scores every row of every (layer, KV head). For KVZIP this also runs the
 * reconstruction forward and trims the cache back to the context. logits as lrsa_prefill. */
int lrsa_press_prefill_and_score(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                                 const int32_t *ids, int64_t n, float *logits, int all_logits,
                                 lrsa_press_scores *out, lrsa_err *e);

/* One budget in one call: lrsa_press_prefill_and_score then lrsa_press_apply on `c` (from
 * lrsa_press_cache_init, empty). logits: NULL or [V] of the last token (or [n, V] with
 * all_logits). kept_fraction as in apply (may be NULL). */
int lrsa_press_compress(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                        const int32_t *ids, int64_t n, float *logits, int all_logits,
                        double *kept_fraction, lrsa_err *e);
/* The end (exclusive absolute position) of the next chunked-prefill forward after `seen`
 * tokens: S + 2L first, then the next partition boundary S + jL. */
int64_t lrsa_chunk_end(int64_t seen, const lrsa_lagkv_params *p);

const char *lrsa_prefill_mode_name(lrsa_prefill_mode mode);
#endif
