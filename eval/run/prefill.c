/* The two prefill modes, and the prefill that runs a press: it hooks the press's observer
 * (eval/press/press_internal.h) into the cached forward, then asks the press to score. */
#include "eval/run/prefill.h"

#include <math.h>
#include <stdio.h>
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
    const lrsa_forward_seq seq = {c, ids, n, logits, all_logits, obs};
    return lrsa_prefill_batch(m, &seq, 1, mode, e);
}

static int check_prompt(const lrsa_model *m, const lrsa_forward_seq *s, int b, int B, lrsa_err *e) {
    char which[64] = "";
    if (B > 1) snprintf(which, sizeof which, " (prompt %d of %d in the batch)", b + 1, B);
    if (s->n <= 0)
        return lrsa_errorf(e, "prefill%s: the prompt is empty; give at least one token", which);
    const int V = m->cfg.vocab_size;
    for (int64_t i = 0; i < s->n; i++)
        if (s->ids[i] < 0 || s->ids[i] >= V)
            return lrsa_errorf(e,
                               "prefill%s: token %lld has id %d, outside the model's vocabulary "
                               "[0, %d); was the data tokenized for another model?",
                               which, (long long)i, s->ids[i], V);
    return 0;
}

void lrsa_cached_forward_grouped(const lrsa_model *m, const lrsa_forward_seq *seqs, int B) {
    int b0 = 0;
    while (b0 < B) {
        int k = 1;
        int64_t rows = seqs[b0].n;
        while (b0 + k < B && rows + seqs[b0 + k].n <= LRSA_BATCH_MAX_ROWS) rows += seqs[b0 + k++].n;
        lrsa_cached_forward_batch(m, seqs + b0, k);
        b0 += k;
    }
}

int lrsa_prefill_batch(const lrsa_model *m, const lrsa_forward_seq *seqs, int B,
                       lrsa_prefill_mode mode, lrsa_err *e) {
    for (int b = 0; b < B; b++)
        if (check_prompt(m, &seqs[b], b, B, e) != 0) return -1;
    const int V = m->cfg.vocab_size;
    int64_t *done = lrsa_calloc((size_t)B, sizeof(int64_t));
    lrsa_forward_seq *fw = lrsa_malloc((size_t)B * sizeof *fw);
    for (;;) {
        int k = 0;
        int64_t rows = 0;
        for (int b = 0; b < B; b++) {
            const lrsa_forward_seq *s = &seqs[b];
            if (done[b] == s->n) continue;
            lrsa_kv_cache *c = s->cache;
            /* the next piece: the whole prompt, or the next chunk on the partition grid */
            int64_t end = s->n;
            if (mode == LRSA_PREFILL_CHUNKED && c->compress) {
                end = lrsa_chunk_end(c->seen, &c->lagkv) - c->seen + done[b];
                if (end > s->n) end = s->n;
            }
            const int64_t N = end - done[b];
            if (k > 0 && rows + N > LRSA_BATCH_MAX_ROWS) continue; /* next forward */
            float *out = NULL;
            if (s->logits && s->all_logits)
                out = s->logits + done[b] * (int64_t)V;
            else if (s->logits && end == s->n)
                out = s->logits;
            fw[k++] = (lrsa_forward_seq){c, s->ids + done[b], N, out, s->all_logits, s->obs};
            rows += N;
            done[b] = end;
        }
        if (k == 0) break;
        lrsa_cached_forward_batch(m, fw, k);
    }
    free(done);
    free(fw);
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
    return lrsa_press_prefill_and_score_batch(m, 1, &c, s, &ids, &n, logits ? &logits : NULL,
                                              all_logits, out, e);
}

/* The checks every press prefill makes on its cache before any forward. */
static int check_press_cache(const lrsa_press_spec *s, const lrsa_kv_cache *c, lrsa_err *e) {
    const char *name = lrsa_press_method_name(s->method);
    if (c->seen != 0 || lrsa_kv_cache_kept_rows(c) != 0)
        return lrsa_errorf(e,
                           "press %s: prefill_and_score needs an empty cache (it holds %lld "
                           "tokens); reset it or make a new one",
                           name, (long long)c->seen);
    if (s->method == LRSA_PRESS_LAGKV && !c->compress)
        return lrsa_errorf(e, "press lagkv: the cache does not compress; make it with "
                              "lrsa_press_cache_init");
    if (s->method != LRSA_PRESS_LAGKV && c->compress)
        return lrsa_errorf(e,
                           "press %s: scores a full cache, but this one compresses (LagKV); "
                           "make it with lrsa_press_cache_init",
                           name);
    return 0;
}

/* The scorer of one sample after its observed prefill, then the sink's protection. */
static int score_one(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                     const int32_t *ids, int64_t n, lrsa_press_obs *o, lrsa_press_scores *out,
                     lrsa_err *e) {
    int rc;
    switch (s->method) {
        case LRSA_PRESS_KVZIP:
            rc = lrsa_press_score_kvzip(m, c, s, ids, n, out, e);
            break;
        case LRSA_PRESS_COMPRESSKV:
            rc = lrsa_press_score_compresskv(m, c, s, o, out, e);
            break;
        default:
            lrsa_press_scores_alloc(out, c);
            rc = lrsa_press_score_builtin(s, o, c, out);
            break;
    }
    if (rc != 0) return lrsa_err_prefix(e, "press %s: ", lrsa_press_method_name(s->method));
    /* The sink: the first `sink` positions (LagKV's variant protects its own S). */
    const int sink = s->method == LRSA_PRESS_LAGKV_KVPRESS ? s->lagkv.sink : s->sink;
    for (int64_t i = 0; i < (int64_t)c->n_layers * c->n_kv_heads; i++)
        for (int64_t t = 0; t < out->len[i]; t++)
            if (c->heads[i].pos[t] < sink) out->score[i][t] = INFINITY;
    return 0;
}

int lrsa_press_prefill_and_score_batch(const lrsa_model *m, int B, lrsa_kv_cache *const *c,
                                       const lrsa_press_spec *s, const int32_t *const *ids,
                                       const int64_t *n, float *const *logits, int all_logits,
                                       lrsa_press_scores *out, lrsa_err *e) {
    memset(out, 0, (size_t)B * sizeof *out);
    if (lrsa_press_spec_check(s, e) != 0) return -1;
    for (int b = 0; b < B; b++)
        if (check_press_cache(s, c[b], e) != 0) return -1;
    lrsa_forward_seq *seqs = lrsa_malloc((size_t)B * sizeof *seqs);
    for (int b = 0; b < B; b++)
        seqs[b] =
            (lrsa_forward_seq){c[b], ids[b], n[b], logits ? logits[b] : NULL, all_logits, NULL};
    int rc;
    if (s->method == LRSA_PRESS_LAGKV || s->method == LRSA_PRESS_NONE) {
        /* LagKV compresses inside the cache as it is fed; the full cache scores nothing */
        rc = lrsa_prefill_batch(
            m, seqs, B, s->method == LRSA_PRESS_LAGKV ? s->prefill : LRSA_PREFILL_ONESHOT, e);
        free(seqs);
        return rc;
    }
    const int needs = lrsa_press_needs_queries(s);
    lrsa_press_obs *o = lrsa_malloc((size_t)B * sizeof *o);
    lrsa_layer_observer *hook = lrsa_malloc((size_t)B * sizeof *hook);
    for (int b = 0; b < B; b++) {
        lrsa_press_obs_init(&o[b], m, needs ? obs_window(s) : 0, s->method == LRSA_PRESS_H2O);
        hook[b] = lrsa_press_obs_hook(&o[b]);
        seqs[b].obs = needs ? &hook[b] : NULL;
    }
    /* One forward per sample: the observer sees every prompt query (a full cache gains nothing
     * from chunks). */
    rc = lrsa_prefill_batch(m, seqs, B, LRSA_PREFILL_ONESHOT, e);
    if (rc != 0) rc = lrsa_err_prefix(e, "press %s: ", lrsa_press_method_name(s->method));
    for (int b = 0; b < B && rc == 0; b++)
        rc = score_one(m, c[b], s, ids[b], n[b], &o[b], &out[b], e);
    for (int b = 0; b < B; b++) {
        lrsa_press_obs_free(&o[b]);
        if (rc != 0) lrsa_press_scores_free(&out[b]);
    }
    free(o);
    free(hook);
    free(seqs);
    return rc;
}

int lrsa_press_compress(const lrsa_model *m, lrsa_kv_cache *c, const lrsa_press_spec *s,
                        const int32_t *ids, int64_t n, float *logits, int all_logits,
                        double *kept_fraction, lrsa_err *e) {
    return lrsa_press_compress_batch(m, 1, &c, s, &ids, &n, logits ? &logits : NULL, all_logits,
                                     kept_fraction, e);
}

int lrsa_press_compress_batch(const lrsa_model *m, int B, lrsa_kv_cache *const *c,
                              const lrsa_press_spec *s, const int32_t *const *ids, const int64_t *n,
                              float *const *logits, int all_logits, double *kept_fraction,
                              lrsa_err *e) {
    lrsa_press_scores *sc = lrsa_malloc((size_t)B * sizeof *sc);
    int rc = lrsa_press_prefill_and_score_batch(m, B, c, s, ids, n, logits, all_logits, sc, e);
    if (rc == 0) {
        const int64_t H = (int64_t)m->cfg.num_hidden_layers * m->cfg.num_key_value_heads;
        for (int b = 0; b < B && rc == 0; b++)
            rc = lrsa_press_apply(m, c[b], s, &sc[b], kept_fraction ? kept_fraction + b * H : NULL,
                                  e);
        for (int b = 0; b < B; b++) lrsa_press_scores_free(&sc[b]);
    }
    free(sc);
    return rc;
}
