/* The device probe of a build without CUDA: no devices. */
#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
#include <stdio.h>

int lrsa_cuda_device_count(void) {
    return 0;
}

void lrsa_cuda_describe(char *out, size_t cap) {
    snprintf(out, cap, "no CUDA device (built without CUDA)");
}

void lrsa_cuda_library_versions(char *out, size_t cap) {
    snprintf(out, cap, "built without CUDA");
}
#else
typedef int lrsa_device_none_unused; /* ISO C forbids an empty translation unit */
#endif
