/* The compressed answer-NLL metric: the teacher-forced negative log-likelihood of a QA sample's
 * answer when its context went through a (possibly compressed) KV cache. Cheap and low-noise:
 * what the trainer reports to show LRSA helps. */
#ifndef LRSA_EVAL_ANSWER_NLL_H
#define LRSA_EVAL_ANSWER_NLL_H
#include <stdint.h>

#include "base/error.h"
#include "eval/press/press.h"
#include "kernels/lagkv/lagkv.h"
#include "model/model.h"

/* What the evaluator runs a sample under: a press (eval/press/press.h; method NONE = full cache,
 * its prefill field the prefill mode) and the protocol (zero = AWARE). A zeroed config is the full
 * cache, chunked label, query-aware. */
typedef struct lrsa_press_config {
    lrsa_press_spec spec;
    lrsa_press_protocol protocol;
} lrsa_press_config;

/* The full cache / LagKV with p, under the given prefill mode, query-aware. */
lrsa_press_config lrsa_press_config_full(lrsa_prefill_mode prefill);
lrsa_press_config lrsa_press_config_lagkv(lrsa_lagkv_params p, lrsa_prefill_mode prefill);
/* The press spec a config runs (a copy of p->spec). */
void lrsa_press_config_spec(const lrsa_press_config *p, lrsa_press_spec *out);

/* ids[0..n) is one sample; mask marks the answer tokens (contiguous, at the end). The prefix
 * before the first answer token is prefilled through the cache under `press`; the answer is
 * then fed token by token (teacher forcing, decode steps with incremental compression).
 * *nll_sum gets the summed NLL of the answer tokens and *n_tokens their count. */
int lrsa_answer_nll(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
                    const lrsa_press_config *press, double *nll_sum, int64_t *n_tokens,
                    lrsa_err *e);

/* The same under the config's protocol: AWARE compresses the whole prefix before the first
 * answer token (= lrsa_answer_nll); AGNOSTIC compresses ids[0..context_len) only (context_len
 * from lrsa_press_question_start; it must be in [1, first answer token]), then feeds the
 * question on the frozen compressed cache, then the answer. kept_fraction (may be NULL): kept
 * rows / rows of an uncompressed cache after the answer was fed. */
int lrsa_answer_nll_press(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
                          int64_t context_len, const lrsa_press_config *press, double *nll_sum,
                          int64_t *n_tokens, double *kept_fraction, lrsa_err *e);

/* The answer part on a cache that already holds (a compressed form of) ids[0..done): feeds
 * ids[done..first) in one forward (the question; none when done == first), then the answer
 * token by token, summing the NLL of the answer tokens. logits_done: [V] logits after ids[done-1]
 * (used only when done == first, may be NULL otherwise). For "score once, sweep budgets" and
 * several questions per compressed context (trim back with lrsa_kv_cache_truncate after). */
int lrsa_answer_nll_from(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                         const uint8_t *mask, int64_t n, int64_t done, const float *logits_done,
                         double *nll_sum, int64_t *n_tokens, lrsa_err *e);

/* The first and last answer tokens of ids[0..n) (target-side mask; token 0 is never predicted),
 * with the checks every answer-NLL entry shares (a prompt and an answer, ids in the vocabulary
 * up to the last answer token). */
int lrsa_answer_span(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
                     int64_t *first, int64_t *last, lrsa_err *e);

/* ---- Several samples at once (batched evaluation) ---- */
/* Teacher forcing of one sequence: from the logits after ids[from-1], scores ids[t] where
 * mask[t] for t in [from, to) and feeds ids[t] whenever a later position is scored. */
typedef struct lrsa_teacher_seq {
    lrsa_kv_cache *cache;
    const int32_t *ids;
    const uint8_t *mask;
    int64_t from, to;
    float *logits;    /* in: [V] logits after ids[from-1]; overwritten */
    double nll_sum;   /* out */
    int64_t n_tokens; /* out */
} lrsa_teacher_seq;
/* Every step feeds one token of each unfinished sequence in one forward
 * (lrsa_cached_forward_batch); a sequence with a shorter answer drops out early. */
void lrsa_teacher_force_batch(const lrsa_model *m, lrsa_teacher_seq *seqs, int B);

/* One sample of lrsa_answer_nll_from_batch: lrsa_answer_nll_from's arguments and its sums. */
typedef struct lrsa_nll_seq {
    lrsa_kv_cache *cache;
    const int32_t *ids;
    const uint8_t *mask;
    int64_t n, done;
    const float *logits_done;
    double nll_sum;   /* out */
    int64_t n_tokens; /* out */
} lrsa_nll_seq;
/* lrsa_answer_nll_from of B samples at once: the questions in batched forwards, then the
 * answers by lrsa_teacher_force_batch. Per sample the arithmetic of lrsa_answer_nll_from up to
 * SGEMM rounding (eval/cache/cached_forward.h). */
int lrsa_answer_nll_from_batch(const lrsa_model *m, lrsa_nll_seq *seqs, int B, lrsa_err *e);
#endif
