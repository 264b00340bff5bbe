// Rotate-half RoPE on the GPU, in place on bf16 rows. One thread per (row, head, pair j): it
// reads x[j] and x[j + D/2], rotates in fp32 with the table's cos/sin for the row's position,
// and writes both back rounded to bf16. The backward is the rotation by -angle (sin negated).
// cuda_check.h first: it makes autograd/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/rope/rope.h"
}
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"

static __global__ void rope_kernel(__nv_bfloat16 *x, const int32_t *pos, const float *cos_sin,
                                   int64_t total, int n_heads, int D, int64_t stride, float sign) {
    int half = D / 2;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total;
         t += (int64_t)gridDim.x * blockDim.x) {
        int j = (int)(t % half);
        int64_t rest = t / half;
        int h = (int)(rest % n_heads);
        int64_t i = rest / n_heads;
        const float *cs = cos_sin + (int64_t)pos[i] * D;
        float c = cs[j], s = sign * cs[half + j];
        __nv_bfloat16 *a = x + i * stride + (int64_t)h * D;
        float x1 = __bfloat162float(a[j]), x2 = __bfloat162float(a[j + half]);
        a[j] = __float2bfloat16_rn(x1 * c - x2 * s);
        a[j + half] = __float2bfloat16_rn(x2 * c + x1 * s);
    }
}

static void rope_launch(lrsa_bf16 *x, const int32_t *pos, const float *cos_sin, int64_t N,
                        int n_heads, int D, int64_t stride, float sign, cudaStream_t stream) {
    int64_t total = N * n_heads * (int64_t)(D / 2);
    if (total <= 0) return;
    rope_kernel<<<lrsa_grid_stride_blocks(total, 256), 256, 0, stream>>>(
        (__nv_bfloat16 *)x, pos, cos_sin, total, n_heads, D, stride, sign);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void lrsa_rope_forward_cuda(lrsa_bf16 *x, const int32_t *pos, const float *cos_sin,
                                       int64_t N, int n_heads, int D, int64_t stride,
                                       cudaStream_t stream) {
    rope_launch(x, pos, cos_sin, N, n_heads, D, stride, 1.0f, stream);
}

extern "C" void lrsa_rope_backward_cuda(lrsa_bf16 *dx, const int32_t *pos, const float *cos_sin,
                                        int64_t N, int n_heads, int D, int64_t stride,
                                        cudaStream_t stream) {
    rope_launch(dx, pos, cos_sin, N, n_heads, D, stride, -1.0f, stream);
}
