#ifndef LRSA_KERNELS_ROPE_H
#define LRSA_KERNELS_ROPE_H
#include <stdint.h>

#include "base/error.h"

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

/* The cos/sin table the GPU RoPE reads (rope_table.c): for p < max_pos, j < D/2,
 * table[p*D + j] = cosf(p * inv_freq[j]) and table[p*D + D/2 + j] = sinf(p * inv_freq[j]), the
 * same fp32 arithmetic lrsa_rope_forward_cpu performs per row. Built once on the host. */
void lrsa_rope_cos_sin_table(float *table, const float *inv_freq, int max_pos, int D);

#ifdef LRSA_HAVE_CUDA
/* CUDA twins (rope_cuda.cu): in-place rotate-half on bf16 x (device), same layout and
 * arguments as the CPU ops; rotation in fp32 from the device copy of the cos/sin table
 * ([max_pos, D] fp32, lrsa_rope_cos_sin_table). pos[i] must be in [0, max_pos). */
#include <cuda_runtime_api.h>

#include "kernels/device/device_buffer.h"
void lrsa_rope_forward_cuda(lrsa_bf16 *x, const int32_t *pos, const float *cos_sin, int64_t N,
                            int n_heads, int D, int64_t stride, cudaStream_t stream);
void lrsa_rope_backward_cuda(lrsa_bf16 *dx, const int32_t *pos, const float *cos_sin, int64_t N,
                             int n_heads, int D, int64_t stride, cudaStream_t stream);
#endif
#endif
