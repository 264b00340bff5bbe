/* The two prefill modes, and the prefill that runs a press: it hooks the press's observer
 * (eval/press/press_internal.h) into the cached forward, then asks the press to score. */
#include "eval/run/prefill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/press/press_internal.h"

int lrsa_kv_cache_for_model(lrsa_kv_cache *c, const lrsa_model *m, const lrsa_press_config *press,
                            lrsa_err *e) {
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_NONE);
    if (press) lrsa_press_config_spec(press, &s);
    return lrsa_press_cache_init(c, m, &s, e);
}

int64_t lrsa_chunk_end(int64_t seen, const lrsa_lagkv_params *p) {
    const int64_t S = p->sink, L = p->lag;
    if (seen < S + 2 * L) return S + 2 * L;
    return S + ((seen - S) / L + 1) * L;
}

const char *lrsa_prefill_mode_name(lrsa_prefill_mode mode) {
    return mode == LRSA_PREFILL_ONESHOT ? "oneshot" : "chunked";
}

int lrsa_prefill(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int64_t n,
                 lrsa_prefill_mode mode, float *logits, int all_logits, lrsa_err *e) {
    return lrsa_prefill_observed(m, c, ids, n, mode, logits, all_logits, NULL, e);
}

int lrsa_prefill_observed(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int64_t n,
                          lrsa_prefill_mode mode, float *logits, int all_logits,
                          const lrsa_layer_observer *obs, lrsa_err *e) {
    if (n <= 0) return lrsa_errorf(e, "prefill: the prompt is empty; give at least one token");
    const int V = m->cfg.vocab_size;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lrsa_errorf(e,
                               "prefill: token %lld has id %d, outside the model's vocabulary "
                               "[0, %d); was the data tokenized for another model?",
                               (long long)i, ids[i], V);
    if (mode == LRSA_PREFILL_ONESHOT || !c->compress) {
        lrsa_cached_forward_observed(m, c, ids, n, logits, all_logits, obs);
        return 0;
    }
    int64_t done = 0;
    while (done < n) {
        int64_t end = lrsa_chunk_end(c->seen, &c->lagkv) - c->seen + done;
        if (end > n) end = n;
        const int64_t N = end - done;
        float *out = NULL;
        if (logits && all_logits)
            out = logits + done * (int64_t)V;
        else if (logits && end == n)
            out = logits;
        lrsa_cached_forward_observed(m, c, ids + done, N, out, all_logits, obs);
        done = end;
    }
    return 0;
}

/* Observer window a method needs: SnapKV/PyramidKV/CompressKV their window, TOVA the last
 * query; H2O none (it accumulates instead). */
static int64_t obs_window(const lrsa_press_spec *s) {
    switch (s->method) {
        case LRSA_PRESS_SNAPKV:
        case LRSA_PRESS_PYRAMIDKV:
        case LRSA_PRESS_COMPRESSKV:
            return s->window;
        case LRSA_PRESS_TOVA:
            return 1;
        default:
            return 0;
    }
}

int lrsa_press_prefill_and_score(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                                 const int32_t *ids, int64_t n, float *logits, int all_logits,
                                 lrsa_press_scores *out, lrsa_err *e) {
    memset(out, 0, sizeof(*out));
    if (lrsa_press_spec_check(s, e) != 0) return -1;
    const char *name = lrsa_press_method_name(s->method);
    if (c->seen != 0 || lrsa_kv_cache_kept_rows(c) != 0)
        return lrsa_errorf(e,
                           "press %s: prefill_and_score needs an empty cache (it holds %lld "
                           "tokens); reset it or make a new one",
                           name, (long long)c->seen);
    if (s->method == LRSA_PRESS_LAGKV) {
        if (!c->compress)
            return lrsa_errorf(e, "press lagkv: the cache does not compress; make it with "
                                  "lrsa_press_cache_init");
        return lrsa_prefill(m, c, ids, n, s->prefill, logits, all_logits, e);
    }
    if (c->compress)
        return lrsa_errorf(e,
                           "press %s: scores a full cache, but this one compresses (LagKV); "
                           "make it with lrsa_press_cache_init",
                           name);
    if (s->method == LRSA_PRESS_NONE)
        return lrsa_prefill(m, c, ids, n, LRSA_PREFILL_ONESHOT, logits, all_logits, e);
    lrsa_press_obs o;
    const int needs = lrsa_press_needs_queries(s);
    lrsa_press_obs_init(&o, m, needs ? obs_window(s) : 0, s->method == LRSA_PRESS_H2O);
    lrsa_layer_observer hook = lrsa_press_obs_hook(&o);
    /* One forward: the observer sees every prompt query (a full cache gains nothing from
     * chunks). */
    int rc = lrsa_prefill_observed(m, c, ids, n, LRSA_PREFILL_ONESHOT, logits, all_logits,
                                   needs ? &hook : NULL, e);
    if (rc == 0) {
        switch (s->method) {
            case LRSA_PRESS_KVZIP:
                rc = lrsa_press_score_kvzip(m, c, s, ids, n, out, e);
                break;
            case LRSA_PRESS_COMPRESSKV:
                rc = lrsa_press_score_compresskv(m, c, s, &o, out, e);
                break;
            default:
                lrsa_press_scores_alloc(out, c);
                rc = lrsa_press_score_builtin(s, &o, c, out);
                break;
        }
    }
    lrsa_press_obs_free(&o);
    if (rc != 0) {
        lrsa_press_scores_free(out);
        return lrsa_err_prefix(e, "press %s: ", name);
    }
    /* The sink: the first `sink` positions (LagKV's variant protects its own S). */
    const int sink = s->method == LRSA_PRESS_LAGKV_KVPRESS ? s->lagkv.sink : s->sink;
    for (int64_t i = 0; i < (int64_t)c->n_layers * c->n_kv_heads; i++)
        for (int64_t t = 0; t < out->len[i]; t++)
            if (c->heads[i].pos[t] < sink) out->score[i][t] = INFINITY;
    return 0;
}

int lrsa_press_compress(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                        const int32_t *ids, int64_t n, float *logits, int all_logits,
                        double *kept_fraction, lrsa_err *e) {
    lrsa_press_scores sc;
    if (lrsa_press_prefill_and_score(m, c, s, ids, n, logits, all_logits, &sc, e) != 0) return -1;
    int rc = lrsa_press_apply(m, c, s, &sc, kept_fraction, e);
    lrsa_press_scores_free(&sc);
    return rc;
}
