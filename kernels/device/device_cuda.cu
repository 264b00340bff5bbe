// CUDA device discovery. cudaGetDeviceCount fails cleanly ("driver version is insufficient")
// when no driver is installed, which is how CI machines look: that is 0 devices, not an error.
extern "C" {
#include "kernels/device/device.h"
}
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int lrsa_cuda_built(void) {
    return 1;
}

extern "C" int lrsa_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky error so later probes start clean
        return 0;
    }
    return n;
}

extern "C" void lrsa_cuda_describe(char *out, size_t cap) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        snprintf(out, cap, "no CUDA device (%s)",
                 err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        cudaGetLastError();
        return;
    }
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        snprintf(out, cap, "CUDA device 0: properties unavailable");
        return;
    }
    snprintf(out, cap, "%s, sm_%d%d, %d SMs, %.1f GiB, %zu KiB shared/block opt-in", p.name,
             p.major, p.minor, p.multiProcessorCount, (double)p.totalGlobalMem / (1 << 30),
             p.sharedMemPerBlockOptin / 1024);
}

extern "C" void lrsa_cuda_library_versions(char *out, size_t cap) {
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    snprintf(out, cap, "CUDA runtime %d, cuBLASLt %zu", rt, cublasLtGetVersion());
}
