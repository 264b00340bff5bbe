/* Decoding loop and token sampling. */
#include "eval/run/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"

int32_t lrsa_argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct prob_id {
    float p;
    int32_t id;
} prob_id;

static int by_prob_desc(const void *a, const void *b) {
    const prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : (x->id > y->id); /* deterministic order for equal probabilities */
}

int32_t lrsa_sample_token(const float *logits, int V, float temperature, float top_p,
                          lrsa_rng *rng) {
    if (temperature <= 0.0f) return lrsa_argmax(logits, V);
    float mx = logits[lrsa_argmax(logits, V)];
    prob_id *pi = lrsa_malloc((size_t)V * sizeof(prob_id));
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        pi[i].p = expf((logits[i] - mx) / temperature);
        pi[i].id = i;
        sum += pi[i].p;
    }
    qsort(pi, (size_t)V, sizeof(prob_id), by_prob_desc);
    /* Nucleus: the shortest head of the sorted list whose mass reaches top_p (at least one). */
    double mass = 0.0;
    int keep = 0;
    while (keep < V) {
        mass += pi[keep].p / sum;
        keep++;
        if (mass >= top_p) break;
    }
    double total = 0.0;
    for (int i = 0; i < keep; i++) total += pi[i].p;
    double u = (double)lrsa_rng_uniform(rng) * total, acc = 0.0;
    int32_t id = pi[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        acc += pi[i].p;
        if (u < acc) {
            id = pi[i].id;
            break;
        }
    }
    free(pi);
    return id;
}

static int is_stop(const lrsa_gen_options *o, int32_t id) {
    for (int i = 0; i < o->n_stop; i++)
        if (o->stop_ids[i] == id) return 1;
    return 0;
}

/* The checks of lrsa_generate_from's arguments; which: "" or " (sequence b of B)". */
static int check_gen(const lrsa_model *m, const lrsa_gen_seq *q, const char *which, lrsa_err *e) {
    const lrsa_gen_options *o = &q->opt;
    if (o->max_new < 0)
        return lrsa_errorf(e, "generate%s: max_new_tokens is %d; give a value >= 0", which,
                           o->max_new);
    if (o->temperature > 0.0f && !(o->top_p > 0.0f && o->top_p <= 1.0f))
        return lrsa_errorf(e, "generate%s: top_p is %g; give a value in (0, 1]", which, o->top_p);
    if (q->done < 1 || q->done > q->n || (q->done == q->n && !q->logits_done))
        return lrsa_errorf(e,
                           "generate%s: the cache holds %lld of the %lld prompt tokens; need 1.."
                           "n, and the logits after the prompt when it holds all",
                           which, (long long)q->done, (long long)q->n);
    const int V = m->cfg.vocab_size;
    for (int64_t i = q->done; i < q->n; i++)
        if (q->prompt[i] < 0 || q->prompt[i] >= V)
            return lrsa_errorf(e, "generate%s: prompt token %lld has id %d, outside [0, %d)", which,
                               (long long)i, q->prompt[i], V);
    return 0;
}

/* Samples and feeds tokens for every sequence from logits + b*V (the prompt's last logits;
 * overwritten): one forward per step for all the sequences still going. */
static void decode_batch(const lrsa_model *m, lrsa_gen_seq *seqs, int B, float *logits) {
    const int V = m->cfg.vocab_size;
    lrsa_rng *rng = lrsa_malloc((size_t)B * sizeof *rng);
    int *going = lrsa_malloc((size_t)B * sizeof *going);
    lrsa_forward_seq *fw = lrsa_malloc((size_t)B * sizeof *fw);
    for (int b = 0; b < B; b++) {
        const lrsa_gen_options *o = &seqs[b].opt;
        lrsa_rng_seed(&rng[b], o->seed);
        seqs[b].res.ids = lrsa_malloc((size_t)(o->max_new > 0 ? o->max_new : 1) * sizeof(int32_t));
        going[b] = o->max_new > 0;
    }
    double t1 = lrsa_now();
    for (;;) {
        int k = 0;
        for (int b = 0; b < B; b++) {
            if (!going[b]) continue;
            lrsa_gen_seq *q = &seqs[b];
            lrsa_gen_result *res = &q->res;
            float *lg = logits + (int64_t)b * V;
            int32_t id = lrsa_sample_token(lg, V, q->opt.temperature, q->opt.top_p, &rng[b]);
            going[b] = 0;
            if (is_stop(&q->opt, id)) {
                res->stopped = 1;
                continue;
            }
            res->ids[res->n++] = id;
            if (q->on_token && q->on_token(q->user, id) != 0) continue;
            /* no forward for a token nobody will sample after */
            if (res->n == q->opt.max_new) continue;
            going[b] = 1;
            fw[k++] = (lrsa_forward_seq){q->cache, &res->ids[res->n - 1], 1, lg, 0, NULL};
            res->decode_steps++;
        }
        if (k == 0) break;
        lrsa_cached_forward_batch(m, fw, k);
    }
    const double dt = lrsa_now() - t1;
    for (int b = 0; b < B; b++) seqs[b].res.decode_s = dt;
    free(rng);
    free(going);
    free(fw);
}

int lrsa_generate_from_batch(const lrsa_model *m, lrsa_gen_seq *seqs, int B, lrsa_err *e) {
    for (int b = 0; b < B; b++) {
        memset(&seqs[b].res, 0, sizeof seqs[b].res);
        char which[64] = "";
        if (B > 1) snprintf(which, sizeof which, " (sequence %d of %d in the batch)", b + 1, B);
        if (check_gen(m, &seqs[b], which, e) != 0) return -1;
    }
    const int V = m->cfg.vocab_size;
    float *logits = lrsa_malloc((size_t)B * V * sizeof(float));
    lrsa_forward_seq *fw = lrsa_malloc((size_t)B * sizeof *fw);
    double t0 = lrsa_now();
    int k = 0;
    for (int b = 0; b < B; b++) {
        const lrsa_gen_seq *q = &seqs[b];
        float *lg = logits + (int64_t)b * V;
        if (q->done < q->n) /* the question, in one forward on the cache */
            fw[k++] =
                (lrsa_forward_seq){q->cache, q->prompt + q->done, q->n - q->done, lg, 0, NULL};
        else
            memcpy(lg, q->logits_done, (size_t)V * sizeof(float));
    }
    if (k > 0) lrsa_cached_forward_grouped(m, fw, k);
    const double dt = lrsa_now() - t0;
    for (int b = 0; b < B; b++) seqs[b].res.prefill_s = dt;
    decode_batch(m, seqs, B, logits);
    free(fw);
    free(logits);
    return 0;
}

int lrsa_generate_from(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *prompt, int64_t n,
                       int64_t done, const float *logits_done, const lrsa_gen_options *o,
                       lrsa_token_fn on_token, void *user, lrsa_gen_result *res, lrsa_err *e) {
    lrsa_gen_seq q = {c, prompt, n, done, logits_done, *o, on_token, user, {0}};
    int rc = lrsa_generate_from_batch(m, &q, 1, e);
    *res = q.res;
    return rc;
}

int lrsa_generate_decode(lrsa_gen_step_fn feed, void *ctx, int V, float *logits,
                         const lrsa_gen_options *o, lrsa_token_fn on_token, void *user,
                         lrsa_gen_result *res) {
    lrsa_rng rng;
    lrsa_rng_seed(&rng, o->seed);
    res->ids = lrsa_malloc((size_t)(o->max_new > 0 ? o->max_new : 1) * sizeof(int32_t));
    double t1 = lrsa_now();
    for (int step = 0; step < o->max_new; step++) {
        int32_t id = lrsa_sample_token(logits, V, o->temperature, o->top_p, &rng);
        if (is_stop(o, id)) {
            res->stopped = 1;
            break;
        }
        res->ids[res->n++] = id;
        if (on_token && on_token(user, id) != 0) break;
        if (step + 1 == o->max_new) break; /* no forward for a token nobody will sample after */
        feed(ctx, id, logits);
        res->decode_steps++;
    }
    res->decode_s = lrsa_now() - t1;
    return 0;
}

int lrsa_generate(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *prompt, int64_t n,
                  lrsa_prefill_mode mode, const lrsa_gen_options *o, lrsa_token_fn on_token,
                  void *user, lrsa_gen_result *res, lrsa_err *e) {
    memset(res, 0, sizeof(*res));
    lrsa_gen_seq q = {c, prompt, n, n, NULL, *o, on_token, user, {0}};
    if (o->max_new < 0)
        return lrsa_errorf(e, "generate: max_new_tokens is %d; give a value >= 0", o->max_new);
    if (o->temperature > 0.0f && !(o->top_p > 0.0f && o->top_p <= 1.0f))
        return lrsa_errorf(e, "generate: top_p is %g; give a value in (0, 1]", o->top_p);
    float *logits = lrsa_malloc((size_t)m->cfg.vocab_size * sizeof(float));
    double t0 = lrsa_now();
    if (lrsa_prefill(m, c, prompt, n, mode, logits, 0, e) != 0) {
        free(logits);
        return -1;
    }
    q.res.prefill_s = lrsa_now() - t0;
    decode_batch(m, &q, 1, logits);
    *res = q.res;
    free(logits);
    return 0;
}
