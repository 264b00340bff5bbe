/* Linear layer on the CPU: every product is one OpenBLAS SGEMM, so this op runs at the BLAS rate,
 * except a forward of at most 3 rows (decoding), which streams the weights directly.
 * Weights use PyTorch's [out, in] layout, which is why the forward multiplies by w^T. */
#include "kernels/linear/linear.h"

#include <cblas.h>

#include "kernels/cpu/sgemm_rows.h"

void lrsa_linear_forward_cpu(float *y, const float *x, const float *w, const float *b, int64_t N,
                             int in, int out) {
    if (N <= 0 || out <= 0) return;
    float beta = 0.0f;
    if (b) { /* seed every row with the bias, then let SGEMM accumulate onto it */
        for (int64_t i = 0; i < N; i++) {
            float *yr = y + i * out;
            for (int o = 0; o < out; o++) yr[o] = b[o];
        }
        beta = 1.0f;
    }
    /* y[N, out] = x[N, in] @ w[out, in]^T; a decode step's few rows: the direct product, same
     * bits (kernels/cpu/sgemm_rows.h) */
    if (N <= LRSA_SGEMM_ROWS_MAX) {
        lrsa_sgemm_rows_nt_threaded(y, out, x, in, (int)N, w, in, out, in, 1.0f, b != NULL);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, out, in, 1.0f, x, in, w, in, beta,
                y, out);
}

void lrsa_linear_backward_cpu(float *dx, float *dw, float *db, const float *dy, const float *x,
                              const float *w, int64_t N, int in, int out) {
    if (N <= 0) return;
    if (dx) /* dx[N, in] = dy[N, out] @ w[out, in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, in, out, 1.0f, dy, out, w,
                    in, 0.0f, dx, in);
    if (dw) /* dw[out, in] += dy^T @ x */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, (int)N, 1.0f, dy, out, x, in,
                    1.0f, dw, in);
    if (db) /* row order: same sum on every run */
        for (int64_t i = 0; i < N; i++) {
            const float *r = dy + i * out;
            for (int o = 0; o < out; o++) db[o] += r[o];
        }
}
