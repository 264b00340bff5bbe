/* A random-weight model of SmolLM2-135M's shape (9 query heads, 3 KV heads, head dim 64, hidden
 * 576) with a chosen number of layers, for the CPU benchmarks that need no real checkpoint.
 * Header-only because every bench .c file is its own program. */
#ifndef LRSA_BENCH_RANDOM_MODEL_H
#define LRSA_BENCH_RANDOM_MODEL_H
#include <string.h>

#include "model/model.h"

static inline int bench_random_smollm2(lrsa_model *m, int layers, int max_positions, lrsa_err *e) {
    lrsa_model_config c;
    memset(&c, 0, sizeof(c));
    c.arch = LRSA_ARCH_LLAMA;
    strcpy(c.model_type, "llama");
    c.vocab_size = 49152;
    c.hidden_size = 576;
    c.intermediate_size = 1536;
    c.num_hidden_layers = layers;
    c.num_attention_heads = 9;
    c.num_key_value_heads = 3;
    c.head_dim = 64;
    c.rms_norm_eps = 1e-5f;
    c.rope.theta = 100000.0f;
    c.tie_word_embeddings = 1;
    c.max_position_embeddings = max_positions;
    c.bos_token_id = c.pad_token_id = -1;
    if (lrsa_model_create(m, &c, e) != 0) return -1;
    lrsa_model_init_random(m, 1, 0.02f);
    return 0;
}
#endif
