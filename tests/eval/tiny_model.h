/* A tiny random Llama-family model for the eval tests: GQA with 3 query heads per KV head. */
#ifndef LRSA_TESTS_EVAL_TINY_MODEL_H
#define LRSA_TESTS_EVAL_TINY_MODEL_H
#include <stdint.h>

#include "model/model.h"

/* layers, vocab V; hidden 48, 6 query heads, 2 KV heads, head_dim 16, Qwen2-style q/k/v biases
 * when `bias`. Weights N(0, 0.15^2) from `seed` (biases random too, so they matter). */
void tiny_model_create(lrsa_model *m, int layers, int V, int bias, uint64_t seed);
/* Random token ids in [0, V). */
void tiny_random_ids(int32_t *ids, int64_t n, int V, uint64_t seed);
/* Logits [T, V] of the full-sequence forward (dense or LRSA). */
void tiny_full_logits(lrsa_model *m, const int32_t *ids, int T, const lrsa_attn_config *attn,
                      float *logits);
#endif
