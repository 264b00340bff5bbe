// The ZeRO-1 shard kernels (zero_gpu.h): sum of squares and AdamW over a rank's pieces of the
// gradient arena. A shard slot j belongs to the span whose `local` start is the last one <= j
// (found by binary search; a rank has one span per bucket, a few dozen at most).
// Compiled, NEVER RUN ON A GPU.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "train/zero_gpu.h"
}
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"
#include "train/adamw_cuda.cuh"

enum { ZERO_THREADS = 256 };

// The arena element of shard slot j, or -1 for padding.
static __device__ inline int64_t arena_index(const lrsa_zero_span *s, int n, int64_t j) {
    int lo = 0, hi = n - 1; // last span with local <= j
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s[mid].local <= j)
            lo = mid;
        else
            hi = mid - 1;
    }
    int64_t off = j - s[lo].local;
    return off < s[lo].real ? s[lo].abs + off : -1;
}

static __global__ void sumsq_spans_kernel(double *partials, const float *g,
                                          const lrsa_zero_span *spans, int n_spans, int64_t shard) {
    __shared__ double scratch[32];
    double s = 0.0;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < shard;
         j += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = arena_index(spans, n_spans, j);
        if (i >= 0) {
            double x = (double)g[i];
            s += x * x;
        }
    }
    s = lrsa_block_sum_f64(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

extern "C" void lrsa_zero_sumsq_cuda(double *partials, const float *grad,
                                     const lrsa_zero_span *spans, int n_spans, int64_t shard,
                                     cudaStream_t stream) {
    // A fixed grid (not the SM count), so the partials' bits do not depend on the device.
    sumsq_spans_kernel<<<LRSA_ZERO_NORM_PARTS, ZERO_THREADS, 0, stream>>>(partials, grad, spans,
                                                                          n_spans, shard);
    CUDA_CHECK(cudaGetLastError());
}

static __global__ void adamw_spans_kernel(float *master, const float *grad, float *m, float *v,
                                          __nv_bfloat16 *param_bf16, const lrsa_decay_range *decay,
                                          int n_decay, const lrsa_zero_span *spans, int n_spans,
                                          int64_t shard, lrsa_adamw_consts k,
                                          const float *grad_scale) {
    float gs = grad_scale ? *grad_scale : 1.0f;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < shard;
         j += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = arena_index(spans, n_spans, j);
        if (i < 0) continue;
        bool decays = k.apply_decay && lrsa_in_decay(decay, n_decay, i);
        float p = lrsa_adamw_elem(master[j], grad[i] * gs, &m[j], &v[j], decays, k);
        master[j] = p;
        param_bf16[i] = __float2bfloat16_rn(p);
    }
}

extern "C" void lrsa_zero_adamw_cuda(lrsa_adamw_cuda *o, float *master, const float *grad,
                                     lrsa_bf16 *param_bf16, const lrsa_zero_span *spans,
                                     int n_spans, int64_t shard, double lr, const float *grad_scale,
                                     cudaStream_t stream) {
    o->t++;
    const lrsa_adamw_consts k = lrsa_adamw_consts_for(o, lr);
    if (shard <= 0) return;
    adamw_spans_kernel<<<lrsa_grid_stride_blocks(shard, ZERO_THREADS), ZERO_THREADS, 0, stream>>>(
        master, grad, o->m, o->v, (__nv_bfloat16 *)param_bf16, o->decay, o->n_decay, spans, n_spans,
        shard, k, grad_scale);
    CUDA_CHECK(cudaGetLastError());
}
