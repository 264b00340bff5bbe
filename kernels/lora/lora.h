/* LoRA fused into the linear op: a frozen base product plus low-rank adapters on groups of output
 * columns,
 *
 *   y[:, cols_g] = (x W^T + b)[:, cols_g] + scale * (drop_g(x) A_g^T) B_g^T     for each group g,
 *
 * with W [out, in] frozen (no gradient), A_g [rank, in], B_g [width_g, rank]. A group is one
 * adapted projection inside a fused matrix: q, k and v share one base GEMM (docs/DESIGN.md), so
 * their three adapters are three groups of one call; columns without a group get no adapter.
 *
 * Layout of the adapter arrays (the adapter's tensor table places them back to back):
 *   A  [n * rank, in]        group g's A at rows g*rank .. (g+1)*rank
 *   B  [sum_g width_g, rank] group g's B after the B's of the groups before it
 * dA, dB have the same layouts.
 *
 * Dropout (PEFT's lora_dropout) is applied to the adapter input only, independently per group
 * (PEFT gives every adapted projection its own dropout module): drop_g(x) = x * keep / (1 - p)
 * with keep drawn from a counter-based hash of (seed_g, row * in + column), so the backward and
 * a recomputed forward regenerate the same mask without storing it, on any rank and after a
 * resume. p = 0 (or NULL-free inference) uses x itself.
 *
 * Cost: on top of the base product the adapters add about 2 * N * n * rank * (in + width)
 * FLOPs forward and twice that backward, a few percent for rank << in; the backward never forms
 * a [out, in] weight gradient. */
#ifndef LRSA_KERNELS_LORA_H
#define LRSA_KERNELS_LORA_H
#include <stdint.h>

#define LRSA_LORA_MAX_GROUPS 3

typedef struct lrsa_lora_spec {
    int n_groups;                        /* 1 .. LRSA_LORA_MAX_GROUPS */
    int rank;                            /* r >= 1 */
    int col[LRSA_LORA_MAX_GROUPS];       /* first output column of each group */
    int width[LRSA_LORA_MAX_GROUPS];     /* output columns of each group */
    float scale;                         /* alpha / r (PEFT), or alpha / sqrt(r) (rsLoRA) */
    float dropout;                       /* p in [0, 1); 0 = none */
    uint64_t seed[LRSA_LORA_MAX_GROUPS]; /* dropout key of each group (used when dropout > 0) */
} lrsa_lora_spec;

/* Forward: y [N, out] (overwrite) as above. u [N, n * rank] (overwrite) gets drop_g(x) A_g^T per
 * group (the backward reads it). xd [N, in] is scratch for the dropped-out input, needed only
 * when dropout > 0 (may be NULL otherwise). b may be NULL. */
void lrsa_lora_linear_forward_cpu(float *y, float *u, const float *x, const float *w,
                                  const float *b, const float *A, const float *B,
                                  const lrsa_lora_spec *s, int64_t N, int in, int out, float *xd);

/* Backward from dy [N, out]:
 *   dx (overwrite; may be NULL) = dy W + scale * sum_g drop_g'(dy_g B_g A_g)
 *   dA_g += scale * (dy_g B_g)^T drop_g(x)        dB_g += scale * dy_g^T u_g
 * where dy_g = dy[:, cols_g]. No gradient for W or b (frozen). dA, dB may be NULL (then only dx).
 * t [N, n * rank] is scratch; xd [N, in] is scratch needed when dropout > 0. */
void lrsa_lora_linear_backward_cpu(float *dx, float *dA, float *dB, const float *dy, const float *x,
                                   const float *w, const float *A, const float *B, const float *u,
                                   const lrsa_lora_spec *s, int64_t N, int in, int out, float *t,
                                   float *xd);

/* out[N, in] = x * keep / (1 - p) with the mask of `seed` (out may alias x). Exposed for tests
 * and for the backward. */
void lrsa_lora_dropout_cpu(float *out, const float *x, int64_t N, int in, float p, uint64_t seed);
/* The dropout key of one group: a mix of a per-pass key and a site number, so every adapted
 * projection of every layer draws its own mask. */
uint64_t lrsa_lora_dropout_seed(uint64_t pass_key, uint64_t site);

#ifdef LRSA_HAVE_CUDA
#include "kernels/linear/linear.h"
/* The same op on the GPU (compiled, never run on a GPU yet): bf16 (uint16_t) activations,
 * weights and adapter copies, fp32 accumulation in the cuBLASLt products of the linear handle h
 * (on its stream), fp32 adapter gradients. All pointers are device pointers; the arguments mean
 * what they mean in the CPU op, with u, t, xd bf16 scratch. The dropout masks are the CPU op's,
 * element for element (kernels/lora/lora_mask.h). */
void lrsa_lora_linear_forward_cuda(lrsa_linear_cuda *h, uint16_t *y, uint16_t *u, const uint16_t *x,
                                   const uint16_t *w, const uint16_t *b, const uint16_t *A,
                                   const uint16_t *B, const lrsa_lora_spec *s, int64_t N, int in,
                                   int out, uint16_t *xd);
void lrsa_lora_linear_backward_cuda(lrsa_linear_cuda *h, uint16_t *dx, float *dA, float *dB,
                                    const uint16_t *dy, const uint16_t *x, const uint16_t *w,
                                    const uint16_t *A, const uint16_t *B, const uint16_t *u,
                                    const lrsa_lora_spec *s, int64_t N, int in, int out,
                                    uint16_t *t, uint16_t *xd);
/* out[n] = x * keep / (1 - p) (out may alias x), on `stream` (a cudaStream_t). */
void lrsa_lora_dropout_cuda(uint16_t *out, const uint16_t *x, int64_t n, float p, uint64_t seed,
                            void *stream);
#endif
#endif
