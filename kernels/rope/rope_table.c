/* The RoPE cos/sin table for the GPU path, computed with exactly the CPU op's fp32 angle
 * (p * inv_freq[j]) and cosf/sinf, so the GPU rotation uses the CPU's coefficients bit for bit. */
#include "kernels/rope/rope.h"

#include <math.h>

void lrsa_rope_cos_sin_table(float *table, const float *inv_freq, int max_pos, int D) {
    int half = D / 2;
    for (int p = 0; p < max_pos; p++) {
        float *row = table + (int64_t)p * D;
        for (int j = 0; j < half; j++) {
            float angle = (float)p * inv_freq[j];
            row[j] = cosf(angle);
            row[half + j] = sinf(angle);
        }
    }
}
