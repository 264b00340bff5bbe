/* The salience loss: a differentiable surrogate that teaches a model to make an answer-bearing
 * needle selectable by LagKV (an lrsa extension, not in the LRSA paper; docs/TRAINING.md).
 * LagKV's top-k has no gradient, but its score does: for a partition P_j holding needle tokens
 * N_j, scored against P_{j+1} (../shared/docs/lagkv-lrsa.md section 3),
 *     aux_j = -log( sum_{t in N_j} score[t] / (1 + w) ),  score = p_K + w p_V,
 * which is 0 when the needle holds all of the partition's score mass. The gradient flows through
 * the softmaxes, the unbiased std over channels and the (X - mn) / max(mx - mn, 1e-6)
 * normalisation (min and max: to the arg-min / arg-max row of P_{j+1}, the first one on ties, as
 * the forward takes them; nothing through the guard) into K and V of P_j and P_{j+1}. */
#ifndef LRSA_KERNELS_LAGKV_SALIENCE_H
#define LRSA_KERNELS_LAGKV_SALIENCE_H
#include <stdint.h>

#include "kernels/lagkv/lagkv.h"

/* One partition in double: k_part, v_part, k_ref, v_ref are [L][D] rows (D >= 2); needle[t] != 0
 * marks N_j (at least one). Returns aux_j. When dk_part is not NULL, adds g * d aux_j / d X into
 * dk_part, dv_part, dk_ref, dv_ref (same layout). */
double lrsa_lagkv_salience_partition(const double *k_part, const double *v_part,
                                     const double *k_ref, const double *v_ref, int L, int D,
                                     double w, const uint8_t *needle, double g, double *dk_part,
                                     double *dv_part, double *dk_ref, double *dv_ref);

/* Number of scored partitions (j < lrsa_lagkv_num_scored(T)) holding a token with needle[t] != 0:
 * the terms one (layer, KV head) contributes. */
int lrsa_lagkv_salience_terms(const uint8_t *needle, int T, const lrsa_lagkv_params *p);

/* One sequence and layer (fp32 post-RoPE k and v, token-major with kv_stride as in lagkv.h):
 * returns the sum of aux_j over its KV heads and needle partitions. When dk is not NULL, adds
 * g * d(sum)/dK into dk and likewise dv (same layout and stride as k, v). */
double lrsa_lagkv_salience_layer(const float *k, const float *v, int64_t kv_stride, int T, int Hkv,
                                 int D, const lrsa_lagkv_params *p, const uint8_t *needle, double g,
                                 float *dk, float *dv);
#endif
