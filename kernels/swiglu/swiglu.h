#ifndef LRSA_KERNELS_SWIGLU_H
#define LRSA_KERNELS_SWIGLU_H
#include <stdint.h>
/* gu[N, 2I] holds gate (columns 0..I-1) then up (I..2I-1), the output of the fused gate/up
 * projection. out[N, I] = silu(gate) * up. */
void lrsa_swiglu_forward_cpu(float *out, const float *gu, int64_t N, int I);
/* dgu = d/dgu (overwrite). */
void lrsa_swiglu_backward_cpu(float *dgu, const float *dout, const float *gu, int64_t N, int I);
#endif
