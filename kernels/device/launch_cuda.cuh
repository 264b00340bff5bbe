// Launch-shape helpers shared by the .cu kernels (device-side code only; not a C header).
#ifndef LRSA_KERNELS_LAUNCH_CUDA_CUH
#define LRSA_KERNELS_LAUNCH_CUDA_CUH
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/device/cuda_check.h"

// SM count of the current device, read from the device (cached per process by the runtime's
// cheap attribute query).
static inline int lrsa_cuda_sm_count(void) {
    int dev = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return sms;
}

// Blocks for a grid-stride loop over n items: enough to fill every SM several times, never more
// than the work needs.
static inline unsigned lrsa_grid_stride_blocks(int64_t n, int threads) {
    int64_t need = (n + threads - 1) / threads;
    int64_t cap = (int64_t)lrsa_cuda_sm_count() * 8;
    int64_t b = need < cap ? need : cap;
    return (unsigned)(b > 0 ? b : 1);
}

// Sum over the block, result valid in every thread. Fixed shuffle tree then fixed warp order:
// the same inputs give the same bits on every run. Requires blockDim.x a multiple of 32 (<= 1024)
// and `scratch` of 32 floats in shared memory; every thread of the block must call it.
static __device__ inline float lrsa_block_sum(float v, float *scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __syncthreads(); // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float s = 0.0f;
    for (int w = 0; w < nwarps; w++) s += scratch[w];
    return s;
}

static __device__ inline double lrsa_block_sum_f64(double v, double *scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    double s = 0.0;
    for (int w = 0; w < nwarps; w++) s += scratch[w];
    return s;
}
#endif
