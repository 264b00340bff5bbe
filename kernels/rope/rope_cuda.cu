// Rotate-half RoPE on the GPU, in place on bf16 rows. One thread per (row, head, pair j): it
// reads x[j] and x[j + D/2], rotates in fp32 with the table's cos/sin for the row's position,
// and writes both back rounded to bf16. The backward is the rotation by -angle (sin negated).
// cuda_check.h first: it makes base/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/rope/rope.h"
}
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"

// Rows on grid.y (striding past 65535), the row's (head, j) pairs on grid.x times the block:
// only 32-bit index arithmetic per element.
static __global__ void rope_kernel(__nv_bfloat16 *x, const int32_t *pos, const float *cos_sin,
                                   int64_t N, int n_heads, int D, int64_t stride, float sign) {
    int half = D / 2, pairs = n_heads * half;
    for (int64_t i = blockIdx.y; i < N; i += gridDim.y) {
        const float *cs = cos_sin + (int64_t)pos[i] * D;
        __nv_bfloat16 *row = x + i * stride;
        for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < pairs;
             t += gridDim.x * blockDim.x) {
            int h = t / half, j = t - h * half;
            float c = cs[j], s = sign * cs[half + j];
            __nv_bfloat16 *a = row + h * D;
            float x1 = __bfloat162float(a[j]), x2 = __bfloat162float(a[j + half]);
            a[j] = __float2bfloat16_rn(x1 * c - x2 * s);
            a[j + half] = __float2bfloat16_rn(x2 * c + x1 * s);
        }
    }
}

enum { ROPE_THREADS = 256 };
static const int64_t ROPE_MAX_ROW_BLOCKS = 65535; // grid.y limit

static void rope_launch(lrsa_bf16 *x, const int32_t *pos, const float *cos_sin, int64_t N,
                        int n_heads, int D, int64_t stride, float sign, cudaStream_t stream) {
    int pairs = n_heads * (D / 2);
    if (N <= 0 || pairs <= 0) return;
    dim3 grid((unsigned)((pairs + ROPE_THREADS - 1) / ROPE_THREADS),
              (unsigned)(N < ROPE_MAX_ROW_BLOCKS ? N : ROPE_MAX_ROW_BLOCKS));
    rope_kernel<<<grid, ROPE_THREADS, 0, stream>>>((__nv_bfloat16 *)x, pos, cos_sin, N, n_heads, D,
                                                   stride, sign);
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
