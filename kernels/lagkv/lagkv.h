#ifndef LRSA_KERNELS_LAGKV_H
#define LRSA_KERNELS_LAGKV_H
/* LagKV scoring and top-k selection: ../shared/docs/lagkv-lrsa.md section 3 (decisions
 * included: fp32, max(mx-mn, 1e-6), ties to the lower position, ascending indices). */
#include <stdint.h>

#include "base/error.h"

typedef struct lrsa_lagkv_params {
    int sink;           /* S >= 0 */
    int lag;            /* L > 0, partition size */
    float keep;         /* r in (0, 1]: fraction of each partition kept */
    float value_weight; /* w, default 1 */
} lrsa_lagkv_params;

/* k = (int)((double)r * L), the product truncated. */
int lrsa_lagkv_k(const lrsa_lagkv_params *p);
/* Checks the hyper-parameters; the message names the bad one and the valid range. */
int lrsa_lagkv_validate(const lrsa_lagkv_params *p, lrsa_err *e);
/* Number of full partitions after the sink in a sequence of T tokens: floor((T-S)/L), >= 0. */
int lrsa_lagkv_num_partitions(int T, const lrsa_lagkv_params *p);
/* Number of scored partitions (each needs a full successor): max(num_partitions - 1, 0). */
int lrsa_lagkv_num_scored(int T, const lrsa_lagkv_params *p);

/* Scores and selects for every sequence and KV head of one layer (post-RoPE keys).
 *   k, v: token-major, k(b,t,g,:) at k + (b*T + t)*kv_stride + g*D (as in attention.h)
 *   sel[((b*Hkv + g)*n_scored + j)*kk + i]: absolute positions (within the sequence) of the kk
 *       tokens kept from partition j, ascending; n_scored = lrsa_lagkv_num_scored(T), kk = k.
 *   scores[(b*Hkv + g)*T + t] (may be NULL): p_K + w*p_V for scored tokens, +INFINITY for the
 *       sink and for tokens of unscored partitions and the leftover. */
void lrsa_lagkv_select_cpu(int32_t *sel, float *scores, const float *k, const float *v, int B,
                           int T, int Hkv, int D, int64_t kv_stride, const lrsa_lagkv_params *p);

/* Helpers for one partition of one (sequence, KV head); the KV-cache code calls them on cache
 * contents. Rows t of k_part/v_part/k_ref/v_ref are row_stride floats apart, D channels each.
 * score[t] (t < L) = softmax_t(std_K) + value_weight * softmax_t(std_V), with the min/max of
 * each channel taken over the L reference rows (the next partition). */
void lrsa_lagkv_score_partition(float *score, const float *k_part, const float *v_part,
                                const float *k_ref, const float *v_ref, int L, int D,
                                int64_t row_stride, float value_weight);
/* idx[0..k): the positions (0..L-1) of the k highest scores, ties to the lower position,
 * stored ascending. NaN scores rank last. */
void lrsa_lagkv_topk_ascending(int32_t *idx, const float *score, int L, int k);
#ifdef LRSA_HAVE_CUDA
/* The same selection on the GPU, all partitions of all (sequence, KV head) pairs in one launch:
 * sel, scores (may be NULL), k and v are device pointers with the layouts above; stream is a
 * cudaStream_t (NULL: the default stream). Selections equal the CPU's on the same fp32 inputs.
 * The _bf16 variant reads bf16 keys/values (uint16_t bit patterns) and scores them in fp32. */
void lrsa_lagkv_select_cuda(int32_t *sel, float *scores, const float *k, const float *v, int B,
                            int T, int Hkv, int D, int64_t kv_stride, const lrsa_lagkv_params *p,
                            void *stream);
void lrsa_lagkv_select_cuda_bf16(int32_t *sel, float *scores, const uint16_t *k, const uint16_t *v,
                                 int B, int T, int Hkv, int D, int64_t kv_stride,
                                 const lrsa_lagkv_params *p, void *stream);
#endif
#endif
