#ifndef LRSA_KERNELS_LINEAR_H
#define LRSA_KERNELS_LINEAR_H
#include <stdint.h>
/* y[N, out] = x[N, in] @ w[out, in]^T + b[out]   (b may be NULL). OpenBLAS SGEMM.
 * w is PyTorch's Linear layout [out, in]. */
void lrsa_linear_forward_cpu(float *y, const float *x, const float *w, const float *b, int64_t N,
                             int in, int out);
/* dx = dy @ w (overwrite; dx may be NULL), dw += dy^T @ x, db += sum_rows dy (db may be NULL). */
void lrsa_linear_backward_cpu(float *dx, float *dw, float *db, const float *dy, const float *x,
                              const float *w, int64_t N, int in, int out);
#endif
