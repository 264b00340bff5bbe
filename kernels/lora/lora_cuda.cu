// LoRA linear on the GPU (lora.h): the frozen product is the cuBLASLt linear op, the adapters are
// thin cuBLASLt products on the same handle (bf16 operands, fp32 accumulation; adapter gradients
// accumulate in fp32 with beta = 1), and dropout is a grid-stride map with the CPU op's mask.
// Compiled, never run on a GPU yet: tests/gpu/test_gpu_lora.c compares it with the CPU op.
extern "C" {
#include "kernels/lora/lora.h"
}
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/device/cuda_check.h"
#include "kernels/device/launch_cuda.cuh"
#include "kernels/lora/lora_mask.h"

namespace {

constexpr int kThreads = 256;

__device__ inline float bf16_to_f32(uint16_t v) {
    return __bfloat162float(__ushort_as_bfloat16(v));
}
__device__ inline uint16_t f32_to_bf16(float v) {
    return __bfloat16_as_ushort(__float2bfloat16(v)); // round to nearest even, as the host
}

// out = x * keep / (1 - p), or with `add`: out += x * keep / (1 - p).
__global__ void dropout_kernel(uint16_t *out, const uint16_t *x, int64_t n, uint32_t threshold,
                               float keep_scale, uint64_t seed, int add) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = lrsa_lora_keep(seed, i, threshold) ? bf16_to_f32(x[i]) * keep_scale : 0.0f;
        out[i] = f32_to_bf16(add ? bf16_to_f32(out[i]) + v : v);
    }
}

void dropout(uint16_t *out, const uint16_t *x, int64_t n, float p, uint64_t seed, int add,
             cudaStream_t stream) {
    if (n <= 0) return;
    dropout_kernel<<<lrsa_grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(
        out, x, n, lrsa_lora_threshold(p), 1.0f / (1.0f - p), seed, add);
    CUDA_CHECK(cudaGetLastError());
}

int64_t b_offset(const lrsa_lora_spec *s, int g) {
    int64_t rows = 0;
    for (int h = 0; h < g; h++) rows += s->width[h];
    return rows * s->rank;
}

} // namespace

extern "C" void lrsa_lora_dropout_cuda(uint16_t *out, const uint16_t *x, int64_t n, float p,
                                       uint64_t seed, void *stream) {
    dropout(out, x, n, p, seed, 0, (cudaStream_t)stream);
}

extern "C" void lrsa_lora_linear_forward_cuda(lrsa_linear_cuda *h, uint16_t *y, uint16_t *u,
                                              const uint16_t *x, const uint16_t *w,
                                              const uint16_t *b, const uint16_t *A,
                                              const uint16_t *B, const lrsa_lora_spec *s, int64_t N,
                                              int in, int out, uint16_t *xd) {
    lrsa_linear_forward_cuda(h, y, x, w, b, N, in, out);
    if (N <= 0) return;
    cudaStream_t stream = (cudaStream_t)lrsa_linear_cuda_stream(h);
    const int r = s->rank, G = s->n_groups, ur = G * r;
    if (s->dropout > 0) {
        for (int g = 0; g < G; g++) { // u_g = drop_g(x) A_g^T
            dropout(xd, x, N * in, s->dropout, s->seed[g], 0, stream);
            lrsa_gemm_bf16_cuda(h, 0, 1, N, r, in, 1.0f, xd, in, A + (int64_t)g * r * in, in, 0.0f,
                                u + g * r, ur, 0, NULL);
        }
    } else { // u = x A^T, every group at once
        lrsa_gemm_bf16_cuda(h, 0, 1, N, ur, in, 1.0f, x, in, A, in, 0.0f, u, ur, 0, NULL);
    }
    for (int g = 0; g < G; g++) // y[:, cols_g] += scale * u_g B_g^T
        lrsa_gemm_bf16_cuda(h, 0, 1, N, s->width[g], r, s->scale, u + g * r, ur, B + b_offset(s, g),
                            r, 1.0f, y + s->col[g], out, 0, NULL);
}

extern "C" void lrsa_lora_linear_backward_cuda(lrsa_linear_cuda *h, uint16_t *dx, float *dA,
                                               float *dB, const uint16_t *dy, const uint16_t *x,
                                               const uint16_t *w, const uint16_t *A,
                                               const uint16_t *B, const uint16_t *u,
                                               const lrsa_lora_spec *s, int64_t N, int in, int out,
                                               uint16_t *t, uint16_t *xd) {
    if (N <= 0) return;
    cudaStream_t stream = (cudaStream_t)lrsa_linear_cuda_stream(h);
    const int r = s->rank, G = s->n_groups, ur = G * r;
    const float sc = s->scale;
    if (dx) lrsa_linear_backward_cuda(h, dx, NULL, NULL, dy, x, w, N, in, out); // dx = dy W
    for (int g = 0; g < G; g++) {
        const uint16_t *dyg = dy + s->col[g];
        // t_g = dy_g B_g;  dB_g += scale * dy_g^T u_g
        lrsa_gemm_bf16_cuda(h, 0, 0, N, r, s->width[g], 1.0f, dyg, out, B + b_offset(s, g), r, 0.0f,
                            t + g * r, ur, 0, NULL);
        if (dB)
            lrsa_gemm_bf16_cuda(h, 1, 0, s->width[g], r, N, sc, dyg, out, u + g * r, ur, 1.0f,
                                dB + b_offset(s, g), r, 1, NULL);
    }
    if (!(s->dropout > 0)) {
        if (dA) // dA += scale * t^T x
            lrsa_gemm_bf16_cuda(h, 1, 0, ur, in, N, sc, t, ur, x, in, 1.0f, dA, in, 1, NULL);
        if (dx) // dx += scale * t A
            lrsa_gemm_bf16_cuda(h, 0, 0, N, in, ur, sc, t, ur, A, in, 1.0f, dx, in, 0, NULL);
        return;
    }
    for (int g = 0; g < G; g++) {
        const int64_t a_off = (int64_t)g * r * in;
        if (dA) { // dA_g += scale * t_g^T drop_g(x)
            dropout(xd, x, N * in, s->dropout, s->seed[g], 0, stream);
            lrsa_gemm_bf16_cuda(h, 1, 0, r, in, N, sc, t + g * r, ur, xd, in, 1.0f, dA + a_off, in,
                                1, NULL);
        }
        if (dx) { // dx += drop_g'(scale * t_g A_g)
            lrsa_gemm_bf16_cuda(h, 0, 0, N, in, r, sc, t + g * r, ur, A + a_off, in, 0.0f, xd, in,
                                0, NULL);
            dropout(dx, xd, N * in, s->dropout, s->seed[g], 1, stream);
        }
    }
}
