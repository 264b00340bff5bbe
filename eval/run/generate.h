/* Token generation over a (possibly compressed) KV cache: greedy or temperature + top-p
 * sampling, one decode step per token with incremental compression, stopping at a stop id or
 * after max_new tokens. */
#ifndef LRSA_EVAL_GENERATE_H
#define LRSA_EVAL_GENERATE_H
#include <stdint.h>

#include "base/rng.h"
#include "eval/run/prefill.h"

typedef struct lrsa_gen_options {
    int max_new;             /* >= 0 */
    float temperature;       /* <= 0: greedy */
    float top_p;             /* (0, 1]; 1 = no nucleus cut */
    uint64_t seed;           /* sampling RNG seed */
    const int32_t *stop_ids; /* generation ends when one of them is produced (not emitted) */
    int n_stop;
} lrsa_gen_options;

/* Called for every generated token (stop ids excluded); a non-zero return stops generation. */
typedef int (*lrsa_token_fn)(void *user, int32_t id);

typedef struct lrsa_gen_result {
    int32_t *ids; /* generated tokens (malloc'd, caller frees), stop id excluded */
    int64_t n;
    int stopped; /* 1 when a stop id ended generation */
    double prefill_s, decode_s;
    int64_t decode_steps;
} lrsa_gen_result;

/* Prefills the prompt (mode) into an empty or continuing cache, then decodes. */
int lrsa_generate(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *prompt, int64_t n,
                  lrsa_prefill_mode mode, const lrsa_gen_options *o, lrsa_token_fn on_token,
                  void *user, lrsa_gen_result *res, lrsa_err *e);

/* Generation on a cache that already holds (a compressed form of) prompt[0..done), e.g. after
 * lrsa_press_compress of the context: feeds prompt[done..n) in one forward (the question; when
 * done == n, logits_done [V] = the logits after prompt[n-1] must be given), then decodes like
 * lrsa_generate. res->prefill_s covers only that forward. */
int lrsa_generate_from(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *prompt, int64_t n,
                       int64_t done, const float *logits_done, const lrsa_gen_options *o,
                       lrsa_token_fn on_token, void *user, lrsa_gen_result *res, lrsa_err *e);

/* One sequence of lrsa_generate_from_batch: lrsa_generate_from's arguments, and its result. */
typedef struct lrsa_gen_seq {
    lrsa_kv_cache *cache;
    const int32_t *prompt;
    int64_t n, done;
    const float *logits_done;
    lrsa_gen_options opt;
    lrsa_token_fn on_token; /* may be NULL */
    void *user;
    lrsa_gen_result res; /* out (res.ids malloc'd, the caller frees) */
} lrsa_gen_seq;

/* lrsa_generate_from of B sequences at once, each on its own cache: the questions (done < n)
 * are fed in batched forwards (lrsa_cached_forward_grouped), then each decode step feeds the
 * new tokens of every unfinished sequence in one forward (lrsa_cached_forward_batch). Each
 * sequence stops on its own (a stop id, its max_new or its callback) and drops out of the
 * later steps. Per sequence the arithmetic is lrsa_generate_from's (up to SGEMM rounding:
 * cached_forward.h); prefill_s and decode_s are the batch's (shared) times. */
int lrsa_generate_from_batch(const lrsa_model *m, lrsa_gen_seq *seqs, int B, lrsa_err *e);

/* The decoding loop of one sequence on any cache (the GPU cache uses it; the CPU caches
 * decode in batches, lrsa_generate_from_batch): samples from `logits` (the prompt's last logits;
 * overwritten), and feeds each sampled token through feed(ctx, id, logits), which must write the
 * next logits [V]. Stops at a stop id, at max_new, or when on_token returns non-zero. */
typedef void (*lrsa_gen_step_fn)(void *ctx, int32_t id, float *logits);
int lrsa_generate_decode(lrsa_gen_step_fn feed, void *ctx, int V, float *logits,
                         const lrsa_gen_options *o, lrsa_token_fn on_token, void *user,
                         lrsa_gen_result *res);
/* The next token from logits[V]: argmax (ties to the lower id) when temperature <= 0, else a
 * draw from softmax(logits / temperature) restricted to the smallest set of most likely tokens
 * whose probability reaches top_p. */
int32_t lrsa_sample_token(const float *logits, int V, float temperature, float top_p,
                          lrsa_rng *rng);
int32_t lrsa_argmax(const float *x, int n);
#endif
