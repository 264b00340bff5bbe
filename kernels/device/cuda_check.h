/* Return-code checks for CUDA runtime and cuBLAS calls: every failure aborts with file:line and
 * the library's own error string. Only for .cu files and host code built with LRSA_HAVE_CUDA. */
#ifndef LRSA_KERNELS_CUDA_CHECK_H
#define LRSA_KERNELS_CUDA_CHECK_H
#include <cublas_v2.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
/* error.h is C11 (_Noreturn, C linkage); .cu files are C++. */
#define _Noreturn [[noreturn]]
extern "C" {
#include "base/error.h"
}
#undef _Noreturn
#else
#include "base/error.h"
#endif

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t err_ = (call);                                                                 \
        if (err_ != cudaSuccess)                                                                   \
            lrsa_fatal(__FILE__, __LINE__, "%s failed: %s", #call, cudaGetErrorString(err_));      \
    } while (0)

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t st_ = (call);                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                          \
            lrsa_fatal(__FILE__, __LINE__, "%s failed: %s", #call, cublasGetStatusString(st_));    \
    } while (0)
#endif
