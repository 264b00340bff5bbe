/* Which accelerator, if any, this process can use. Built without CUDA, or run on a machine
 * without a driver or GPU, lrsa reports 0 devices and everything runs on the CPU path. */
#ifndef LRSA_KERNELS_DEVICE_H
#define LRSA_KERNELS_DEVICE_H

#include <stddef.h>

/* Whether this binary was built with CUDA (nvcc found at configure time). */
int lrsa_cuda_built(void);
/* Number of usable CUDA devices: 0 without CUDA support, without a driver, or without a GPU. */
int lrsa_cuda_device_count(void);
/* One line describing device 0 (name, SMs, memory) or why there is none. */
void lrsa_cuda_describe(char *out, size_t cap);
/* Versions of the CUDA libraries this binary was built with (works without a driver). */
void lrsa_cuda_library_versions(char *out, size_t cap);
#endif
