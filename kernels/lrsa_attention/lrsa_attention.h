#ifndef LRSA_KERNELS_LRSA_ATTENTION_H
#define LRSA_KERNELS_LRSA_ATTENTION_H
/* LRSA attention: causal attention under the chunked-LagKV visibility rule
 * (../shared/docs/lagkv-lrsa.md section 5), computed as gather + dense: per (sequence, KV head)
 * the sink and selected tokens are gathered into C = [sink | Sel(P_0) | Sel(P_1) | ...]; the
 * queries of partition c attend to C[0 : S + k(c-1)] and to the causal band
 * [start(P_{c-1}), i] with one online softmax. Queries before S + 2L see plain causal
 * attention. With keep = 1 this is exactly dense causal attention. */
#include <stdint.h>

#include "kernels/attention/attention.h"
#include "kernels/lagkv/lagkv.h"

/* sel: the selection of lrsa_lagkv_select_cpu on this layer's post-RoPE k and v.
 * out, lse, strides: as in attention.h. */
void lrsa_lrsa_attention_forward_cpu(float *out, float *lse, const float *q, const float *k,
                                     const float *v, const int32_t *sel, const lrsa_attn_dims *d,
                                     const lrsa_lagkv_params *p);
/* dq, dk, dv overwritten; no gradient flows through the selection. The gathered keys'
 * gradients are scattered back to their original positions (each occurs once in C). */
void lrsa_lrsa_attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout,
                                      const float *q, const float *k, const float *v,
                                      const float *out, const float *lse, const int32_t *sel,
                                      const lrsa_attn_dims *d, const lrsa_lagkv_params *p);
#ifdef LRSA_HAVE_CUDA
#include <stddef.h>
/* The same attention on the GPU (lrsa_attention_cuda.cu): device pointers, layouts as above,
 * q/k/v/out/dout/dq/dk/dv bf16 (uint16_t bits), lse fp32, sel as lrsa_lagkv_select_cuda writes
 * it. workspace: device memory of lrsa_lrsa_attention_cuda_workspace(d, p) bytes (gathered
 * C rows, their gradients, the inverse map, rowsum(dout*out)). Head dims 64 and 128. No atomics:
 * deterministic. stream is a cudaStream_t (NULL: the default stream). */
size_t lrsa_lrsa_attention_cuda_workspace(const lrsa_attn_dims *d, const lrsa_lagkv_params *p);
void lrsa_lrsa_attention_forward_cuda(uint16_t *out, float *lse, const uint16_t *q,
                                      const uint16_t *k, const uint16_t *v, const int32_t *sel,
                                      void *workspace, const lrsa_attn_dims *d,
                                      const lrsa_lagkv_params *p, void *stream);
void lrsa_lrsa_attention_backward_cuda(uint16_t *dq, uint16_t *dk, uint16_t *dv,
                                       const uint16_t *dout, const uint16_t *q, const uint16_t *k,
                                       const uint16_t *v, const uint16_t *out, const float *lse,
                                       const int32_t *sel, void *workspace, const lrsa_attn_dims *d,
                                       const lrsa_lagkv_params *p, void *stream);
#endif
#endif
