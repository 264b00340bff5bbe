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
#ifdef LRSA_HAVE_CUDA
/* The same attention on the GPU (attention_cuda.cu): device pointers, the layouts above; q, k, v,
 * out, dout, dq, dk, dv are bf16 (uint16_t bit patterns), lse fp32; head dims 64 and 128, at most
 * 64 query heads per KV head. stream is a cudaStream_t (NULL: the default stream). */
void lrsa_attention_forward_cuda(uint16_t *out, float *lse, const uint16_t *q, const uint16_t *k,
                                 const uint16_t *v, const lrsa_attn_dims *d, void *stream);
/* delta: device workspace of B*Hq*T floats (receives rowsum(dout*out)). dq, dk, dv are
 * overwritten (NULL: not computed) with the strides of q, k, v. No atomics: deterministic. */
void lrsa_attention_backward_cuda(uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout,
                                  const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                  const uint16_t *out, const float *lse, float *delta,
                                  const lrsa_attn_dims *d, void *stream);
#endif
#endif
