/* Token embedding lookup. The backward scatters rows into the table in row order; it is
 * threaded over column ranges, each thread walking every row in order over its own columns, so
 * repeated ids accumulate in the same order on every run and for any thread count (bitwise
 * reproducible). */
#include "kernels/embedding/embedding.h"

#include <string.h>

#include "kernels/cpu/cpu_threads.h"

void lrsa_embedding_forward_cpu(float *out, const int32_t *ids, const float *table, int64_t N,
                                int C) {
#pragma omp parallel for schedule(static) num_threads(lrsa_cpu_threads_for(N, C))
    for (int64_t i = 0; i < N; i++)
        memcpy(out + i * C, table + (int64_t)ids[i] * C, sizeof(float) * (size_t)C);
}

void lrsa_embedding_backward_cpu(float *dtable, const float *dout, const int32_t *ids, int64_t N,
                                 int C) {
    enum { COLS = 64 }; /* columns per piece */
    const int pieces = (C + COLS - 1) / COLS;
    int threads = lrsa_cpu_threads_for(N, C);
    if (threads > pieces) threads = pieces;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int pc = 0; pc < pieces; pc++) {
        const int j0 = pc * COLS, j1 = j0 + COLS < C ? j0 + COLS : C;
        for (int64_t i = 0; i < N; i++) {
            float *t = dtable + (int64_t)ids[i] * C;
            const float *d = dout + i * C;
#pragma omp simd
            for (int j = j0; j < j1; j++) t[j] += d[j];
        }
    }
}
