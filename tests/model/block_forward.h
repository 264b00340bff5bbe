/* A forward of one sequence assembled from the block-level inference API (model.h) with plain
 * causal attention: what the KV-cache evaluation does, for comparing with lrsa_model_logits. */
#ifndef LRSA_TESTS_MODEL_BLOCK_FORWARD_H
#define LRSA_TESTS_MODEL_BLOCK_FORWARD_H
#include <stdint.h>

#include "model/model.h"

/* logits[T, V] of ids[T] through lrsa_model_embed / _layer_qkv / attention / _layer_out /
 * _final_logits (an attached adapter applies, as in the block API). */
void tm_block_forward_logits(const lrsa_model *m, const int32_t *ids, int T, float *logits);
#endif
