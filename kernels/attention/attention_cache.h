/* Attention of new queries over an inference KV cache (CPU, fp32): each query attends to the
 * cached rows of its KV head and, causally, to the new rows (which the caller has appended).
 * The same tile engine as training (attention_tile.h): GQA heads stacked per block, online
 * softmax, vectorised exp; threaded over (KV head, query block) and, when that gives fewer than
 * LRSA_ATTN_CACHE_MIN_TASKS tasks (decoding, short chunks), also over key ranges of
 * LRSA_ATTN_CACHE_SPLIT rows whose softmax states are merged in order afterwards. The split
 * depends on the shapes only, so results do not depend on the thread count. */
#ifndef LRSA_KERNELS_ATTENTION_CACHE_H
#define LRSA_KERNELS_ATTENTION_CACHE_H
#include <stdint.h>

enum { LRSA_ATTN_CACHE_MIN_TASKS = 8, LRSA_ATTN_CACHE_SPLIT = 1024 };

/* One KV head's rows, D floats apart, in position order; the last N are the new queries' own. */
typedef struct lrsa_attn_kv_rows {
    const float *k, *v;
    int64_t len;
} lrsa_attn_kv_rows;

/* N queries: row n of query head h at q + n*q_stride + h*D; query n sees rows
 * [0, len - N + n] of KV head h / (Hq/Hkv). out row n, head h written at
 * out + n*o_stride + h*D. Scale 1/sqrt(D). Hq must be a multiple of Hkv, len >= N. */
void lrsa_attention_cache_forward_cpu(float *out, int64_t o_stride, const float *q,
                                      int64_t q_stride, int Hq, int64_t N,
                                      const lrsa_attn_kv_rows *kv, int Hkv, int D);
#endif
