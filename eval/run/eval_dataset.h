/* Dataset-level evaluation under a press: mean answer NLL over the first N samples and greedy
 * generation accuracy by string match against each sample's reference answer. Used by
 * `lrsa eval`, the trainer's periodic evaluation and the main job. One call = one row of a
 * results table (press, prefill mode, figures), so a grid is a loop over calls. */
#ifndef LRSA_EVAL_EVAL_DATASET_H
#define LRSA_EVAL_EVAL_DATASET_H
#include <stdint.h>
#include <stdio.h>

#include "data/dataset.h"
#include "data/tokenizer.h"
#include "eval/run/answer_nll.h"
#include "eval/cache/kv_cache.h"
#include "eval/run/sample_records.h"

/* NLL of target under softmax(logits[V]), in double. */
double lrsa_token_nll(const float *logits, int V, int32_t target);
/* lrsa_answer_nll on a caller's empty cache (so its statistics can be read afterwards). */
int lrsa_answer_nll_cache(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                          const uint8_t *mask, int64_t n, lrsa_prefill_mode mode, double *nll_sum,
                          int64_t *n_tokens, lrsa_err *e);

/* Normalised containment: lower-cased, whitespace runs collapsed to one space, leading and
 * trailing whitespace and trailing punctuation (.,;:!?) of the answer removed; true when the
 * answer is non-empty and occurs in the generated text. */
int lrsa_answer_matches(const char *generated, const char *answer);

/* Samples evaluated together (one forward for all) by `lrsa eval` and the grid unless told
 * otherwise: chosen by measurement (docs/EVAL.md, "Batched evaluation"); memory grows with it. */
#define LRSA_EVAL_BATCH     4
#define LRSA_EVAL_BATCH_MAX 256

typedef struct lrsa_eval_options {
    int64_t n_samples; /* first N samples (<= 0: all) */
    int want_nll, want_match;
    int max_new; /* generation budget for match; <= 0: per sample, lrsa_eval_max_new */
    const lrsa_tokenizer *tok; /* needed for match (decoding) */
    const int32_t *stop_ids;   /* chat stop ids for match */
    int n_stop;
    int verbose;    /* print one line per sample to stderr */
    FILE *progress; /* when set (a terminal), a progress line "sample i/n, ETA" rewritten in
                       place before each sample */
    lrsa_sample_records *records; /* when set, one record per sample is appended */
    int batch; /* samples per forward (<= 1: one at a time); docs/EVAL.md "Batched evaluation" */
    int device_cuda; /* the model and the cache on the GPU (lrsa eval --device cuda): the full
                        cache and LagKV only, one sample at a time (eval/run/eval_gpu.h) */
} lrsa_eval_options;

typedef struct lrsa_eval_result {
    int64_t n_samples;
    double nll_sum; /* over all answer tokens */
    int64_t nll_tokens;
    double mean_nll; /* nll_sum / nll_tokens (token-weighted) */
    int64_t n_match;
    double match_rate;    /* n_match / n_samples */
    double kept_fraction; /* mean over samples of kept rows / (rows of an uncompressed cache),
                             measured after the answer was fed */
    /* Samples with needle spans (/needle_spans): how many, and the mean over them of the
     * fraction of (layer, KV head, span) triples in which the compressed prompt cache the answer
     * is fed into still holds a token of the span (0 samples: not measured) */
    int64_t n_needle;
    double needle_kept;
    double seconds;
} lrsa_eval_result;

int lrsa_eval_dataset(const lrsa_model *m, const lrsa_dataset *d, const lrsa_press_config *press,
                      const lrsa_eval_options *o, lrsa_eval_result *r, lrsa_err *e);
#endif
