// Device buffers and bf16<->fp32 conversion. Conversions are grid-stride loops over a grid sized
// from the SM count, so one launch covers any n without a grid-size overflow.
// cuda_check.h first: it makes base/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/device/device_buffer.h"
}
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"

extern "C" void *lrsa_dev_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess)
        lrsa_fatal(__FILE__, __LINE__, "cudaMalloc of %zu bytes failed: %s", bytes,
                   cudaGetErrorString(err));
    return p;
}

extern "C" void lrsa_dev_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}

extern "C" void lrsa_dev_upload(void *dst_dev, const void *src_host, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice));
}

extern "C" void lrsa_dev_download(void *dst_host, const void *src_dev, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost));
}

extern "C" void lrsa_dev_fill_bytes(void *p, int byte, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemset(p, byte, bytes));
}

extern "C" void lrsa_dev_sync(void) {
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
}

extern "C" int lrsa_dev_sm_count(void) {
    return lrsa_cuda_sm_count();
}

static __global__ void bf16_from_f32_kernel(__nv_bfloat16 *dst, const float *src, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

static __global__ void f32_from_bf16_kernel(float *dst, const __nv_bfloat16 *src, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

extern "C" void lrsa_bf16_from_f32_cuda(lrsa_bf16 *dst, const float *src, int64_t n,
                                        cudaStream_t stream) {
    if (n <= 0) return;
    bf16_from_f32_kernel<<<lrsa_grid_stride_blocks(n, 256), 256, 0, stream>>>((__nv_bfloat16 *)dst,
                                                                              src, n);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void lrsa_f32_from_bf16_cuda(float *dst, const lrsa_bf16 *src, int64_t n,
                                        cudaStream_t stream) {
    if (n <= 0) return;
    f32_from_bf16_kernel<<<lrsa_grid_stride_blocks(n, 256), 256, 0, stream>>>(
        dst, (const __nv_bfloat16 *)src, n);
    CUDA_CHECK(cudaGetLastError());
}
