/* Cached forward passes and the two prefill modes. */
#include "eval/run/prefill.h"

#include <stdlib.h>
#include <string.h>

#include "eval/cache/cache_attention.h"

int lrsa_kv_cache_for_model(lrsa_kv_cache *c, const lrsa_model *m, const lrsa_press_config *press,
                            lrsa_err *e) {
    lrsa_press_spec s;
    lrsa_press_spec_defaults(&s, LRSA_PRESS_NONE);
    if (press) lrsa_press_config_spec(press, &s);
    return lrsa_press_cache_init(c, m, &s, e);
}

int lrsa_cached_forward(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int64_t N,
                        float *logits, int all_logits) {
    return lrsa_cached_forward_observed(m, c, ids, N, logits, all_logits, NULL);
}

int lrsa_cached_forward_observed(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                                 int64_t N, float *logits, int all_logits,
                                 const lrsa_layer_observer *obs) {
    const lrsa_model_config *cfg = &m->cfg;
    const int C = cfg->hidden_size, D = cfg->head_dim;
    const int Hq = cfg->num_attention_heads, Hkv = cfg->num_key_value_heads;
    const int64_t row = (int64_t)(Hq + 2 * Hkv) * D;
    LRSA_CHECK(N > 0);
    LRSA_CHECK(c->n_layers == cfg->num_hidden_layers && c->n_kv_heads == Hkv && c->head_dim == D,
               "(cache shaped for another model)");
    float *x = lrsa_malloc((size_t)N * C * sizeof(float));
    float *qkv = lrsa_malloc((size_t)N * row * sizeof(float));
    float *att = lrsa_malloc((size_t)N * Hq * D * sizeof(float));
    int32_t *pos = lrsa_malloc((size_t)N * sizeof(int32_t));
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)(c->seen + i);
    lrsa_model_embed(m, ids, N, x);
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        lrsa_model_layer_qkv(m, l, x, pos, N, qkv);
        lrsa_kv_cache_append(c, l, qkv + (int64_t)Hq * D, qkv + (int64_t)(Hq + Hkv) * D, row, pos,
                             N);
        lrsa_cache_attention(c, l, qkv, row, Hq, N, att, (int64_t)Hq * D);
        if (obs && obs->fn) obs->fn(obs->user, c, l, qkv, row, Hq, pos, N);
        lrsa_model_layer_out(m, l, x, att, N);
    }
    if (logits) {
        if (all_logits)
            lrsa_model_final_logits(m, x, N, logits);
        else
            lrsa_model_final_logits(m, x + (N - 1) * C, 1, logits);
    }
    free(x);
    free(qkv);
    free(att);
    free(pos);
    /* Use, then compress: this forward attended to the uncompressed rows. */
    return lrsa_kv_cache_compress(c);
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
