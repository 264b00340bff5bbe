/* The device probe of a build without CUDA: no devices. The definitions are weak so that the
 * emulated-CUDA tests (tests/emulate), which link this library with the emulated device's
 * kernels/device/device_cuda.cu, get the emulated probe instead. */
#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
#include <stdio.h>

__attribute__((weak)) int lrsa_cuda_built(void) {
    return 0;
}

__attribute__((weak)) int lrsa_cuda_device_count(void) {
    return 0;
}

__attribute__((weak)) void lrsa_cuda_describe(char *out, size_t cap) {
    snprintf(out, cap, "no CUDA device (built without CUDA)");
}

__attribute__((weak)) void lrsa_cuda_library_versions(char *out, size_t cap) {
    snprintf(out, cap, "built without CUDA");
}
#else
typedef int lrsa_device_none_unused; /* ISO C forbids an empty translation unit */
#endif
