#ifndef LRSA_KERNELS_RESIDUAL_H
#define LRSA_KERNELS_RESIDUAL_H
#include <stdint.h>
/* out = a + b (out may alias a or b). */
void lrsa_residual_forward_cpu(float *out, const float *a, const float *b, int64_t n);
/* da = dout, db = dout (overwrite; either may be NULL or alias dout, in which case nothing is
 * copied). In the model the residual gradient stays in place, so this is usually free. */
void lrsa_residual_backward_cpu(float *da, float *db, const float *dout, int64_t n);

#ifdef LRSA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "kernels/device/device_buffer.h"
/* out = bf16(a + b), fp32 sum, bf16 storage (out may alias a or b); device pointers. The
 * backward is the identity (the model keeps the residual gradient in place). */
void lrsa_residual_forward_cuda(lrsa_bf16 *out, const lrsa_bf16 *a, const lrsa_bf16 *b, int64_t n,
                                cudaStream_t stream);
#endif
#endif
