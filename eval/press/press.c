/* The press core: the cache a press runs on, the observed prefill and scoring of one sample,
 * the one-call compression, freezing, the effective spec of an lrsa_press_config, and where the
 * question starts in a chat prompt (the agnostic protocol's split). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "eval/run/answer_nll.h"
#include "eval/run/prefill.h"
#include "eval/press/press_internal.h"

int lrsa_press_cache_init(lrsa_kv_cache *c, const lrsa_model *m, const lrsa_press_spec *s,
                          lrsa_err *e) {
    const lrsa_model_config *cfg = &m->cfg;
    return lrsa_kv_cache_init(c, cfg->num_hidden_layers, cfg->num_key_value_heads, cfg->head_dim,
                              s && s->method == LRSA_PRESS_LAGKV ? &s->lagkv : NULL, e);
}

void lrsa_press_freeze(lrsa_kv_cache *c) {
    c->compress = 0;
}

void lrsa_press_config_spec(const lrsa_press_config *p, lrsa_press_spec *out) {
    *out = p->spec;
}

lrsa_press_config lrsa_press_config_full(lrsa_prefill_mode prefill) {
    lrsa_press_config c = {.protocol = LRSA_PROTOCOL_AWARE};
    lrsa_press_spec_defaults(&c.spec, LRSA_PRESS_NONE);
    c.spec.prefill = prefill;
    return c;
}

lrsa_press_config lrsa_press_config_lagkv(lrsa_lagkv_params p, lrsa_prefill_mode prefill) {
    lrsa_press_config c = {.protocol = LRSA_PROTOCOL_AWARE};
    lrsa_press_spec_defaults(&c.spec, LRSA_PRESS_LAGKV);
    c.spec.lagkv = p;
    c.spec.keep = p.keep;
    c.spec.prefill = prefill;
    return c;
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

/* The text of one token (malloc'd, "" when it decodes to nothing). */
int64_t lrsa_press_question_start(const lrsa_tokenizer *tok, const int32_t *ids,
                                  int64_t prompt_len) {
    int32_t stop[8];
    const int n_stop = lrsa_chat_stop_ids(tok, lrsa_chat_detect(tok), stop, 8);
    int64_t user_end = prompt_len;
    for (int64_t t = prompt_len - 1; t >= 0 && user_end == prompt_len; t--)
        for (int i = 0; i < n_stop; i++)
            if (ids[t] == stop[i]) {
                user_end = t;
                break;
            }
    /* The turn's text starts after its last special token (the turn header). */
    int64_t turn = user_end;
    while (turn > 0 && !lrsa_tokenizer_is_special(tok, ids[turn - 1])) turn--;
    /* Decode the turn, remembering the byte offset where each token's text ends, so a "\n\n"
     * is found however the tokenizer splits it (one token, two, or glued to other text). */
    const int64_t n = user_end - turn;
    if (n < 2) return -1;
    int64_t *end = lrsa_malloc((size_t)n * sizeof *end);
    size_t len = 0, cap = 4096;
    char *text = lrsa_malloc(cap), piece[1024];
    lrsa_stream_decoder dec;
    lrsa_stream_decoder_init(&dec, tok, 0);
    for (int64_t t = 0; t < n; t++) {
        int k = lrsa_stream_decoder_push(&dec, ids[turn + t], piece, sizeof piece);
        if (k < 0) k = 0;
        if (len + (size_t)k + 1 > cap) {
            cap = 2 * (len + (size_t)k + 1);
            text = lrsa_realloc(text, cap);
        }
        memcpy(text + len, piece, (size_t)k);
        len += (size_t)k;
        end[t] = (int64_t)len;
    }
    int64_t qs = -1;
    for (size_t i = len; i >= 2; i--)
        if (text[i - 2] == '\n' && text[i - 1] == '\n') {
            /* the token whose text holds the second newline ends the context */
            for (int64_t t = 0; t < n; t++)
                if (end[t] >= (int64_t)i) {
                    qs = turn + t + 1;
                    break;
                }
            break;
        }
    free(text);
    free(end);
    return qs > 0 && qs < user_end ? qs : -1;
}
