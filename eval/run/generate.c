/* Decoding loop and token sampling. */
#include "eval/run/generate.h"

#include <math.h>
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

typedef struct cpu_step {
    const lrsa_model *m;
    lrsa_kv_cache *c;
} cpu_step;

static void cpu_step_fn(void *ctx, int32_t id, float *logits) {
    cpu_step *s = ctx;
    lrsa_cached_forward(s->m, s->c, &id, 1, logits, 0);
}

static int decode(const lrsa_model *m, lrsa_kv_cache *c, float *logits, const lrsa_gen_options *o,
                  lrsa_token_fn on_token, void *user, lrsa_gen_result *res) {
    cpu_step s = {m, c};
    return lrsa_generate_decode(cpu_step_fn, &s, m->cfg.vocab_size, logits, o, on_token, user, res);
}

int lrsa_generate_from(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *prompt, int64_t n,
                       int64_t done, const float *logits_done, const lrsa_gen_options *o,
                       lrsa_token_fn on_token, void *user, lrsa_gen_result *res, lrsa_err *e) {
    memset(res, 0, sizeof(*res));
    if (o->max_new < 0)
        return lrsa_errorf(e, "generate: max_new_tokens is %d; give a value >= 0", o->max_new);
    if (o->temperature > 0.0f && !(o->top_p > 0.0f && o->top_p <= 1.0f))
        return lrsa_errorf(e, "generate: top_p is %g; give a value in (0, 1]", o->top_p);
    if (done < 1 || done > n || (done == n && !logits_done))
        return lrsa_errorf(e,
                           "generate: the cache holds %lld of the %lld prompt tokens; need 1.."
                           "n, and the logits after the prompt when it holds all",
                           (long long)done, (long long)n);
    const int V = m->cfg.vocab_size;
    for (int64_t i = done; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return lrsa_errorf(e, "generate: prompt token %lld has id %d, outside [0, %d)",
                               (long long)i, prompt[i], V);
    float *logits = lrsa_malloc((size_t)V * sizeof(float));
    double t0 = lrsa_now();
    if (done < n)
        lrsa_cached_forward(m, c, prompt + done, n - done, logits, 0);
    else
        memcpy(logits, logits_done, (size_t)V * sizeof(float));
    res->prefill_s = lrsa_now() - t0;
    int rc = decode(m, c, logits, o, on_token, user, res);
    free(logits);
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
    res->prefill_s = lrsa_now() - t0;
    int rc = decode(m, c, logits, o, on_token, user, res);
    free(logits);
    return rc;
}
