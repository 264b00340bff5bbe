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
#endif
