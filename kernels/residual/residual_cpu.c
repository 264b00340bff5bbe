/* Residual add. Its backward is a copy of the incoming gradient to both branches; the model
 * usually passes aliases so nothing moves at all. */
#include "kernels/residual/residual.h"

#include <string.h>

#include "kernels/cpu/cpu_threads.h"

void lrsa_residual_forward_cpu(float *out, const float *a, const float *b, int64_t n) {
#pragma omp parallel for simd schedule(static) num_threads(lrsa_cpu_threads_for(n, 1))
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void lrsa_residual_backward_cpu(float *da, float *db, const float *dout, int64_t n) {
    if (da && da != dout) memmove(da, dout, sizeof(float) * (size_t)n);
    if (db && db != dout) memmove(db, dout, sizeof(float) * (size_t)n);
}
