/* Attention of new queries over a KV cache (CPU, fp32): each query attends to every cached row
 * of its KV head plus the new rows causally. GQA: query head h uses KV head h / (Hq / Hkv). */
#ifndef LRSA_EVAL_CACHE_ATTENTION_H
#define LRSA_EVAL_CACHE_ATTENTION_H
#include <stdint.h>

#include "eval/cache/kv_cache.h"

/* The N queries' own K/V rows must already be the last N rows of every KV head of `layer`
 * (lrsa_kv_cache_append). q: row n, head h at q + n*q_stride + h*D. att: row n, head h written
 * at att + n*att_stride + h*D. Scale 1/sqrt(D); softmax in fp32 with the maximum subtracted. */
void lrsa_cache_attention(const lrsa_kv_cache *c, int layer, const float *q, int64_t q_stride,
                          int n_q_heads, int64_t N, float *att, int64_t att_stride);
#endif
