#ifndef LRSA_KERNELS_ATTENTION_H
#define LRSA_KERNELS_ATTENTION_H
#include <stdint.h>

/* Shapes and strides of one attention call (token-major layout, see kernels/README.md).
 * q(b,t,h,:)   at q  + (b*T + t)*q_stride  + h*D,   h < Hq
 * k/v(b,t,g,:) at k  + (b*T + t)*kv_stride + g*D,   g < Hkv; query head h uses g = h / (Hq/Hkv)
 * out(b,t,h,:) at out+ (b*T + t)*o_stride  + h*D
 * lse[(b*Hq + h)*T + t]: natural-log logsumexp of the scaled scores of that query row. */
typedef struct lrsa_attn_dims {
    int B, T;
    int Hq, Hkv, D;
    int64_t q_stride, kv_stride, o_stride;
    float scale; /* usually 1/sqrt(D) */
} lrsa_attn_dims;

/* Dense causal grouped-query attention, FlashAttention-style: online softmax over key blocks,
 * logsumexp saved, never a [T, T] buffer. */
void lrsa_attention_forward_cpu(float *out, float *lse, const float *q, const float *k,
                                const float *v, const lrsa_attn_dims *d);
/* Backward recomputing P from q, k and lse, with the rowsum(dout*out) pre-pass.
 * dq, dk, dv are overwritten and use the same strides as q, k, v (so they can live in a fused
 * dqkv buffer). */
void lrsa_attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                 const float *k, const float *v, const float *out, const float *lse,
                                 const lrsa_attn_dims *d);
#endif
