#ifndef LRSA_KERNELS_LAGKV_H
#define LRSA_KERNELS_LAGKV_H
/* LagKV scoring and top-k selection: ../shared/docs/lagkv-lrsa.md section 3 (decisions
 * included: fp32, max(mx-mn, 1e-6), ties to the lower position, ascending indices). */
#include <stdint.h>

#include "autograd/error.h"

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
#endif
