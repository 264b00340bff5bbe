/* The compressed answer-NLL metric: the teacher-forced negative log-likelihood of a QA sample's
 * answer when its context went through a (possibly compressed) KV cache. Cheap and low-noise:
 * what the trainer reports to show LRSA helps. */
#ifndef LRSA_EVAL_ANSWER_NLL_H
#define LRSA_EVAL_ANSWER_NLL_H
#include <stdint.h>

#include "autograd/error.h"
#include "kernels/lagkv/lagkv.h"
#include "model/model.h"

typedef enum lrsa_prefill_mode { LRSA_PREFILL_CHUNKED = 0, LRSA_PREFILL_ONESHOT } lrsa_prefill_mode;

typedef struct lrsa_press_config {
    int compress;              /* 0: full (dense) cache; 1: LagKV */
    lrsa_lagkv_params lagkv;   /* used when compress */
    lrsa_prefill_mode prefill; /* label every result with it */
} lrsa_press_config;

/* ids[0..n) is one sample; mask marks the answer tokens (contiguous, at the end). The prefix
 * before the first answer token is prefilled through the cache under `press`; the answer is
 * then fed token by token (teacher forcing, decode steps with incremental compression).
 * *nll_sum gets the summed NLL of the answer tokens and *n_tokens their count. */
int lrsa_answer_nll(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
                    const lrsa_press_config *press, double *nll_sum, int64_t *n_tokens,
                    lrsa_err *e);
#endif
