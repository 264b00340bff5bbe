/* Cached attention: the CPU kernel of kernels/attention/attention_cache.h (tiled online softmax,
 * GQA heads stacked, threaded) over every KV head's rows of one layer. Rows past a query's own
 * position are excluded, which is the causal mask of the new chunk (everything cached precedes
 * it). */
#include "eval/cache/cache_attention.h"

#include <stdlib.h>

#include "kernels/attention/attention_cache.h"

void lrsa_cache_attention(const lrsa_kv_cache *c, int layer, const float *q, int64_t q_stride,
                          int n_q_heads, int64_t N, float *att, int64_t att_stride) {
    const int Hkv = c->n_kv_heads;
    lrsa_attn_kv_rows *rows = lrsa_malloc(sizeof *rows * (size_t)(Hkv > 0 ? Hkv : 1));
    for (int g = 0; g < Hkv; g++) {
        const lrsa_kv_head *kh = &c->heads[(int64_t)layer * Hkv + g];
        rows[g] = (lrsa_attn_kv_rows){kh->k, kh->v, kh->len};
    }
    lrsa_attention_cache_forward_cpu(att, att_stride, q, q_stride, n_q_heads, N, rows, Hkv,
                                     c->head_dim);
    free(rows);
}
