/* Token embedding lookup. The backward scatters rows into the table in row order, one thread,
 * so repeated ids accumulate in the same order on every run (bitwise reproducible). */
#include "kernels/embedding/embedding.h"

#include <string.h>

void lrsa_embedding_forward_cpu(float *out, const int32_t *ids, const float *table, int64_t N,
                                int C) {
    for (int64_t i = 0; i < N; i++)
        memcpy(out + i * C, table + (int64_t)ids[i] * C, sizeof(float) * (size_t)C);
}

void lrsa_embedding_backward_cpu(float *dtable, const float *dout, const int32_t *ids, int64_t N,
                                 int C) {
    for (int64_t i = 0; i < N; i++) {
        float *t = dtable + (int64_t)ids[i] * C;
        const float *d = dout + i * C;
        for (int j = 0; j < C; j++) t[j] += d[j];
    }
}
