/* The model's LoRA linear op: the fused kernel (kernels/lora) with its backward recorded on the
 * tape, and the inference form for the block-level API. Internal to model/. */
#ifndef LRSA_MODEL_LORA_OPS_H
#define LRSA_MODEL_LORA_OPS_H
#include <stdint.h>

#include "autograd/tape.h"
#include "model/lora.h"

/* Scratch the backward (and dropout) needs, shared by every call of one pass. */
typedef struct lrsa_lora_scratch {
    float *t;  /* [N, LRSA_LORA_MAX_GROUPS * rank] */
    float *xd; /* [N, widest input] (dropout only) */
} lrsa_lora_scratch;

/* y = x W^T + b + adapters; u [N, n_groups * rank] is saved for the backward. Backward:
 * dx (overwrite, may be NULL) through W and the adapters, dA += , dB += (NULL: not recorded). */
void lrsa_op_lora_linear(lrsa_tape *tp, float *y, float *u, const float *x, const float *w,
                         const float *b, const float *A, const float *B, const lrsa_lora_spec *s,
                         int64_t N, int in, int out, float *dy, float *dx, float *dA, float *dB,
                         const lrsa_lora_scratch *scratch);

/* Inference: y = x W^T + b through linear op `site` of `layer`, with the attached adapter's
 * groups when there are any (no dropout; scratch allocated per call). */
void lrsa_model_site_linear(const lrsa_model *m, int layer, lrsa_lora_site site, float *y,
                            const float *x, const float *w, const float *b, int64_t N, int in,
                            int out);
#endif
