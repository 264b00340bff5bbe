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
#endif
