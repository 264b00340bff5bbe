// The residual add on the GPU: out = bf16(a + b) with the sum in fp32 (the rounding of the stored
// bf16 residual stream). A grid-stride loop; out may alias a or b (each element is read before it
// is written by the same thread).
// cuda_check.h first: it makes autograd/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/residual/residual.h"
}
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"

static __global__ void residual_add_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *a,
                                           const __nv_bfloat16 *b, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

extern "C" void lrsa_residual_forward_cuda(lrsa_bf16 *out, const lrsa_bf16 *a, const lrsa_bf16 *b,
                                           int64_t n, cudaStream_t stream) {
    if (n <= 0) return;
    residual_add_kernel<<<lrsa_grid_stride_blocks(n, 256), 256, 0, stream>>>(
        (__nv_bfloat16 *)out, (const __nv_bfloat16 *)a, (const __nv_bfloat16 *)b, n);
    CUDA_CHECK(cudaGetLastError());
}
