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

int lrsa_answer_span(const lrsa_model *m, const int32_t *ids, const uint8_t *mask, int64_t n,
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

void lrsa_teacher_force_batch(const lrsa_model *m, lrsa_teacher_seq *seqs, int B) {
    const int V = m->cfg.vocab_size;
    int64_t *t = lrsa_malloc((size_t)B * sizeof(int64_t));
    lrsa_forward_seq *fw = lrsa_malloc((size_t)B * sizeof *fw);
    for (int b = 0; b < B; b++) {
        t[b] = seqs[b].from;
        seqs[b].nll_sum = 0.0;
        seqs[b].n_tokens = 0;
    }
    for (;;) {
        int k = 0;
        for (int b = 0; b < B; b++) {
            lrsa_teacher_seq *q = &seqs[b];
            if (t[b] >= q->to) continue;
            if (q->mask[t[b]]) {
                q->nll_sum += lrsa_token_nll(q->logits, V, q->ids[t[b]]);
                q->n_tokens++;
            }
            /* Teacher forcing: each fed token is one decode step (incremental compression). */
            if (t[b] + 1 < q->to)
                fw[k++] = (lrsa_forward_seq){q->cache, &q->ids[t[b]], 1, q->logits, 0, NULL};
            t[b]++;
        }
        if (k == 0) break;
        lrsa_cached_forward_batch(m, fw, k);
    }
    free(t);
    free(fw);
}

int lrsa_answer_nll_from(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                         const uint8_t *mask, int64_t n, int64_t done, const float *logits_done,
                         double *nll_sum, int64_t *n_tokens, lrsa_err *e) {
    lrsa_nll_seq q = {c, ids, mask, n, done, logits_done, 0.0, 0};
    int rc = lrsa_answer_nll_from_batch(m, &q, 1, e);
    *nll_sum = q.nll_sum;
    *n_tokens = q.n_tokens;
    return rc;
}

/* The checks of one sample of lrsa_answer_nll_from_batch; *first, *last its answer span. */
static int check_from(const lrsa_model *m, const lrsa_nll_seq *q, int64_t *first, int64_t *last,
                      lrsa_err *e) {
    if (lrsa_answer_span(m, q->ids, q->mask, q->n, first, last, e) != 0) return -1;
    if (q->done < 1 || q->done > *first)
        return lrsa_errorf(e,
                           "answer NLL: the cache holds %lld tokens, but the answer starts at "
                           "token %lld; compress at most the prompt",
                           (long long)q->done, (long long)*first);
    if (q->done == *first && !q->logits_done)
        return lrsa_errorf(e, "answer NLL: the logits after the compressed prompt are needed");
    return 0;
}

int lrsa_answer_nll_from_batch(const lrsa_model *m, lrsa_nll_seq *seqs, int B, lrsa_err *e) {
    const int V = m->cfg.vocab_size;
    lrsa_teacher_seq *tf = lrsa_calloc((size_t)B, sizeof *tf);
    lrsa_forward_seq *fw = lrsa_malloc((size_t)B * sizeof *fw);
    float *logits = lrsa_malloc((size_t)B * V * sizeof(float));
    int rc = 0, k = 0;
    for (int b = 0; b < B && rc == 0; b++) {
        lrsa_nll_seq *q = &seqs[b];
        q->nll_sum = 0.0;
        q->n_tokens = 0;
        int64_t first, last;
        rc = check_from(m, q, &first, &last, e);
        if (rc != 0) {
            if (B > 1) lrsa_err_prefix(e, "(sample %d of %d in the batch) ", b + 1, B);
            break;
        }
        float *lg = logits + (int64_t)b * V;
        if (q->done < first) /* the question, in one forward on the compressed cache */
            fw[k++] = (lrsa_forward_seq){q->cache, q->ids + q->done, first - q->done, lg, 0, NULL};
        else
            memcpy(lg, q->logits_done, (size_t)V * sizeof(float));
        tf[b] = (lrsa_teacher_seq){q->cache, q->ids, q->mask, first, last + 1, lg, 0.0, 0};
    }
    if (rc == 0) {
        if (k > 0) lrsa_cached_forward_grouped(m, fw, k);
        lrsa_teacher_force_batch(m, tf, B);
        for (int b = 0; b < B; b++) {
            seqs[b].nll_sum = tf[b].nll_sum;
            seqs[b].n_tokens = tf[b].n_tokens;
        }
    }
    free(tf);
    free(fw);
    free(logits);
    return rc;
}

int lrsa_answer_nll_cache(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                          const uint8_t *mask, int64_t n, lrsa_prefill_mode mode, double *nll_sum,
                          int64_t *n_tokens, lrsa_err *e) {
    *nll_sum = 0.0;
    *n_tokens = 0;
    int64_t first, last;
    if (lrsa_answer_span(m, ids, mask, n, &first, &last, e) != 0) return -1;
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
    if (lrsa_answer_span(m, ids, mask, n, &first, &last, e) != 0) return -1;
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
