// SwiGLU on the GPU: one thread per output column of the fused gate|up row, bf16 storage,
// fp32 arithmetic with the CPU op's formulas (expf, not the fast approximation).
// cuda_check.h first: it makes base/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/swiglu/swiglu.h"
}
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"

// Rows on grid.y (striding when N exceeds it), columns on grid.x times the block: no 64-bit
// division per element, which would otherwise cost more than the memory traffic.
static __global__ void swiglu_forward_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *gu, int64_t N,
                                             int I) {
    for (int64_t i = blockIdx.y; i < N; i += gridDim.y) {
        const __nv_bfloat16 *g = gu + i * 2 * I;
        __nv_bfloat16 *o = out + i * I;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < I; j += gridDim.x * blockDim.x) {
            float gj = __bfloat162float(g[j]), uj = __bfloat162float(g[I + j]);
            o[j] = __float2bfloat16_rn(gj / (1.0f + expf(-gj)) * uj);
        }
    }
}

static __global__ void swiglu_backward_kernel(__nv_bfloat16 *dgu, const __nv_bfloat16 *dout,
                                              const __nv_bfloat16 *gu, int64_t N, int I) {
    for (int64_t i = blockIdx.y; i < N; i += gridDim.y) {
        const __nv_bfloat16 *g = gu + i * 2 * I, *d = dout + i * I;
        __nv_bfloat16 *dg = dgu + i * 2 * I;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < I; j += gridDim.x * blockDim.x) {
            float gj = __bfloat162float(g[j]), uj = __bfloat162float(g[I + j]);
            float dj = __bfloat162float(d[j]);
            float sig = 1.0f / (1.0f + expf(-gj));
            dg[j] = __float2bfloat16_rn(dj * uj * sig * (1.0f + gj * (1.0f - sig)));
            dg[I + j] = __float2bfloat16_rn(dj * gj * sig);
        }
    }
}

enum { SWIGLU_THREADS = 256 };
static const int64_t SWIGLU_MAX_ROW_BLOCKS = 65535; // grid.y limit

static dim3 swiglu_grid(int64_t N, int I) {
    unsigned cols = (unsigned)((I + SWIGLU_THREADS - 1) / SWIGLU_THREADS);
    unsigned rows = (unsigned)(N < SWIGLU_MAX_ROW_BLOCKS ? N : SWIGLU_MAX_ROW_BLOCKS);
    return dim3(cols, rows);
}

extern "C" void lrsa_swiglu_forward_cuda(lrsa_bf16 *out, const lrsa_bf16 *gu, int64_t N, int I,
                                         cudaStream_t stream) {
    if (N <= 0 || I <= 0) return;
    swiglu_forward_kernel<<<swiglu_grid(N, I), SWIGLU_THREADS, 0, stream>>>(
        (__nv_bfloat16 *)out, (const __nv_bfloat16 *)gu, N, I);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void lrsa_swiglu_backward_cuda(lrsa_bf16 *dgu, const lrsa_bf16 *dout,
                                          const lrsa_bf16 *gu, int64_t N, int I,
                                          cudaStream_t stream) {
    if (N <= 0 || I <= 0) return;
    swiglu_backward_kernel<<<swiglu_grid(N, I), SWIGLU_THREADS, 0, stream>>>(
        (__nv_bfloat16 *)dgu, (const __nv_bfloat16 *)dout, (const __nv_bfloat16 *)gu, N, I);
    CUDA_CHECK(cudaGetLastError());
}
