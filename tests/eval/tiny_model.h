/* A tiny random Llama-family model for the eval tests: GQA with 3 query heads per KV head. */
#ifndef LRSA_TESTS_EVAL_TINY_MODEL_H
#define LRSA_TESTS_EVAL_TINY_MODEL_H
#include <stdint.h>

#include "model/model.h"

/* layers, vocab V; hidden 48, 6 query heads, 2 KV heads, head_dim 16, Qwen2-style q/k/v biases
 * when `bias`. Weights N(0, 0.15^2) from `seed` (biases random too, so they matter). */
void tiny_model_create(lrsa_model *m, int layers, int V, int bias, uint64_t seed);
/* Creates a tiny model (as tiny_model_create) and saves it to dir (F32 safetensors); with
 * `tokenizer`, the fixture SmolLM tokenizer.json (1359 ids: use V = 1359) goes with it. */
void tiny_model_save_dir(const char *dir, int layers, int V, int bias, uint64_t seed,
                         int tokenizer);
/* Random token ids in [0, V). */
void tiny_random_ids(int32_t *ids, int64_t n, int V, uint64_t seed);
/* Logits [T, V] of the full-sequence forward (dense or LRSA). */
void tiny_full_logits(lrsa_model *m, const int32_t *ids, int T, const lrsa_attn_config *attn,
                      float *logits);
#endif
