/* The model's LoRA linear op: the fused kernel (kernels/lora) with its backward recorded on the
 * tape, and the inference form for the block-level API. Internal to model/. */
#ifndef LRSA_MODEL_LORA_OPS_H
#define LRSA_MODEL_LORA_OPS_H
#include <stdint.h>

#include "autograd/tape.h"
#include "model/device_ops.h"
#include "model/lora.h"

/* Scratch the backward (and dropout) needs, shared by every call of one pass (act-typed, in
 * the memory of the op table's device). */
typedef struct lrsa_lora_scratch {
    void *t;  /* [N, LRSA_LORA_MAX_GROUPS * rank] */
    void *xd; /* [N, widest input] (dropout only) */
} lrsa_lora_scratch;

/* y = x W^T + b + adapters through the table's LoRA op; u [N, n_groups * rank] is saved for the
 * backward. Backward: dx (overwrite, may be NULL) through W and the adapters, dA += , dB +=
 * (NULL: not recorded). */
void lrsa_op_lora_linear(const lrsa_device_ops *ops, lrsa_tape *tp, void *y, void *u, const void *x,
                         const void *w, const void *b, const void *A, const void *B,
                         const lrsa_lora_spec *s, int64_t N, int in, int out, void *dy, void *dx,
                         float *dA, float *dB, const lrsa_lora_scratch *scratch);

/* Inference: y = x W^T + b through linear op `site` of `layer` on the device of ops, with the
 * attached adapter's groups when there are any (no dropout; scratch allocated per call). The
 * adapter's weights are host memory: with an adapter on this site ops must be a table with a
 * LoRA op reading host memory (the CPU's; docs/CUDA.md). */
void lrsa_model_site_linear(const lrsa_device_ops *ops, const lrsa_model *m, int layer,
                            lrsa_lora_site site, void *y, const void *x, const void *w,
                            const void *b, int64_t N, int in, int out);
#endif
