/* Teacher-forced answer NLL through a (possibly compressed) KV cache. */
#include "eval/run/answer_nll.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/run/eval_dataset.h"
#include "eval/run/prefill.h"

double lrsa_token_nll(const float *logits, int V, int32_t target) {
    float mx = logits[0];
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)logits[i] - mx);
    return log(s) + mx - logits[target];
}

/* The first and last answer tokens (target-side mask; token 0 is never predicted), with the
 * checks every answer-NLL entry shares. */
static int answer_span(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
                       int64_t *first, int64_t *last, lrsa_err *e) {
    if (n < 2)
        return lrsa_errorf(e,
                           "answer NLL: the sample has %lld tokens; need at least 2 "
                           "(a prompt and an answer)",
                           (long long)n);
    *first = *last = -1;
    for (int64_t t = 1; t < n; t++)
        if (mask[t]) {
            if (*first < 0) *first = t;
            *last = t;
        }
    if (*first < 0)
        return lrsa_errorf(e, "answer NLL: the sample's loss mask marks no answer token; "
                              "prepare the data with a chat template that masks the answer");
    const int V = m->cfg.vocab_size;
    for (int64_t t = 0; t <= *last; t++)
        if (ids[t] < 0 || ids[t] >= V)
            return lrsa_errorf(e,
                               "answer NLL: token %lld has id %d, outside the vocabulary "
                               "[0, %d); was the data tokenized for another model?",
                               (long long)t, ids[t], V);
    return 0;
}

int lrsa_answer_nll_from(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                         const uint8_t *mask, int64_t n, int64_t done, const float *logits_done,
                         double *nll_sum, int64_t *n_tokens, lrsa_err *e) {
    *nll_sum = 0.0;
    *n_tokens = 0;
    int64_t first, last;
    if (answer_span(m, ids, mask, n, &first, &last, e) != 0) return -1;
    if (done < 1 || done > first)
        return lrsa_errorf(e,
                           "answer NLL: the cache holds %lld tokens, but the answer starts at "
                           "token %lld; compress at most the prompt",
                           (long long)done, (long long)first);
    if (done == first && !logits_done)
        return lrsa_errorf(e, "answer NLL: the logits after the compressed prompt are needed");
    const int V = m->cfg.vocab_size;
    float *logits = lrsa_malloc((size_t)V * sizeof(float));
    if (done < first) /* the question, in one forward on the compressed cache */
        lrsa_cached_forward(m, c, ids + done, first - done, logits, 0);
    else
        memcpy(logits, logits_done, (size_t)V * sizeof(float));
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

int lrsa_answer_nll_cache(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                          const uint8_t *mask, int64_t n, lrsa_prefill_mode mode, double *nll_sum,
                          int64_t *n_tokens, lrsa_err *e) {
    *nll_sum = 0.0;
    *n_tokens = 0;
    int64_t first, last;
    if (answer_span(m, ids, mask, n, &first, &last, e) != 0) return -1;
    float *logits = lrsa_malloc((size_t)m->cfg.vocab_size * sizeof(float));
    int rc = lrsa_prefill(m, c, ids, first, mode, logits, 0, e);
    if (rc == 0) rc = lrsa_answer_nll_from(m, c, ids, mask, n, first, logits, nll_sum, n_tokens, e);
    free(logits);
    return rc;
}

int lrsa_answer_nll_press(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
                          int64_t context_len, const lrsa_press_config *press, double *nll_sum,
                          int64_t *n_tokens, double *kept_fraction, lrsa_err *e) {
    *nll_sum = 0.0;
    *n_tokens = 0;
    int64_t first, last;
    if (answer_span(m, ids, mask, n, &first, &last, e) != 0) return -1;
    int64_t split = first;
    if (press->protocol == LRSA_PROTOCOL_AGNOSTIC) {
        if (context_len < 1 || context_len > first)
            return lrsa_errorf(e,
                               "answer NLL (agnostic protocol): the context length %lld is not "
                               "in [1, %lld] (the first answer token)",
                               (long long)context_len, (long long)first);
        split = context_len;
    }
    lrsa_press_spec s;
    lrsa_press_config_spec(press, &s);
    lrsa_kv_cache c;
    if (lrsa_press_cache_init(&c, m, &s, e) != 0) return -1;
    float *logits = lrsa_malloc((size_t)m->cfg.vocab_size * sizeof(float));
    int rc = lrsa_press_compress(m, &c, &s, ids, split, logits, 0, NULL, e);
    if (rc == 0) {
        if (press->protocol == LRSA_PROTOCOL_AGNOSTIC) lrsa_press_freeze(&c);
        rc = lrsa_answer_nll_from(m, &c, ids, mask, n, split, logits, nll_sum, n_tokens, e);
    }
    if (rc == 0 && kept_fraction) {
        const int64_t full = c.seen * c.n_layers * c.n_kv_heads;
        *kept_fraction = full > 0 ? (double)lrsa_kv_cache_kept_rows(&c) / (double)full : 1.0;
    }
    free(logits);
    lrsa_kv_cache_free(&c);
    return rc;
}

int lrsa_answer_nll(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
                    const lrsa_press_config *press, double *nll_sum, int64_t *n_tokens,
                    lrsa_err *e) {
    if (press->protocol == LRSA_PROTOCOL_AGNOSTIC)
        return lrsa_errorf(e, "answer NLL: the agnostic protocol needs the context length; "
                              "call lrsa_answer_nll_press");
    return lrsa_answer_nll_press(m, ids, mask, n, -1, press, nll_sum, n_tokens, NULL, e);
}
