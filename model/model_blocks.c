/* Block-level inference API (model.h): the KV cache owns attention, the model the rest. The
 * blocks run through a device's op table (lrsa_block_env), so the CPU cache (eval/) and the GPU
 * cache (eval/run/kv_cache_gpu.cu) share this code; the host-buffer functions at the end are the
 * CPU environment with scratch allocated per call (they run once per prefill chunk or token). */
#include <stdlib.h>
#include <string.h>

#include "model/base_bf16.h"
#include "model/device_ops.h"
#include "model/lora_ops.h"
#include "model/model.h"

/* A non-matrix weight (norms, biases, embedding, LM head). */
static const void *P(const lrsa_model *m, const lrsa_block_env *env, int idx) {
    if (idx < 0) return NULL;
    if (env->param)
        return (const char *)env->param + (size_t)m->table.desc[idx].offset * env->ops->act_bytes;
    return lrsa_model_param(m, idx);
}

/* The matrix of the linear op starting at tensor idx, numel elements (q, k, v and gate, up are
 * fused): a bf16-stored base's widened into env->wide. */
static const void *W(const lrsa_model *m, const lrsa_block_env *env, int idx, int64_t numel) {
    if (env->param || !m->base16) return P(m, env, idx);
    LRSA_CHECK(env->wide != NULL, "a bf16-stored base needs the block env's widening scratch");
    return lrsa_model_linear_weight(m, idx, numel, env->wide);
}

void lrsa_block_embed(const lrsa_model *m, const lrsa_block_env *env, const int32_t *ids, int64_t N,
                      void *x) {
    env->ops->embedding_fwd(env->ops->ctx, x, ids, P(m, env, m->embed), N, m->cfg.hidden_size);
}

void lrsa_block_layer_qkv(const lrsa_model *m, const lrsa_block_env *env, int layer, const void *x,
                          const int32_t *pos, int64_t N, void *qkv) {
    const lrsa_model_config *c = &m->cfg;
    const lrsa_layer_index *L = &m->layers[layer];
    const lrsa_device_ops *o = env->ops;
    const int C = c->hidden_size, D = c->head_dim;
    const int nh = c->num_attention_heads + c->num_key_value_heads;
    const int QKV = (c->num_attention_heads + 2 * c->num_key_value_heads) * D;
    o->rmsnorm_fwd(o->ctx, env->h, NULL, x, P(m, env, L->input_norm), N, C, c->rms_norm_eps);
    lrsa_model_site_linear(o, m, layer, LRSA_LORA_SITE_QKV, qkv, env->h,
                           W(m, env, L->q, (int64_t)QKV * C), P(m, env, L->q_bias), N, C, QKV);
    o->rope_fwd(o->ctx, qkv, pos, m->inv_freq, N, nh, D, QKV);
}

void lrsa_block_layer_out(const lrsa_model *m, const lrsa_block_env *env, int layer, void *x,
                          const void *att, int64_t N) {
    const lrsa_model_config *c = &m->cfg;
    const lrsa_layer_index *L = &m->layers[layer];
    const lrsa_device_ops *o = env->ops;
    const int C = c->hidden_size, I = c->intermediate_size;
    const int HD = c->num_attention_heads * c->head_dim;
    lrsa_model_site_linear(o, m, layer, LRSA_LORA_SITE_O, env->tmp, att,
                           W(m, env, L->o, (int64_t)C * HD), P(m, env, L->o_bias), N, HD, C);
    o->add(o->ctx, x, x, env->tmp, N * C);
    o->rmsnorm_fwd(o->ctx, env->h, NULL, x, P(m, env, L->post_norm), N, C, c->rms_norm_eps);
    lrsa_model_site_linear(o, m, layer, LRSA_LORA_SITE_GATE_UP, env->gu, env->h,
                           W(m, env, L->gate, (int64_t)2 * I * C), NULL, N, C, 2 * I);
    o->swiglu_fwd(o->ctx, env->act, env->gu, N, I);
    lrsa_model_site_linear(o, m, layer, LRSA_LORA_SITE_DOWN, env->tmp, env->act,
                           W(m, env, L->down, (int64_t)C * I), NULL, N, I, C);
    o->add(o->ctx, x, x, env->tmp, N * C);
}

void lrsa_block_final_logits(const lrsa_model *m, const lrsa_block_env *env, const void *x,
                             int64_t N, float *logits) {
    const lrsa_model_config *c = &m->cfg;
    env->ops->final_logits(env->ops->ctx, logits, x, P(m, env, m->final_norm),
                           P(m, env, m->lm_head), N, c->hidden_size, c->vocab_size,
                           c->rms_norm_eps);
}

/* ---- host buffers: the CPU environment --------------------------------------------------- */

/* The widening scratch of a bf16-stored base (NULL for an fp32 one), per call like the rest. */
static float *wide_scratch(const lrsa_model *m) {
    if (!m->base16) return NULL;
    return lrsa_malloc((size_t)lrsa_model_weight_bytes(m).scratch + sizeof(float));
}

void lrsa_model_embed(const lrsa_model *m, const int32_t *ids, int64_t N, float *x) {
    for (int64_t i = 0; i < N; i++)
        LRSA_CHECK(ids[i] >= 0 && ids[i] < m->cfg.vocab_size, "token id %d outside [0, %d)", ids[i],
                   m->cfg.vocab_size);
    lrsa_block_env env = {lrsa_device_ops_cpu(), NULL, NULL, NULL, NULL, NULL, NULL};
    lrsa_block_embed(m, &env, ids, N, x);
}

void lrsa_model_layer_qkv(const lrsa_model *m, int layer, const float *x, const int32_t *pos,
                          int64_t N, float *qkv) {
    const int C = m->cfg.hidden_size;
    lrsa_block_env env = {lrsa_device_ops_cpu(), NULL, NULL, NULL, NULL, NULL, NULL};
    env.h = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1);
    env.wide = wide_scratch(m);
    lrsa_block_layer_qkv(m, &env, layer, x, pos, N, qkv);
    free(env.h);
    free(env.wide);
}

void lrsa_model_cpu_env_init(const lrsa_model *m, lrsa_block_env *env, int64_t N) {
    const int C = m->cfg.hidden_size, I = m->cfg.intermediate_size;
    *env = (lrsa_block_env){lrsa_device_ops_cpu(), NULL, NULL, NULL, NULL, NULL, NULL};
    env->tmp = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1);
    env->h = lrsa_malloc((size_t)(N * C) * sizeof(float) + 1);
    env->gu = lrsa_malloc((size_t)(N * 2 * I) * sizeof(float) + 1);
    env->act = lrsa_malloc((size_t)(N * I) * sizeof(float) + 1);
    env->wide = wide_scratch(m);
}

void lrsa_model_cpu_env_free(lrsa_block_env *env) {
    free(env->wide);
    free(env->tmp);
    free(env->h);
    free(env->gu);
    free(env->act);
    memset(env, 0, sizeof *env);
}

void lrsa_model_layer_out(const lrsa_model *m, int layer, float *x, const float *att, int64_t N) {
    lrsa_block_env env;
    lrsa_model_cpu_env_init(m, &env, N);
    lrsa_block_layer_out(m, &env, layer, x, att, N);
    lrsa_model_cpu_env_free(&env);
}

void lrsa_model_final_logits(const lrsa_model *m, const float *x, int64_t N, float *logits) {
    lrsa_block_env env = {lrsa_device_ops_cpu(), NULL, NULL, NULL, NULL, NULL, NULL};
    lrsa_block_final_logits(m, &env, x, N, logits);
}
