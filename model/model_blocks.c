/* Block-level inference API (model.h): the KV cache owns attention, the model the rest.
 * Scratch is allocated per call: these run once per prefill chunk or decoded token. */
#include <stdlib.h>
#include <string.h>

#include "kernels/embedding/embedding.h"
#include "kernels/lm_head_loss/lm_head_loss.h"
#include "kernels/residual/residual.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/rope/rope.h"
#include "kernels/swiglu/swiglu.h"
#include "model/lora_ops.h"
#include "model/model.h"

static const float *P(const lrsa_model *m, int idx) {
    return idx >= 0 ? lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, idx) : NULL;
}

void lrsa_model_embed(const lrsa_model *m, const int32_t *ids, int64_t N, float *x) {
    for (int64_t i = 0; i < N; i++)
        LRSA_CHECK(ids[i] >= 0 && ids[i] < m->cfg.vocab_size, "token id %d outside [0, %d)", ids[i],
                   m->cfg.vocab_size);
    lrsa_embedding_forward_cpu(x, ids, P(m, m->embed), N, m->cfg.hidden_size);
}

void lrsa_model_layer_qkv(const lrsa_model *m, int layer, const float *x, const int32_t *pos,
                          int64_t N, float *qkv) {
    const lrsa_model_config *c = &m->cfg;
    const lrsa_layer_index *L = &m->layers[layer];
    const int C = c->hidden_size, D = c->head_dim;
    const int nh = c->num_attention_heads + c->num_key_value_heads;
    const int QKV = (c->num_attention_heads + 2 * c->num_key_value_heads) * D;
    float *h = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1);
    lrsa_rmsnorm_forward_cpu(h, NULL, x, P(m, L->input_norm), N, C, c->rms_norm_eps);
    lrsa_model_site_linear(m, layer, LRSA_LORA_SITE_QKV, qkv, h, P(m, L->q), P(m, L->q_bias), N, C,
                           QKV);
    lrsa_rope_forward_cpu(qkv, pos, m->inv_freq, N, nh, D, QKV);
    free(h);
}

void lrsa_model_layer_out(const lrsa_model *m, int layer, float *x, const float *att, int64_t N) {
    const lrsa_model_config *c = &m->cfg;
    const lrsa_layer_index *L = &m->layers[layer];
    const int C = c->hidden_size, I = c->intermediate_size;
    const int HD = c->num_attention_heads * c->head_dim;
    float *tmp = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1);
    float *h = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1);
    float *gu = lrsa_malloc((size_t)(N * 2 * I) * sizeof(float) + 1);
    float *act = lrsa_malloc((size_t)(N * I) * sizeof(float) + 1);
    lrsa_model_site_linear(m, layer, LRSA_LORA_SITE_O, tmp, att, P(m, L->o), P(m, L->o_bias), N, HD,
                           C);
    lrsa_residual_forward_cpu(x, x, tmp, N * C);
    lrsa_rmsnorm_forward_cpu(h, NULL, x, P(m, L->post_norm), N, C, c->rms_norm_eps);
    lrsa_model_site_linear(m, layer, LRSA_LORA_SITE_GATE_UP, gu, h, P(m, L->gate), NULL, N, C,
                           2 * I);
    lrsa_swiglu_forward_cpu(act, gu, N, I);
    lrsa_model_site_linear(m, layer, LRSA_LORA_SITE_DOWN, tmp, act, P(m, L->down), NULL, N, I, C);
    lrsa_residual_forward_cpu(x, x, tmp, N * C);
    free(tmp);
    free(h);
    free(gu);
    free(act);
}

void lrsa_model_final_logits(const lrsa_model *m, const float *x, int64_t N, float *logits) {
    const lrsa_model_config *c = &m->cfg;
    lrsa_lm_head_logits_cpu(logits, x, P(m, m->final_norm), P(m, m->lm_head), N, c->hidden_size,
                            c->vocab_size, c->rms_norm_eps);
}
