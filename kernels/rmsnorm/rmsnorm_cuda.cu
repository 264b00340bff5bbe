// RMSNorm (fused with the residual add) forward and backward on the GPU, bf16 in and out,
// fp32 statistics. One block per row for the forward; the backward uses a fixed grid of blocks
// that stride over rows so the weight gradient needs only [grid, C] partials, reduced in a
// fixed order afterwards (no float atomics: the same inputs give the same bits every run).
// cuda_check.h first: it makes base/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/rmsnorm/rmsnorm.h"
}
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"

// The backward grid is a constant (not derived from the SM count) so dw's summation order, hence
// its bits, is the same on every device; 1024 blocks of 256 threads fill an H100/H200 (132 SMs).
enum { RMS_THREADS = 256, RMS_BWD_BLOCKS = 1024 };

static __global__ void rmsnorm_forward_kernel(__nv_bfloat16 *out, float *rstd, __nv_bfloat16 *h_out,
                                              const __nv_bfloat16 *a, const __nv_bfloat16 *b,
                                              const __nv_bfloat16 *w, int C, float eps) {
    __shared__ float scratch[32];
    int64_t base = (int64_t)blockIdx.x * C;
    float ss = 0.0f;
    // Pass 1: h = a + b, rounded to bf16 as stored; the statistic is taken over the stored h so
    // the backward (which only sees the stored h) is consistent with it. Each thread keeps to its
    // own columns in both passes, so h_out aliasing a is safe.
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        float h = __bfloat162float(a[base + j]);
        if (b) {
            h = __bfloat162float(__float2bfloat16_rn(h + __bfloat162float(b[base + j])));
            h_out[base + j] = __float2bfloat16_rn(h);
        }
        ss += h * h;
    }
    float r = 1.0f / sqrtf(lrsa_block_sum(ss, scratch) / (float)C + eps);
    const __nv_bfloat16 *h_src = b ? h_out : a;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        float h = __bfloat162float(h_src[base + j]);
        out[base + j] = __float2bfloat16_rn((h * r) * __bfloat162float(w[j]));
    }
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
}

extern "C" void lrsa_rmsnorm_forward_cuda(lrsa_bf16 *out, float *rstd, lrsa_bf16 *h_out,
                                          const lrsa_bf16 *a, const lrsa_bf16 *b,
                                          const lrsa_bf16 *w, int64_t N, int C, float eps,
                                          cudaStream_t stream) {
    if (N <= 0) return;
    LRSA_CHECK(N <= INT32_MAX, "(one block per row)");
    LRSA_CHECK(!b || h_out, "(the fused residual add needs h_out)");
    rmsnorm_forward_kernel<<<(unsigned)N, RMS_THREADS, 0, stream>>>(
        (__nv_bfloat16 *)out, rstd, (__nv_bfloat16 *)h_out, (const __nv_bfloat16 *)a,
        (const __nv_bfloat16 *)b, (const __nv_bfloat16 *)w, C, eps);
    CUDA_CHECK(cudaGetLastError());
}

// dw partials live in dynamic shared memory (C floats) while a block walks its rows, then go to
// partials[blockIdx.x, :].
static __global__ void rmsnorm_backward_kernel(__nv_bfloat16 *dx, float *partials,
                                               const __nv_bfloat16 *dout, const __nv_bfloat16 *dres,
                                               const __nv_bfloat16 *x, const __nv_bfloat16 *w,
                                               const float *rstd, int64_t N, int C) {
    extern __shared__ float dw_acc[];
    __shared__ float scratch[32];
    for (int j = threadIdx.x; j < C; j += blockDim.x) dw_acc[j] = 0.0f;
    for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
        int64_t base = i * C;
        float r = rstd[i];
        float dot = 0.0f;
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            float g = __bfloat162float(dout[base + j]), xv = __bfloat162float(x[base + j]);
            dw_acc[j] += g * (xv * r);
            dot += (__bfloat162float(w[j]) * g) * xv;
        }
        if (!dx) continue; // uniform across the block: dx is a kernel argument
        float coef = lrsa_block_sum(dot, scratch) * r * r * r / (float)C;
        for (int j = threadIdx.x; j < C; j += blockDim.x) {
            float g = __bfloat162float(dout[base + j]), xv = __bfloat162float(x[base + j]);
            float v = r * (__bfloat162float(w[j]) * g) - coef * xv;
            if (dres) v += __bfloat162float(dres[base + j]);
            dx[base + j] = __float2bfloat16_rn(v);
        }
    }
    if (partials)
        for (int j = threadIdx.x; j < C; j += blockDim.x)
            partials[(int64_t)blockIdx.x * C + j] = dw_acc[j];
}

static __global__ void sum_partials_kernel(float *dw, const float *partials, int nblocks, int C) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= C) return;
    float s = 0.0f;
    for (int b = 0; b < nblocks; b++) s += partials[(int64_t)b * C + j];
    dw[j] += s;
}

extern "C" size_t lrsa_rmsnorm_backward_workspace_cuda(int C) {
    return sizeof(float) * (size_t)RMS_BWD_BLOCKS * (size_t)C;
}

extern "C" void lrsa_rmsnorm_backward_cuda(lrsa_bf16 *dx, float *dw, const lrsa_bf16 *dout,
                                           const lrsa_bf16 *dresidual, const lrsa_bf16 *x,
                                           const lrsa_bf16 *w, const float *rstd, int64_t N, int C,
                                           void *workspace, size_t workspace_bytes,
                                           cudaStream_t stream) {
    if (N <= 0 || (!dx && !dw)) return;
    float *partials = NULL;
    if (dw) {
        LRSA_CHECK(workspace_bytes >= lrsa_rmsnorm_backward_workspace_cuda(C),
                   "(rmsnorm backward workspace too small)");
        partials = (float *)workspace;
    }
    int64_t blocks = N < (int64_t)RMS_BWD_BLOCKS ? N : (int64_t)RMS_BWD_BLOCKS;
    size_t smem = sizeof(float) * (size_t)C;
    int dev = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    LRSA_CHECK(smem + 32 * sizeof(float) <= (size_t)optin,
               "(C = %d needs %zu bytes of shared memory; the device allows %d)", C, smem, optin);
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(rmsnorm_backward_kernel,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    rmsnorm_backward_kernel<<<(unsigned)blocks, RMS_THREADS, smem, stream>>>(
        (__nv_bfloat16 *)dx, partials, (const __nv_bfloat16 *)dout,
        (const __nv_bfloat16 *)dresidual, (const __nv_bfloat16 *)x, (const __nv_bfloat16 *)w, rstd,
        N, C);
    CUDA_CHECK(cudaGetLastError());
    if (dw) {
        sum_partials_kernel<<<(unsigned)((C + 255) / 256), 256, 0, stream>>>(dw, partials,
                                                                             (int)blocks, C);
        CUDA_CHECK(cudaGetLastError());
    }
}
