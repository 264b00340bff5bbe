/* Teacher-forced answer NLL through a (possibly compressed) KV cache. */
#include "eval/answer_nll.h"

#include <math.h>
#include <stdlib.h>

#include "eval/eval_dataset.h"
#include "eval/prefill.h"

double lrsa_token_nll(const float *logits, int V, int32_t target) {
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)logits[i] - mx);
    return log(s) + mx - logits[target];
}

int lrsa_answer_nll_cache(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                          const uint8_t *mask, int64_t n, lrsa_prefill_mode mode, double *nll_sum,
                          int64_t *n_tokens, lrsa_err *e) {
    *nll_sum = 0.0;
    *n_tokens = 0;
    if (n < 2)
        return lrsa_errorf(e,
                           "answer NLL: the sample has %lld tokens; need at least 2 "
                           "(a prompt and an answer)",
                           (long long)n);
    /* Token 0 is never predicted (target-side mask, like Hugging Face labels). */
    int64_t first = -1, last = -1;
    for (int64_t t = 1; t < n; t++)
        if (mask[t]) {
            if (first < 0) first = t;
            last = t;
        }
    if (first < 0)
        return lrsa_errorf(e, "answer NLL: the sample's loss mask marks no answer token; "
                              "prepare the data with a chat template that masks the answer");
    const int V = m->cfg.vocab_size;
    for (int64_t t = 0; t <= last; t++)
        if (ids[t] < 0 || ids[t] >= V)
            return lrsa_errorf(e,
                               "answer NLL: token %lld has id %d, outside the vocabulary "
                               "[0, %d); was the data tokenized for another model?",
                               (long long)t, ids[t], V);
    float *logits = lrsa_malloc((size_t)V * sizeof(float));
    if (lrsa_prefill(m, c, ids, first, mode, logits, 0, e) != 0) {
        free(logits);
        return -1;
    }
    double sum = lrsa_token_nll(logits, V, ids[first]);
    int64_t cnt = 1;
    /* Teacher forcing: each answer token is one decode step (incremental compression). */
    for (int64_t t = first; t < last; t++) {
        lrsa_cached_forward(m, c, &ids[t], 1, logits, 0);
        if (mask[t + 1]) {
            sum += lrsa_token_nll(logits, V, ids[t + 1]);
            cnt++;
        }
    }
    free(logits);
    *nll_sum = sum;
    *n_tokens = cnt;
    return 0;
}

int lrsa_answer_nll(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
                    const lrsa_press_config *press, double *nll_sum, int64_t *n_tokens,
                    lrsa_err *e) {
    lrsa_kv_cache c;
    if (lrsa_kv_cache_for_model(&c, m, press, e) != 0) return -1;
    int rc = lrsa_answer_nll_cache(m, &c, ids, mask, n, press->prefill, nll_sum, n_tokens, e);
    lrsa_kv_cache_free(&c);
    return rc;
}
