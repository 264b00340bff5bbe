/* The frozen base of a LoRA run stored in bf16 (lora.base_dtype: bf16, docs/LORA.md).
 *
 * The linear layers' matrices (q/k/v/o/gate/up/down: LRSA_KIND_MATRIX, 79% of SmolLM2-135M's
 * parameters) are rounded to bf16 (round to nearest even) into one uint16 arena, half their fp32
 * size. Every other tensor (the embedding, an untied LM head, the norms, the biases) stays fp32 in
 * a compact arena, and the table's fp32 PARAM arena is freed. The model still computes in fp32:
 * right before a linear op's GEMMs (its forward, and the dx GEMM of its backward) the one fused
 * matrix it needs is widened into a scratch buffer sized for the largest fused matrix, so the
 * extra memory is one matrix, not the model. Widening bf16 -> fp32 is exact: a run on the stored
 * base equals an fp32 run on the rounded weights bit for bit. The scratch is the model's: one
 * training forward/backward at a time per model (the block-level API widens into its own).
 *
 * Why not OpenBLAS's cblas_sbgemm: Debian 12's libopenblas (0.3.21) declares it in cblas.h but
 * does not export it (built without BUILD_BFLOAT16), and it would round the activations to bf16
 * too, which is not an fp32 computation. */
#ifndef LRSA_MODEL_BASE_BF16_H
#define LRSA_MODEL_BASE_BF16_H
#include <stdint.h>

#include "model/lora.h"
#include "model/model.h"

typedef struct lrsa_base_bf16 {
    uint16_t *mat; /* the matrices in bf16, in table order (q, k, v adjacent; gate, up too) */
    float *rest;   /* every other tensor in fp32, in table order */
    int64_t *off;  /* per table index: its element offset in mat (matrices) or in rest */
    int64_t mat_numel, rest_numel;
    float *scratch; /* one fused matrix widened to fp32 (forward and backward, one op at a time) */
    int64_t scratch_numel;
    uint64_t checksum;        /* lrsa_model_checksum of the fp32 weights before rounding */
    lrsa_checksum_state hash; /* the checksum while the store fills */
} lrsa_base_bf16;

/* Moves m's weights into the store above (m->base16) and frees the table's PARAM arena. The
 * checksum is taken first, so checkpoints, resume and export check the base as loaded. The model
 * is frozen from then on: it has no fp32 matrices to train. */
void lrsa_model_store_base_bf16(lrsa_model *m);
void lrsa_base_bf16_free(lrsa_base_bf16 *s);

/* Filling a store tensor by tensor (lrsa_model_load_base_bf16 and the function above): begin
 * sizes it for m's table; for each tensor in table order, write its fp32 weights at slot(i) (in
 * place for the fp32 tensors, the scratch for a matrix) and call put(i), which hashes them and
 * rounds a matrix to bf16; end attaches the store to m. */
lrsa_base_bf16 *lrsa_base_bf16_begin(const lrsa_model *m);
float *lrsa_base_bf16_slot(lrsa_base_bf16 *s, const lrsa_model *m, int i);
void lrsa_base_bf16_put(lrsa_base_bf16 *s, const lrsa_model *m, int i);
void lrsa_base_bf16_end(lrsa_base_bf16 *s, lrsa_model *m);

/* Tensor idx's fp32 weights (NULL for idx < 0). With a bf16 base, only non-matrix tensors have
 * them: a matrix aborts with a message pointing to lrsa_model_linear_weight. */
const float *lrsa_model_param(const lrsa_model *m, int idx);
/* The fp32 weights of the linear op whose matrix starts at tensor idx and spans numel elements
 * (a fused op spans consecutive tensors: q, k, v; gate, up). An fp32 model returns its own; a
 * bf16 base widens them into dst, or into the store's scratch when dst is NULL (valid until the
 * next such call). */
const float *lrsa_model_linear_weight(const lrsa_model *m, int idx, int64_t numel, float *dst);

/* Bytes allocated for the weights: the linear matrices, the rest, and the widening scratch. */
typedef struct lrsa_weight_bytes {
    int64_t matrices, other, scratch;
} lrsa_weight_bytes;
lrsa_weight_bytes lrsa_model_weight_bytes(const lrsa_model *m);
#endif
