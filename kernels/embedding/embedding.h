#ifndef LRSA_KERNELS_EMBEDDING_H
#define LRSA_KERNELS_EMBEDDING_H
#include <stdint.h>
/* out[i, :] = table[ids[i], :] for i < N. Ids must be in [0, vocab) (checked by the caller). */
void lrsa_embedding_forward_cpu(float *out, const int32_t *ids, const float *table, int64_t N,
                                int C);
/* dtable[ids[i], :] += dout[i, :]. Deterministic: rows are added in order of i. */
void lrsa_embedding_backward_cpu(float *dtable, const float *dout, const int32_t *ids, int64_t N,
                                 int C);
#ifdef LRSA_HAVE_CUDA
/* CUDA twins (embedding_cuda.cu); pointers are device memory, bf16 as raw bits. */
#include <cuda_runtime_api.h>

#include "kernels/device/device_buffer.h"
/* out[i, :] = table[ids[i], :] (bf16 rows of the bf16 weight copy). */
void lrsa_embedding_forward_cuda(lrsa_bf16 *out, const int32_t *ids, const lrsa_bf16 *table,
                                 int64_t N, int C, cudaStream_t stream);
/* Bytes of device workspace the backward needs for N tokens (allocate once, reuse). */
size_t lrsa_embedding_backward_workspace_cuda(int64_t N);
/* dtable[ids[i], :] += dout[i, :] into the fp32 gradient, deterministic and bitwise equal to
 * the CPU order: ids are stably sorted (keeping token order among repeats), then one block per
 * distinct id adds its tokens' rows in increasing i. ids must be in [0, vocab). */
void lrsa_embedding_backward_cuda(float *dtable, const lrsa_bf16 *dout, const int32_t *ids,
                                  int64_t N, int C, int vocab, void *workspace,
                                  size_t workspace_bytes, cudaStream_t stream);
#endif
#endif
