/* The cached forward pass (eval/cache/cached_forward.h). */
#include "eval/cache/cached_forward.h"

#include <stdlib.h>

#include "eval/cache/cache_attention.h"

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
