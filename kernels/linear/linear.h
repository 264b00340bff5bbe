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

#ifdef LRSA_HAVE_CUDA
#include <stddef.h>
/* The linear op on the GPU through cuBLASLt: bf16 (uint16_t) activations and weights, fp32
 * accumulation, fp32 weight gradients. All pointers are device pointers; every call is
 * asynchronous on the handle's stream. The handle owns the cuBLASLt handle, one workspace
 * (allocated at creation) and a cache of matmul descriptors, layouts and the heuristic's algorithm
 * per shape, so a shape costs a heuristic query only the first time it is seen. One handle per
 * stream; a handle is not thread-safe. */
typedef struct lrsa_linear_cuda lrsa_linear_cuda;
/* stream: a cudaStream_t (NULL = the legacy default stream). workspace_bytes 0 = 32 MiB. */
lrsa_linear_cuda *lrsa_linear_cuda_create(void *stream, size_t workspace_bytes);
void lrsa_linear_cuda_destroy(lrsa_linear_cuda *h);
/* Number of cached shapes (plans) so far: tests check that a repeated shape adds none. */
int lrsa_linear_cuda_cached_plans(const lrsa_linear_cuda *h);
/* The cudaStream_t every call of this handle is issued on (ops built on it use the same one). */
void *lrsa_linear_cuda_stream(const lrsa_linear_cuda *h);

/* Row-major general product on bf16 inputs, as cblas_sgemm with CblasRowMajor:
 *   C[M, N] = alpha * op(A) @ op(B) + beta * C,  op(A) is [M, K], op(B) is [K, N].
 * C is fp32 when c_fp32 != 0, else bf16. bias (bf16 [N], may be NULL) is added to every row by the
 * matmul epilogue (only with beta == 0). */
void lrsa_gemm_bf16_cuda(lrsa_linear_cuda *h, int trans_a, int trans_b, int64_t M, int64_t N,
                         int64_t K, float alpha, const uint16_t *A, int64_t lda, const uint16_t *B,
                         int64_t ldb, float beta, void *C, int64_t ldc, int c_fp32,
                         const uint16_t *bias);

/* y[N, out] (bf16, overwrite) = x[N, in] @ w[out, in]^T + b[out]  (b bf16, may be NULL). */
void lrsa_linear_forward_cuda(lrsa_linear_cuda *h, uint16_t *y, const uint16_t *x,
                              const uint16_t *w, const uint16_t *b, int64_t N, int in, int out);
/* dx (bf16, overwrite; may be NULL) = dy @ w;  dw (fp32, may be NULL) += dy^T @ x;
 * db (fp32, may be NULL) += sum over rows of dy (fixed order: the same bits on every run). */
void lrsa_linear_backward_cuda(lrsa_linear_cuda *h, uint16_t *dx, float *dw, float *db,
                               const uint16_t *dy, const uint16_t *x, const uint16_t *w, int64_t N,
                               int in, int out);
#endif
#endif
