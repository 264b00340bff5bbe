/* SwiGLU on the fused gate|up row: out = silu(gate) * up, silu(g) = g * sigmoid(g). */
#include "kernels/swiglu/swiglu.h"

#include <math.h>

void lrsa_swiglu_forward_cpu(float *out, const float *gu, int64_t N, int I) {
    for (int64_t i = 0; i < N; i++) {
        const float *g = gu + i * 2 * I, *u = g + I;
        float *o = out + i * I;
        for (int j = 0; j < I; j++) o[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    }
}

/* d out/d gate = up * sig * (1 + g * (1 - sig)),  d out/d up = silu(g). */
void lrsa_swiglu_backward_cpu(float *dgu, const float *dout, const float *gu, int64_t N, int I) {
    for (int64_t i = 0; i < N; i++) {
        const float *g = gu + i * 2 * I, *u = g + I, *d = dout + i * I;
        float *dg = dgu + i * 2 * I, *du = dg + I;
        for (int j = 0; j < I; j++) {
            float sig = 1.0f / (1.0f + expf(-g[j]));
            float gj = g[j], uj = u[j], dj = d[j];
            dg[j] = dj * uj * sig * (1.0f + gj * (1.0f - sig));
            du[j] = dj * gj * sig;
        }
    }
}
