/* The timing harness shared by the GPU benchmarks (bench/gpu_*.c): CUDA-event medians and
 * random bf16 device buffers. Header-only because every bench .c file is its own program. Include
 * only under LRSA_HAVE_CUDA. */
#ifndef LRSA_BENCH_GPU_BENCH_H
#define LRSA_BENCH_GPU_BENCH_H
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/error.h"
#include "autograd/tensor.h"
#include "kernels/device/device_buffer.h"

enum { WARMUP = 3, REPS = 20 };

static inline void check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) lrsa_fatal(__FILE__, __LINE__, "%s: %s", what, cudaGetErrorString(e));
}

static inline int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* One event pair per timed repetition, so the repetitions queue without a sync in between. */
typedef struct timer {
    cudaEvent_t start[REPS], stop[REPS];
} timer;

static inline void timer_init(timer *tm) {
    for (int r = 0; r < REPS; r++) {
        check(cudaEventCreate(&tm->start[r]), "cudaEventCreate");
        check(cudaEventCreate(&tm->stop[r]), "cudaEventCreate");
    }
}

static inline void timer_free(timer *tm) {
    for (int r = 0; r < REPS; r++) {
        check(cudaEventDestroy(tm->start[r]), "cudaEventDestroy");
        check(cudaEventDestroy(tm->stop[r]), "cudaEventDestroy");
    }
}

/* Median milliseconds of REPS runs of `stmt` after WARMUP untimed ones (legacy stream). */
#define TIME_MEDIAN(out_ms, tm, stmt)                                                              \
    do {                                                                                           \
        for (int w_ = 0; w_ < WARMUP; w_++) stmt;                                                  \
        for (int r_ = 0; r_ < REPS; r_++) {                                                        \
            check(cudaEventRecord((tm)->start[r_], 0), "cudaEventRecord");                         \
            stmt;                                                                                  \
            check(cudaEventRecord((tm)->stop[r_], 0), "cudaEventRecord");                          \
        }                                                                                          \
        lrsa_dev_sync();                                                                           \
        float ms_[REPS];                                                                           \
        for (int r_ = 0; r_ < REPS; r_++)                                                          \
            check(cudaEventElapsedTime(&ms_[r_], (tm)->start[r_], (tm)->stop[r_]),                 \
                  "cudaEventElapsedTime");                                                         \
        qsort(ms_, REPS, sizeof(float), cmp_float);                                                \
        (out_ms) = 0.5 * (ms_[REPS / 2 - 1] + ms_[REPS / 2]);                                      \
    } while (0)

/* Device buffer of n bf16 values, uniform in [-scale, scale) from a fixed xorshift stream. */
static inline lrsa_bf16 *random_bf16(int64_t n, float scale, uint64_t seed) {
    lrsa_bf16 *h = lrsa_malloc(sizeof(lrsa_bf16) * (size_t)n);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        h[i] = lrsa_f32_to_bf16(scale * ((float)(s >> 40) / (float)(1 << 23) - 1.0f));
    }
    lrsa_bf16 *d = lrsa_dev_alloc(sizeof(lrsa_bf16) * (size_t)n);
    lrsa_dev_upload(d, h, sizeof(lrsa_bf16) * (size_t)n);
    free(h);
    return d;
}
#endif
