/* Dense causal grouped-query attention through cuDNN's fused attention (SDPA), forward and
 * backward, behind the op signature of lrsa_attention_{forward,backward}_cuda (attention.h):
 * the same layouts (q, k, v, out token-major with their strides; lse fp32 [B, Hq, T], natural
 * log of the scaled scores), bf16 data, head dims 64 and 128, GQA. The graphs are built with the
 * cuDNN backend API (attention_cudnn.c) once per shape and cached with their plan and workspace
 * size; the workspace comes from the caller's memory plan. Selected with attention.impl: cudnn
 * (docs/CUDA.md). Compiled, never run on a GPU. Only in builds with LRSA_HAVE_CUDNN. */
#ifndef LRSA_KERNELS_ATTENTION_CUDNN_H
#define LRSA_KERNELS_ATTENTION_CUDNN_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "kernels/attention/attention.h"

#ifdef LRSA_HAVE_CUDNN
typedef struct lrsa_attention_cudnn lrsa_attention_cudnn;

/* A cuDNN handle on `stream` (a cudaStream_t; NULL: the default stream) and an empty plan cache.
 * NULL with the reason in e when cuDNN cannot start (no GPU, a driver too old). */
lrsa_attention_cudnn *lrsa_attention_cudnn_create(void *stream, lrsa_err *e);
void lrsa_attention_cudnn_free(lrsa_attention_cudnn *a);

/* Builds (once per shape: B, T, heads, D, strides) the forward and backward plans and stores
 * the device workspace bytes a call of that shape needs in *bytes (the larger of the two: cuDNN's
 * workspace, plus the backward's fp32 dQ accumulator of B*Hq*T*D floats). 0, or -1 with the
 * reason in e (a head dim other than 64/128, cuDNN without an engine for the graph). */
int lrsa_attention_cudnn_prepare(lrsa_attention_cudnn *a, const lrsa_attn_dims *d, size_t *bytes,
                                 lrsa_err *e);
/* The device workspace every call uses (allocated once by the caller's memory plan). A call
 * whose shape needs more aborts naming the plan; a shape not prepared is prepared on first use
 * (host work only: no device allocation). */
void lrsa_attention_cudnn_set_workspace(lrsa_attention_cudnn *a, void *ws, size_t bytes);

/* Builds the forward and backward graphs of shape d without a cuDNN handle (cudnnCreate needs a
 * GPU): every tensor and operation descriptor is made and finalized, which checks each attribute
 * against the cuDNN library linked, but no engine is chosen. Stores the operation counts. 0, or
 * -1 with the reason in e (the shape checks of prepare). For tests on machines without a GPU. */
int lrsa_attention_cudnn_check_graphs(const lrsa_attn_dims *d, int *fwd_ops, int *bwd_ops,
                                      lrsa_err *e);

/* As lrsa_attention_forward_cuda, on the handle's stream. */
void lrsa_attention_forward_cudnn(lrsa_attention_cudnn *a, uint16_t *out, float *lse,
                                  const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                  const lrsa_attn_dims *d);
/* As lrsa_attention_backward_cuda: delta (B*Hq*T floats) receives rowsum(dout*out) (cuDNN's
 * softmax sum); dq, dk, dv are overwritten (all three required). cuDNN accumulates dQ with
 * atomics: not bitwise repeatable, unlike our kernel. */
void lrsa_attention_backward_cudnn(lrsa_attention_cudnn *a, uint16_t *dq, uint16_t *dk,
                                   uint16_t *dv, const uint16_t *dout, const uint16_t *q,
                                   const uint16_t *k, const uint16_t *v, const uint16_t *out,
                                   const float *lse, float *delta, const lrsa_attn_dims *d);
#endif
#endif
