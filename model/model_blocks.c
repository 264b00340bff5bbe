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
#include "model/base_bf16.h"
#include "model/lora_ops.h"
#include "model/model.h"

static const float *P(const lrsa_model *m, int idx) {
    return lrsa_model_param(m, idx);
}

/* A linear op's matrix (tensor idx, numel elements) as fp32; a bf16 base widens it into *buf,
 * allocated on first use for the largest op of the call (the block API takes a const model and
 * keeps its scratch per call, as it does for activations, rather than share the store's). */
static const float *W(const lrsa_model *m, int idx, int64_t numel, int64_t most, float **buf) {
    if (m->base16 && !*buf) *buf = lrsa_malloc(sizeof(float) * (size_t)most);
    return lrsa_model_linear_weight(m, idx, numel, *buf);
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
    float *h = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1), *wbuf = NULL;
    lrsa_rmsnorm_forward_cpu(h, NULL, x, P(m, L->input_norm), N, C, c->rms_norm_eps);
    const int64_t n_qkv = (int64_t)QKV * C;
    lrsa_model_site_linear(m, layer, LRSA_LORA_SITE_QKV, qkv, h, W(m, L->q, n_qkv, n_qkv, &wbuf),
                           P(m, L->q_bias), N, C, QKV);
    lrsa_rope_forward_cpu(qkv, pos, m->inv_freq, N, nh, D, QKV);
    free(h);
    free(wbuf);
}

void lrsa_model_layer_out(const lrsa_model *m, int layer, float *x, const float *att, int64_t N) {
    const lrsa_model_config *c = &m->cfg;
    const lrsa_layer_index *L = &m->layers[layer];
    const int C = c->hidden_size, I = c->intermediate_size;
    const int HD = c->num_attention_heads * c->head_dim;
    float *tmp = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1);
    float *h = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1);
    float *gu = lrsa_malloc((size_t)(N * 2 * I) * sizeof(float) + 1);
    float *act = lrsa_malloc((size_t)(N * I) * sizeof(float) + 1), *wbuf = NULL;
    const int64_t n_o = (int64_t)C * HD, n_gu = (int64_t)2 * I * C, n_down = (int64_t)C * I;
    const int64_t most = n_o > n_gu ? n_o : n_gu;
    lrsa_model_site_linear(m, layer, LRSA_LORA_SITE_O, tmp, att, W(m, L->o, n_o, most, &wbuf),
                           P(m, L->o_bias), N, HD, C);
    lrsa_residual_forward_cpu(x, x, tmp, N * C);
    lrsa_rmsnorm_forward_cpu(h, NULL, x, P(m, L->post_norm), N, C, c->rms_norm_eps);
    lrsa_model_site_linear(m, layer, LRSA_LORA_SITE_GATE_UP, gu, h,
                           W(m, L->gate, n_gu, most, &wbuf), NULL, N, C, 2 * I);
    lrsa_swiglu_forward_cpu(act, gu, N, I);
    lrsa_model_site_linear(m, layer, LRSA_LORA_SITE_DOWN, tmp, act,
                           W(m, L->down, n_down, most, &wbuf), NULL, N, I, C);
    lrsa_residual_forward_cpu(x, x, tmp, N * C);
    free(tmp);
    free(h);
    free(gu);
    free(act);
    free(wbuf);
}

void lrsa_model_final_logits(const lrsa_model *m, const float *x, int64_t N, float *logits) {
    const lrsa_model_config *c = &m->cfg;
    lrsa_lm_head_logits_cpu(logits, x, P(m, m->final_norm), P(m, m->lm_head), N, c->hidden_size,
                            c->vocab_size, c->rms_norm_eps);
}
