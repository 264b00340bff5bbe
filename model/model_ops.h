/* Op wrappers used by the model: each runs an op's forward and, when a tape is given, records
 * the op's backward with the pointers it needs. Internal to model/. */
#ifndef LRSA_MODEL_OPS_H
#define LRSA_MODEL_OPS_H
#include <stdint.h>

#include "autograd/tape.h"
#include "kernels/attention/attention.h"
#include "kernels/lagkv/lagkv.h"

/* y = x @ w^T + b. Backward: dx (may be NULL) = dy @ w; dw += ..; db += ... */
void lrsa_op_linear(lrsa_tape *tp, float *y, const float *x, const float *w, const float *b,
                    int64_t N, int in, int out, float *dy, float *dx, float *dw, float *db);
/* out = rmsnorm(x) * w. Backward: dx = dresid + norm'(dout) (dx may alias dresid). */
void lrsa_op_rmsnorm(lrsa_tape *tp, float *out, float *rstd, const float *x, const float *w,
                     int64_t N, int C, float eps, float *dout, float *dx, float *dw);
/* In-place RoPE on the q and k heads of a fused row; backward in place on dx. */
void lrsa_op_rope(lrsa_tape *tp, float *x, const int32_t *pos, const float *inv_freq, int64_t N,
                  int n_heads, int D, int64_t stride, float *dx);
/* Dense (sel == NULL) or LRSA attention; backward writes dq/dk/dv into the fused dqkv. */
void lrsa_op_attention(lrsa_tape *tp, float *out, float *lse, const float *qkv,
                       const lrsa_attn_dims *d, const int32_t *sel, const lrsa_lagkv_params *p,
                       float *dout, float *dqkv);
void lrsa_op_swiglu(lrsa_tape *tp, float *out, const float *gu, int64_t N, int I, float *dout,
                    float *dgu);
void lrsa_op_embedding(lrsa_tape *tp, float *out, const int32_t *ids, const float *table, int64_t N,
                       int C, float *dout, float *dtable);
#endif
