/* The cached forward pass (eval/cache/cached_forward.h): one sequence, or several packed into the
 * same matrices (batched evaluation). */
#include "eval/cache/cached_forward.h"

#include <stdlib.h>
#include <string.h>

#include "eval/cache/cache_attention.h"

int lrsa_cached_forward(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids, int64_t N,
                        float *logits, int all_logits) {
    return lrsa_cached_forward_observed(m, c, ids, N, logits, all_logits, NULL);
}

int lrsa_cached_forward_observed(const lrsa_model *m, lrsa_kv_cache *c, const int32_t *ids,
                                 int64_t N, float *logits, int all_logits,
                                 const lrsa_layer_observer *obs) {
    const lrsa_forward_seq seq = {c, ids, N, logits, all_logits, obs};
    return lrsa_cached_forward_batch(m, &seq, 1);
}

/* The logits the sequences asked for. A sequence that wants every row's logits gets them
 * straight into its buffer (its rows are contiguous); the last rows of the others are gathered
 * into one [k, C] block so the LM head is one GEMM over all of them (what batching buys in
 * decoding, where the LM head dominates a small model). */
static void batch_logits(const lrsa_model *m, const lrsa_forward_seq *seqs, int n_seqs,
                         const int64_t *first_row, const float *x) {
    const int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    int n_last = 0, only = -1;
    for (int b = 0; b < n_seqs; b++) {
        if (!seqs[b].logits) continue;
        if (seqs[b].all_logits) {
            lrsa_model_final_logits(m, x + first_row[b] * C, seqs[b].n, seqs[b].logits);
        } else {
            n_last++;
            only = b;
        }
    }
    if (n_last == 0) return;
    if (n_last == 1) { /* straight into the caller's buffer, as one sequence always did */
        lrsa_model_final_logits(m, x + (first_row[only] + seqs[only].n - 1) * C, 1,
                                seqs[only].logits);
        return;
    }
    float *xl = lrsa_malloc((size_t)n_last * C * sizeof(float));
    float *out = lrsa_malloc((size_t)n_last * V * sizeof(float));
    int k = 0;
    for (int b = 0; b < n_seqs; b++)
        if (seqs[b].logits && !seqs[b].all_logits)
            memcpy(xl + (int64_t)k++ * C, x + (first_row[b] + seqs[b].n - 1) * C,
                   (size_t)C * sizeof(float));
    lrsa_model_final_logits(m, xl, n_last, out);
    k = 0;
    for (int b = 0; b < n_seqs; b++)
        if (seqs[b].logits && !seqs[b].all_logits)
            memcpy(seqs[b].logits, out + (int64_t)k++ * V, (size_t)V * sizeof(float));
    free(xl);
    free(out);
}

int lrsa_cached_forward_batch(const lrsa_model *m, const lrsa_forward_seq *seqs, int n_seqs) {
    const lrsa_model_config *cfg = &m->cfg;
    const int C = cfg->hidden_size, D = cfg->head_dim;
    const int Hq = cfg->num_attention_heads, Hkv = cfg->num_key_value_heads;
    const int64_t row = (int64_t)(Hq + 2 * Hkv) * D;
    LRSA_CHECK(n_seqs > 0);
    int64_t *first_row = lrsa_malloc((size_t)n_seqs * sizeof(int64_t));
    int64_t R = 0; /* rows of all sequences, packed in order */
    for (int b = 0; b < n_seqs; b++) {
        const lrsa_kv_cache *c = seqs[b].cache;
        LRSA_CHECK(seqs[b].n > 0);
        LRSA_CHECK(c->n_layers == cfg->num_hidden_layers && c->n_kv_heads == Hkv &&
                       c->head_dim == D,
                   "(cache shaped for another model)");
        for (int a = 0; a < b; a++)
            LRSA_CHECK(seqs[a].cache != c, "(two sequences of one batch share a cache)");
        first_row[b] = R;
        R += seqs[b].n;
    }
    float *x = lrsa_malloc((size_t)R * C * sizeof(float));
    float *qkv = lrsa_malloc((size_t)R * row * sizeof(float));
    float *att = lrsa_malloc((size_t)R * Hq * D * sizeof(float));
    int32_t *pos = lrsa_malloc((size_t)R * sizeof(int32_t));
    int32_t *ids = n_seqs > 1 ? lrsa_malloc((size_t)R * sizeof(int32_t)) : NULL;
    for (int b = 0; b < n_seqs; b++) {
        for (int64_t i = 0; i < seqs[b].n; i++)
            pos[first_row[b] + i] = (int32_t)(seqs[b].cache->seen + i);
        if (ids) memcpy(ids + first_row[b], seqs[b].ids, (size_t)seqs[b].n * sizeof(int32_t));
    }
    lrsa_model_embed(m, ids ? ids : seqs[0].ids, R, x);
    lrsa_block_env env; /* one set of scratch for every layer */
    lrsa_model_cpu_env_init(m, &env, R);
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        lrsa_block_layer_qkv(m, &env, l, x, pos, R, qkv);
        for (int b = 0; b < n_seqs; b++) { /* attention: each sequence over its own cache */
            const lrsa_forward_seq *s = &seqs[b];
            const float *q = qkv + first_row[b] * row;
            const int32_t *p = pos + first_row[b];
            lrsa_kv_cache_append(s->cache, l, q + (int64_t)Hq * D, q + (int64_t)(Hq + Hkv) * D, row,
                                 p, s->n);
            lrsa_cache_attention(s->cache, l, q, row, Hq, s->n, att + first_row[b] * Hq * D,
                                 (int64_t)Hq * D);
            if (s->obs && s->obs->fn) s->obs->fn(s->obs->user, s->cache, l, q, row, Hq, p, s->n);
        }
        lrsa_block_layer_out(m, &env, l, x, att, R);
    }
    lrsa_model_cpu_env_free(&env);
    batch_logits(m, seqs, n_seqs, first_row, x);
    free(x);
    free(qkv);
    free(att);
    free(pos);
    free(ids);
    free(first_row);
    /* Use, then compress: this forward attended to the uncompressed rows. */
    int events = 0;
    for (int b = 0; b < n_seqs; b++) events += lrsa_kv_cache_compress(seqs[b].cache);
    return events;
}
