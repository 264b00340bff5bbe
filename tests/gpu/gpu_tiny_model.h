/* The tiny model of the GPU model-level tests (test_gpu_model_step, test_gpu_kv_cache): 2
 * layers, hidden 128, 4 query and 2 KV heads of head_dim 64 (what the CUDA attention supports),
 * vocabulary 300, random weights rounded to bf16 so the CPU and the GPU start from the same
 * values. Header-only. */
#ifndef LRSA_TESTS_GPU_TINY_MODEL_H
#define LRSA_TESTS_GPU_TINY_MODEL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "model/model.h"
#include "test_model_util.h"

/* bias: q/k/v biases (Qwen2); tied: tied LM head. Norm and bias values are perturbed around
 * their defaults so their gradients are not trivial. */
static inline void gtm_create(lrsa_model *m, int bias, int tied, uint64_t seed, float std) {
    lrsa_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = bias ? LRSA_ARCH_QWEN2 : LRSA_ARCH_LLAMA;
    strcpy(c.model_type, bias ? "qwen2" : "llama");
    c.vocab_size = 300;
    c.hidden_size = 128;
    c.intermediate_size = 192;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.rms_norm_eps = 1e-5f;
    c.rope.theta = 10000.0f;
    c.tie_word_embeddings = tied;
    c.attention_bias = bias;
    c.max_position_embeddings = 4096;
    c.bos_token_id = c.pad_token_id = -1;
    lrsa_err e = {{0}};
    if (lrsa_model_create(m, &c, &e)) {
        fprintf(stderr, "model: %s\n", e.msg);
        exit(1);
    }
    lrsa_model_init_random(m, seed, std);
    tu_perturb_norms_biases(m, seed ^ 0x5eed, 0.1f);
    float *p = m->table.arena[LRSA_ROLE_PARAM];
    for (int64_t j = 0; j < m->table.numel; j++) p[j] = lrsa_bf16_to_f32(lrsa_f32_to_bf16(p[j]));
}
#endif
