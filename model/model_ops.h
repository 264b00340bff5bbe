/* Op wrappers used by the model: each runs an op's forward through the device's op table
 * (device_ops.h) and, when a tape is given, records the op's backward with the pointers it needs.
 * Internal to model/. Buffers are act-typed unless named fp32 (see device_ops.h). */
#ifndef LRSA_MODEL_OPS_H
#define LRSA_MODEL_OPS_H
#include <stdint.h>

#include "autograd/tape.h"
#include "kernels/attention/attention.h"
#include "kernels/lagkv/lagkv.h"
#include "model/device_ops.h"

/* y = x @ w^T + b. Backward: dx (may be NULL) = dy @ w; dw += ..; db += ... */
void lrsa_op_linear(const lrsa_device_ops *ops, lrsa_tape *tp, void *y, const void *x,
                    const void *w, const void *b, int64_t N, int in, int out, void *dy, void *dx,
                    float *dw, float *db);
/* out = rmsnorm(x) * w. Backward: dx = dresid + norm'(dout) (dx may alias dresid). */
void lrsa_op_rmsnorm(const lrsa_device_ops *ops, lrsa_tape *tp, void *out, float *rstd,
                     const void *x, const void *w, int64_t N, int C, float eps, void *dout,
                     void *dx, float *dw);
/* In-place RoPE on the q and k heads of a fused row; backward in place on dx. */
void lrsa_op_rope(const lrsa_device_ops *ops, lrsa_tape *tp, void *x, const int32_t *pos,
                  const float *inv_freq, int64_t N, int n_heads, int D, int64_t stride, void *dx);
/* Dense (sel == NULL) or LRSA attention; backward writes dq/dk/dv into the fused dqkv. */
void lrsa_op_attention(const lrsa_device_ops *ops, lrsa_tape *tp, void *out, float *lse,
                       const void *qkv, const lrsa_attn_dims *d, const int32_t *sel,
                       const lrsa_lagkv_params *p, void *dout, void *dqkv);
void lrsa_op_swiglu(const lrsa_device_ops *ops, lrsa_tape *tp, void *out, const void *gu, int64_t N,
                    int I, void *dout, void *dgu);
void lrsa_op_embedding(const lrsa_device_ops *ops, lrsa_tape *tp, void *out, const int32_t *ids,
                       const void *table, int64_t N, int C, int V, void *dout, float *dtable);
#endif
