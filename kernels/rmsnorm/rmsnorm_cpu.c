/* RMSNorm as Hugging Face Llama computes it in fp32: out = (x * rstd) * w with
 * rstd = 1/sqrt(mean(x^2) + eps). The mean is accumulated in double so the statistic does not
 * depend on C's size or the summation order. Rows are threaded (kernels/cpu/cpu_threads.h);
 * the weight gradient is threaded over columns, each column summed over the rows in row order,
 * so every result is the same bits for any thread count. */
#include "kernels/rmsnorm/rmsnorm.h"

#include <math.h>

#include "kernels/cpu/cpu_threads.h"

void lrsa_rmsnorm_forward_cpu(float *out, float *rstd, const float *x, const float *w, int64_t N,
                              int C, float eps) {
#pragma omp parallel for schedule(static) num_threads(lrsa_cpu_threads_for(N, 4 * (int64_t)C))
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C;
        float *yr = out + i * C;
        double ss = 0.0;
        for (int j = 0; j < C; j++) ss += (double)xr[j] * xr[j];
        float r = 1.0f / sqrtf((float)(ss / C) + eps);
#pragma omp simd
        for (int j = 0; j < C; j++) yr[j] = (xr[j] * r) * w[j];
        if (rstd) rstd[i] = r;
    }
}

/* dw[j] += sum over rows i (in order) of g[i][j] * (x[i][j] * r[i]), threaded over columns. */
static void weight_grad(float *dw, const float *dout, const float *x, const float *rstd, int64_t N,
                        int C) {
    enum { COLS = 64 }; /* columns per piece: a cache line of each row per step */
    const int pieces = (C + COLS - 1) / COLS;
    int threads = lrsa_cpu_threads_for(N * C, 2);
    if (threads > pieces) threads = pieces;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int pc = 0; pc < pieces; pc++) {
        const int j0 = pc * COLS, j1 = j0 + COLS < C ? j0 + COLS : C;
        for (int64_t i = 0; i < N; i++) {
            const float *xr = x + i * C, *gr = dout + i * C;
            const float r = rstd[i];
#pragma omp simd
            for (int j = j0; j < j1; j++) dw[j] += gr[j] * (xr[j] * r);
        }
    }
}

/* With n = x*r and y = n*w:  dx_j = r*(w_j g_j) - r^3/C * x_j * sum_k w_k g_k x_k.
 * Every element is read before it is written at the same index, so dresidual (and even dout)
 * may alias dx (the weight gradient is taken first, while dout is intact). */
void lrsa_rmsnorm_backward_cpu(float *dx, float *dw, const float *dout, const float *dresidual,
                               const float *x, const float *w, const float *rstd, int64_t N,
                               int C) {
    if (dw) weight_grad(dw, dout, x, rstd, N, C);
    if (!dx) return;
#pragma omp parallel for schedule(static) num_threads(lrsa_cpu_threads_for(N, 6 * (int64_t)C))
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C, *gr = dout + i * C;
        float r = rstd[i];
        double dot = 0.0;
        for (int j = 0; j < C; j++) dot += (double)(w[j] * gr[j]) * xr[j];
        float coef = (float)(dot * r * r * r / C);
        float *dxr = dx + i * C;
        if (dresidual) {
            const float *dr = dresidual + i * C;
#pragma omp simd
            for (int j = 0; j < C; j++) dxr[j] = dr[j] + (r * (w[j] * gr[j]) - coef * xr[j]);
        } else {
#pragma omp simd
            for (int j = 0; j < C; j++) dxr[j] = r * (w[j] * gr[j]) - coef * xr[j];
        }
    }
}
