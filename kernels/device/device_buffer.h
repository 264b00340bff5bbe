/* Device memory and dtype conversion for the CUDA kernels: allocation, host<->device copies and
 * bf16<->fp32 conversion on the device. bf16 is carried as its raw 16 bits (uint16_t) in C code,
 * the same bits autograd/tensor.h's lrsa_f32_to_bf16 produces (round to nearest even). Every
 * failing CUDA call aborts with file:line and the runtime's message (cuda_check.h). */
#ifndef LRSA_KERNELS_DEVICE_BUFFER_H
#define LRSA_KERNELS_DEVICE_BUFFER_H

#include <stddef.h>
#include <stdint.h>

typedef uint16_t lrsa_bf16;

#ifdef LRSA_HAVE_CUDA
#include <cuda_runtime_api.h>

/* cudaMalloc that aborts on failure (naming the size); 0 bytes gives NULL. */
void *lrsa_dev_alloc(size_t bytes);
void lrsa_dev_free(void *p);
/* Synchronous copies (on the legacy default stream). */
void lrsa_dev_upload(void *dst_dev, const void *src_host, size_t bytes);
void lrsa_dev_download(void *dst_host, const void *src_dev, size_t bytes);
/* Fills bytes with `byte` (0xFF poisons bf16 and fp32 buffers with NaN). */
void lrsa_dev_fill_bytes(void *p, int byte, size_t bytes);
/* Waits for the device and aborts on any pending asynchronous error. */
void lrsa_dev_sync(void);
/* Streaming multiprocessors of the current device (sizes persistent grids). */
int lrsa_dev_sm_count(void);

/* dst[i] = bf16(src[i]) (round to nearest even, NaN kept) / dst[i] = float(src[i]). */
void lrsa_bf16_from_f32_cuda(lrsa_bf16 *dst, const float *src, int64_t n, cudaStream_t stream);
void lrsa_f32_from_bf16_cuda(float *dst, const lrsa_bf16 *src, int64_t n, cudaStream_t stream);
#endif
#endif
