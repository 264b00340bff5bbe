#ifndef LRSA_KERNELS_RMSNORM_H
#define LRSA_KERNELS_RMSNORM_H
#include <stdint.h>
/* Hugging Face Llama RMSNorm: out = x * rsqrt(mean(x^2) + eps) * w, statistics in fp32.
 * rstd[N] (may be NULL) receives rsqrt(mean(x^2) + eps) for the backward. */
void lrsa_rmsnorm_forward_cpu(float *out, float *rstd, const float *x, const float *w, int64_t N,
                              int C, float eps);
/* dx = dresidual + d(out)/d(x)^T dout   (overwrite; dresidual may be NULL, may alias dx).
 * dw += sum over rows of dout * x * rstd.
 * Fusing the residual gradient here lets one residual-stream gradient buffer flow through all
 * layers in place: a block's input gets the residual path's gradient plus the norm path's. */
void lrsa_rmsnorm_backward_cpu(float *dx, float *dw, const float *dout, const float *dresidual,
                               const float *x, const float *w, const float *rstd, int64_t N, int C);
#ifdef LRSA_HAVE_CUDA
/* CUDA twins (rmsnorm_cuda.cu); device pointers, bf16 as raw bits, statistics in fp32.
 * Forward fused with the residual add: h = a + b (bf16, stored to h_out, which may alias a;
 * b may be NULL for a plain norm, then h = a and h_out may be NULL), then
 * out = (h * rstd) * w with rstd = 1/sqrt(mean(h^2) + eps) over the stored bf16 h, saved in
 * rstd[N] (fp32, may be NULL). One block per row. */
#include <cuda_runtime_api.h>

#include "kernels/device/device_buffer.h"
void lrsa_rmsnorm_forward_cuda(lrsa_bf16 *out, float *rstd, lrsa_bf16 *h_out, const lrsa_bf16 *a,
                               const lrsa_bf16 *b, const lrsa_bf16 *w, int64_t N, int C, float eps,
                               cudaStream_t stream);
/* Device workspace bytes for the backward's dw partial sums (allocate once, reuse). */
size_t lrsa_rmsnorm_backward_workspace_cuda(int C);
/* As lrsa_rmsnorm_backward_cpu with x = the saved h: dx = dresidual + norm backward (overwrite,
 * bf16; dresidual may be NULL or alias dx; dx may be NULL), dw += sum over rows of
 * dout * h * rstd (fp32 gradient, accumulate; may be NULL). dw is reduced deterministically:
 * a fixed grid of row-striding blocks writes per-block partials, then one fixed-order pass adds
 * them up. */
void lrsa_rmsnorm_backward_cuda(lrsa_bf16 *dx, float *dw, const lrsa_bf16 *dout,
                                const lrsa_bf16 *dresidual, const lrsa_bf16 *x, const lrsa_bf16 *w,
                                const float *rstd, int64_t N, int C, void *workspace,
                                size_t workspace_bytes, cudaStream_t stream);
#endif
#endif
