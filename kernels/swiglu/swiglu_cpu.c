/* SwiGLU on the fused gate|up row: out = silu(gate) * up, silu(g) = g * sigmoid(g). The
 * exponential is lrsa_vexpf (kernels/cpu/vexp.h, within 1 ulp of expf); rows are threaded and
 * each element is computed alone, so results are the same bits for any thread count. */
#include "kernels/swiglu/swiglu.h"

#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/vexp.h"

void lrsa_swiglu_forward_cpu(float *out, const float *gu, int64_t N, int I) {
#pragma omp parallel for schedule(static) num_threads(lrsa_cpu_threads_for(N, 30 * (int64_t)I))
    for (int64_t i = 0; i < N; i++) {
        const float *g = gu + i * 2 * I, *u = g + I;
        float *o = out + i * I;
#pragma omp simd
        for (int j = 0; j < I; j++) o[j] = g[j] / (1.0f + lrsa_vexpf(-g[j])) * u[j];
    }
}

/* d out/d gate = up * sig * (1 + g * (1 - sig)),  d out/d up = silu(g). */
void lrsa_swiglu_backward_cpu(float *dgu, const float *dout, const float *gu, int64_t N, int I) {
#pragma omp parallel for schedule(static) num_threads(lrsa_cpu_threads_for(N, 40 * (int64_t)I))
    for (int64_t i = 0; i < N; i++) {
        const float *g = gu + i * 2 * I, *u = g + I, *d = dout + i * I;
        float *dg = dgu + i * 2 * I, *du = dg + I;
#pragma omp simd
        for (int j = 0; j < I; j++) {
            float sig = 1.0f / (1.0f + lrsa_vexpf(-g[j]));
            float gj = g[j], uj = u[j], dj = d[j];
            dg[j] = dj * uj * sig * (1.0f + gj * (1.0f - sig));
            du[j] = dj * gj * sig;
        }
    }
}
