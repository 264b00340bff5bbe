#include "tiny_model.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/fileio.h"
#include "base/rng.h"

void tiny_model_create(lrsa_model *m, int layers, int V, int bias, uint64_t seed) {
    lrsa_model_config c;
    memset(&c, 0, sizeof(c));
    c.arch = bias ? LRSA_ARCH_QWEN2 : LRSA_ARCH_LLAMA;
    strcpy(c.model_type, bias ? "qwen2" : "llama");
    c.vocab_size = V;
    c.hidden_size = 48;
    c.intermediate_size = 64;
    c.num_hidden_layers = layers;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.rms_norm_eps = 1e-5f;
    c.rope.theta = 10000.0f;
    c.rope.type = LRSA_ROPE_DEFAULT;
    c.attention_bias = bias;
    c.max_position_embeddings = 4096;
    c.bos_token_id = -1;
    c.pad_token_id = -1;
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_model_create(m, &c, &e), 0);
    lrsa_model_init_random(m, seed, 0.15f);
    if (bias) { /* init_random zeroes biases; give them values so the bias path is exercised */
        lrsa_rng r;
        lrsa_rng_seed(&r, seed ^ 0xb1a5);
        for (int l = 0; l < layers; l++) {
            int idx[3] = {m->layers[l].q_bias, m->layers[l].k_bias, m->layers[l].v_bias};
            for (int i = 0; i < 3; i++) {
                float *p = lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, idx[i]);
                for (int64_t j = 0; j < m->table.desc[idx[i]].numel; j++)
                    p[j] = 0.1f * lrsa_rng_normal(&r);
            }
        }
    }
}

void tiny_random_ids(int32_t *ids, int64_t n, int V, uint64_t seed) {
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)lrsa_rng_below(&r, (uint64_t)V);
}

void tiny_full_logits(lrsa_model *m, const int32_t *ids, int T, const lrsa_attn_config *attn,
                      float *logits) {
    lrsa_workspace *ws = lrsa_workspace_new();
    lrsa_model_logits(m, ws, ids, 1, T, attn, logits);
    lrsa_workspace_free(ws);
}

void tiny_model_save_dir(const char *dir, int layers, int V, int bias, uint64_t seed,
                         int tokenizer) {
    lrsa_model m;
    tiny_model_create(&m, layers, V, bias, seed);
    lrsa_err e = {{0}};
    assert_int_equal(lrsa_model_save(&m, dir, LRSA_ST_F32, &e), 0);
    lrsa_model_free(&m);
    if (!tokenizer) return;
    char dst[4200];
    snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
    size_t n = 0;
    char *tok = lrsa_read_file(LRSA_TEST_DATA "/tokenizer/smollm/tokenizer.json", &n, &e);
    assert_non_null(tok);
    assert_int_equal(lrsa_write_file_atomic(dst, tok, n, &e), 0);
    free(tok);
}
