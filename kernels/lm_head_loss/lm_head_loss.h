#ifndef LRSA_KERNELS_LM_HEAD_LOSS_H
#define LRSA_KERNELS_LM_HEAD_LOSS_H
#include <stdint.h>

/* Fused final RMSNorm + LM head + cross-entropy, computed only at rows with weight[i] != 0,
 * in chunks of rows: never a [N, vocab] buffer.
 *   h[N, C]      final hidden states (before the final norm)
 *   norm_w[C]    final norm weight;  W[V, C] LM head (the embedding when tied)
 *   targets[i]   the token row i must predict (the next token); ignored where weight[i] == 0
 *   weight[i]    loss weight of row i (0 = masked; e.g. 1/number_of_loss_tokens in the batch)
 * Returns sum_i weight[i] * nll_i (in double). nll_out[N] (may be NULL) gets each row's nll
 * (0 where masked).
 * The loss is the root of the graph, so its backward runs in the same call when dh != NULL:
 * dh (overwrite, zero at masked rows), dnorm_w +=, dW += (dnorm_w, dW may be NULL). */
double lrsa_lm_head_loss_cpu(float *nll_out, float *dh, float *dnorm_w, float *dW, const float *h,
                             const float *norm_w, const float *W, const int32_t *targets,
                             const float *weight, int64_t N, int C, int V, float eps);

/* Plain logits for the rows asked for (parity dumps, generation): logits[N, V] =
 * rmsnorm(h) @ W^T. */
void lrsa_lm_head_logits_cpu(float *logits, const float *h, const float *norm_w, const float *W,
                             int64_t N, int C, int V, float eps);

#ifdef LRSA_HAVE_CUDA
#include "kernels/linear/linear.h"
/* The same fused op on the GPU. Scratch (gathered-row index, one chunk of normalised rows, fp32
 * logits and bf16 logit gradients, never [N, V]) is allocated once by _create for up to max_n
 * rows of width C over a vocabulary V; chunk_rows 0 picks the chunk from a 256 MiB budget for
 * the [chunk, V] buffers. The matmuls run through `gemm` (and on its stream); the context
 * borrows it, so destroy the context first. */
typedef struct lrsa_lm_head_loss_ctx lrsa_lm_head_loss_ctx;
lrsa_lm_head_loss_ctx *lrsa_lm_head_loss_cuda_create(lrsa_linear_cuda *gemm, int64_t max_n, int C,
                                                     int V, int chunk_rows);
void lrsa_lm_head_loss_cuda_destroy(lrsa_lm_head_loss_ctx *ctx);
/* Rows per chunk the context uses (tests pick N to span several chunks). */
int lrsa_lm_head_loss_cuda_chunk_rows(const lrsa_lm_head_loss_ctx *ctx);
/* lrsa_lm_head_loss_cpu on device pointers: h, norm_w, W bf16; targets int32; weight fp32;
 * loss_out (device, one double) = sum_i weight[i] * nll_i; nll_out fp32 [N] (may be NULL);
 * when dh != NULL the backward runs too: dh bf16 (overwrite, zero at masked rows),
 * dnorm_w fp32 +=, dW fp32 += (both may be NULL). Norm statistics, logits and logsumexp are fp32.
 * The active-row count is copied back to the host once (the only synchronisation of the call)
 * and returned; a target outside [0, V) at an active row aborts naming the row. */
int64_t lrsa_lm_head_loss_cuda(lrsa_lm_head_loss_ctx *ctx, double *loss_out, float *nll_out,
                               uint16_t *dh, float *dnorm_w, float *dW, const uint16_t *h,
                               const uint16_t *norm_w, const uint16_t *W, const int32_t *targets,
                               const float *weight, int64_t N, float eps);
/* The same with no host synchronisation, so it can be captured into a CUDA graph (the device
 * trainer's step, docs/CUDA.md): `active`, the number of rows with a nonzero weight, comes from
 * the caller (who has the weights on the host) and sizes the chunk loop; the loss is ADDED to
 * *loss_acc (device double). Instead of aborting, the first fault is recorded in fault[0]
 * (device int32 the caller sets to -1 and reads after its own synchronisation): the first
 * active row whose target is outside [0, V), or -2 when the device counts a different number of
 * active rows than `active`. Same results, bit for bit, as lrsa_lm_head_loss_cuda. */
void lrsa_lm_head_loss_cuda_async(lrsa_lm_head_loss_ctx *ctx, double *loss_acc, int32_t *fault,
                                  int64_t active, float *nll_out, uint16_t *dh, float *dnorm_w,
                                  float *dW, const uint16_t *h, const uint16_t *norm_w,
                                  const uint16_t *W, const int32_t *targets, const float *weight,
                                  int64_t N, float eps);
#endif
#endif
