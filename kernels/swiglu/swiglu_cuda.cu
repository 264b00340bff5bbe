// SwiGLU on the GPU: one thread per output element of the fused gate|up row, bf16 storage,
// fp32 arithmetic with the CPU op's formulas (expf, not the fast approximation).
// cuda_check.h first: it makes autograd/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/swiglu/swiglu.h"
}
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"

static __global__ void swiglu_forward_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *gu,
                                             int64_t total, int I) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = t / I;
        int j = (int)(t - i * I);
        const __nv_bfloat16 *g = gu + i * 2 * I;
        float gj = __bfloat162float(g[j]), uj = __bfloat162float(g[I + j]);
        out[t] = __float2bfloat16_rn(gj / (1.0f + expf(-gj)) * uj);
    }
}

static __global__ void swiglu_backward_kernel(__nv_bfloat16 *dgu, const __nv_bfloat16 *dout,
                                              const __nv_bfloat16 *gu, int64_t total, int I) {
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = t / I;
        int j = (int)(t - i * I);
        int64_t gi = i * 2 * I + j;
        float gj = __bfloat162float(gu[gi]), uj = __bfloat162float(gu[gi + I]);
        float dj = __bfloat162float(dout[t]);
        float sig = 1.0f / (1.0f + expf(-gj));
        dgu[gi] = __float2bfloat16_rn(dj * uj * sig * (1.0f + gj * (1.0f - sig)));
        dgu[gi + I] = __float2bfloat16_rn(dj * gj * sig);
    }
}

extern "C" void lrsa_swiglu_forward_cuda(lrsa_bf16 *out, const lrsa_bf16 *gu, int64_t N, int I,
                                         cudaStream_t stream) {
    int64_t total = N * (int64_t)I;
    if (total <= 0) return;
    swiglu_forward_kernel<<<lrsa_grid_stride_blocks(total, 256), 256, 0, stream>>>(
        (__nv_bfloat16 *)out, (const __nv_bfloat16 *)gu, total, I);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void lrsa_swiglu_backward_cuda(lrsa_bf16 *dgu, const lrsa_bf16 *dout,
                                          const lrsa_bf16 *gu, int64_t N, int I,
                                          cudaStream_t stream) {
    int64_t total = N * (int64_t)I;
    if (total <= 0) return;
    swiglu_backward_kernel<<<lrsa_grid_stride_blocks(total, 256), 256, 0, stream>>>(
        (__nv_bfloat16 *)dgu, (const __nv_bfloat16 *)dout, (const __nv_bfloat16 *)gu, total, I);
    CUDA_CHECK(cudaGetLastError());
}
