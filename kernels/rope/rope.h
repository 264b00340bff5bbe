#ifndef LRSA_KERNELS_ROPE_H
#define LRSA_KERNELS_ROPE_H
#include <stdint.h>

#include "autograd/error.h"

typedef enum lrsa_rope_type {
    LRSA_ROPE_DEFAULT = 0,
    LRSA_ROPE_LINEAR,
    LRSA_ROPE_LLAMA3
} lrsa_rope_type;

typedef struct lrsa_rope_config {
    float theta; /* rope_theta, default 10000 */
    lrsa_rope_type type;
    float factor;          /* linear and llama3 */
    float low_freq_factor; /* llama3 */
    float high_freq_factor;
    int original_max_position_embeddings;
} lrsa_rope_config;

/* inv_freq[j], j < D/2, exactly as transformers computes it (fp32), scaling applied:
 * default theta^(-2j/D); linear divides by factor; llama3 as in formats.md 2.3. */
void lrsa_rope_inv_freq(float *inv_freq, int D, const lrsa_rope_config *rc);

/* In-place rotate-half RoPE on n_heads consecutive heads of each row:
 * x[i*stride + h*D + j] pairs with x[i*stride + h*D + j + D/2] at angle pos[i]*inv_freq[j]
 * (product in fp32, then cosf/sinf, as Hugging Face). pos[i] is the token's absolute position.
 * With a fused qkv row, rotate q and k at once: n_heads = Hq + Hkv, stride = (Hq+2Hkv)*D. */
void lrsa_rope_forward_cpu(float *x, const int32_t *pos, const float *inv_freq, int64_t N,
                           int n_heads, int D, int64_t stride);
/* In-place backward: the rotation by -angle applied to dx. */
void lrsa_rope_backward_cpu(float *dx, const int32_t *pos, const float *inv_freq, int64_t N,
                            int n_heads, int D, int64_t stride);
#endif
