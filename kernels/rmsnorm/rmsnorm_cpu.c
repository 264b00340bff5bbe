/* RMSNorm as Hugging Face Llama computes it in fp32: out = (x * rstd) * w with
 * rstd = 1/sqrt(mean(x^2) + eps). The mean is accumulated in double so the statistic does not
 * depend on C's size or the summation order. */
#include "kernels/rmsnorm/rmsnorm.h"

#include <math.h>

void lrsa_rmsnorm_forward_cpu(float *out, float *rstd, const float *x, const float *w, int64_t N,
                              int C, float eps) {
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C;
        float *yr = out + i * C;
        double ss = 0.0;
        for (int j = 0; j < C; j++) ss += (double)xr[j] * xr[j];
        float r = 1.0f / sqrtf((float)(ss / C) + eps);
        for (int j = 0; j < C; j++) yr[j] = (xr[j] * r) * w[j];
        if (rstd) rstd[i] = r;
    }
}

/* With n = x*r and y = n*w:  dx_j = r*(w_j g_j) - r^3/C * x_j * sum_k w_k g_k x_k.
 * Every element is read before it is written at the same index, so dresidual (and even dout)
 * may alias dx. */
void lrsa_rmsnorm_backward_cpu(float *dx, float *dw, const float *dout, const float *dresidual,
                               const float *x, const float *w, const float *rstd, int64_t N,
                               int C) {
    for (int64_t i = 0; i < N; i++) {
        const float *xr = x + i * C, *gr = dout + i * C;
        float r = rstd[i];
        if (dw)
            for (int j = 0; j < C; j++) dw[j] += gr[j] * (xr[j] * r);
        if (!dx) continue;
        double dot = 0.0;
        for (int j = 0; j < C; j++) dot += (double)(w[j] * gr[j]) * xr[j];
        float coef = (float)(dot * r * r * r / C);
        float *dxr = dx + i * C;
        if (dresidual) {
            const float *dr = dresidual + i * C;
            for (int j = 0; j < C; j++) dxr[j] = dr[j] + (r * (w[j] * gr[j]) - coef * xr[j]);
        } else {
            for (int j = 0; j < C; j++) dxr[j] = r * (w[j] * gr[j]) - coef * xr[j];
        }
    }
}
