#ifndef LRSA_KERNELS_SWIGLU_H
#define LRSA_KERNELS_SWIGLU_H
#include <stdint.h>
/* gu[N, 2I] holds gate (columns 0..I-1) then up (I..2I-1), the output of the fused gate/up
 * projection. out[N, I] = silu(gate) * up. */
void lrsa_swiglu_forward_cpu(float *out, const float *gu, int64_t N, int I);
/* dgu = d/dgu (overwrite). */
void lrsa_swiglu_backward_cpu(float *dgu, const float *dout, const float *gu, int64_t N, int I);
#ifdef LRSA_HAVE_CUDA
/* CUDA twins (swiglu_cuda.cu): same layout, bf16 (device) in and out, fp32 arithmetic with the
 * CPU op's formulas; dgu is overwritten. */
#include <cuda_runtime_api.h>

#include "kernels/device/device_buffer.h"
void lrsa_swiglu_forward_cuda(lrsa_bf16 *out, const lrsa_bf16 *gu, int64_t N, int I,
                              cudaStream_t stream);
void lrsa_swiglu_backward_cuda(lrsa_bf16 *dgu, const lrsa_bf16 *dout, const lrsa_bf16 *gu,
                               int64_t N, int I, cudaStream_t stream);
#endif
#endif
