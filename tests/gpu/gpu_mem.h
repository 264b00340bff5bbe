/* Device memory helpers for the GPU tests and benchmarks, on top of kernels/device/device_buffer.h
 * (whose failures abort with file:line: a failed test, never a skip); gm_check is for the other
 * runtime calls. Include only under LRSA_HAVE_CUDA. */
#ifndef LRSA_TESTS_GPU_MEM_H
#define LRSA_TESTS_GPU_MEM_H
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "autograd/tensor.h"
#include "kernels/device/device_buffer.h"

static inline void gm_check(cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        fprintf(stderr, "%s failed: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

/* Never NULL: a 0-byte request gets 1 byte, so kernels always see a valid pointer. */
static inline void *gm_alloc(size_t bytes) {
    return lrsa_dev_alloc(bytes ? bytes : 1);
}

static inline void gm_upload(void *dst, const void *src, size_t bytes) {
    lrsa_dev_upload(dst, src, bytes);
}

/* Synchronizes first, so asynchronous kernel errors surface here. */
static inline void gm_download(void *dst, const void *src, size_t bytes) {
    lrsa_dev_sync();
    lrsa_dev_download(dst, src, bytes);
}

/* 0xFF bytes: NaN in fp32 and bf16, -1 in int32; catches elements a kernel never writes. */
static inline void gm_poison(void *p, size_t bytes) {
    lrsa_dev_fill_bytes(p, 0xFF, bytes);
}

/* Rounds x to bf16 in place and writes the bits to bits[] (bits may be NULL). */
static inline void gm_round_bf16(float *x, uint16_t *bits, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = lrsa_f32_to_bf16(x[i]);
        x[i] = lrsa_bf16_to_f32(h);
        if (bits) bits[i] = h;
    }
}

static inline uint16_t *gm_upload_bf16(const float *x, int64_t n) {
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) h[i] = lrsa_f32_to_bf16(x[i]);
    uint16_t *d = gm_alloc(sizeof(uint16_t) * (size_t)n);
    gm_upload(d, h, sizeof(uint16_t) * (size_t)n);
    free(h);
    return d;
}

static inline void gm_download_bf16(float *dst, const uint16_t *src, int64_t n) {
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
    gm_download(h, src, sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) dst[i] = lrsa_bf16_to_f32(h[i]);
    free(h);
}
#endif
