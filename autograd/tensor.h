/* A tensor: a pointer, a shape, a dtype and a device. It does not own its memory: storage comes
 * from arenas (the tensor table for parameters, activation arenas for the rest). */
#ifndef LRSA_TENSOR_H
#define LRSA_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define LRSA_MAX_DIMS 4

/* LRSA_F64: reductions only (the gradient norm, deterministic sums), never a tensor's storage. */
typedef enum lrsa_dtype {
    LRSA_F32 = 0,
    LRSA_BF16,
    LRSA_F16,
    LRSA_I32,
    LRSA_U8,
    LRSA_F64
} lrsa_dtype;
typedef enum lrsa_device { LRSA_CPU = 0, LRSA_CUDA } lrsa_device;

typedef struct lrsa_tensor {
    void *data;
    int ndim;
    int64_t shape[LRSA_MAX_DIMS];
    lrsa_dtype dtype;
    lrsa_device device;
} lrsa_tensor;

size_t lrsa_dtype_size(lrsa_dtype t);
const char *lrsa_dtype_name(lrsa_dtype t);
int64_t lrsa_shape_numel(int ndim, const int64_t *shape);
static inline int64_t lrsa_tensor_numel(const lrsa_tensor *t) {
    return lrsa_shape_numel(t->ndim, t->shape);
}

/* bf16 <-> f32 (round to nearest even; NaN stays NaN) and f16 -> f32. */
float lrsa_bf16_to_f32(uint16_t h);
uint16_t lrsa_f32_to_bf16(float f);
float lrsa_f16_to_f32(uint16_t h);
uint16_t lrsa_f32_to_f16(float f);

#endif
