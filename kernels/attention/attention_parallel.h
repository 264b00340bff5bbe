/* Helpers of the threaded CPU attention drivers (dense, LRSA).
 *
 * Forward: one task per (sequence, KV head, query block), the G query heads of the group
 * stacked in the block. Backward: one task per (sequence, query head); each task accumulates
 * its own dK/dV rows into a private buffer, and the G buffers of a group are then added in head
 * order. No two tasks write the same element, and each task's order is fixed, so the result is
 * the same bits for any number of threads. */
#ifndef LRSA_KERNELS_ATTENTION_PARALLEL_H
#define LRSA_KERNELS_ATTENTION_PARALLEL_H
#include <stdint.h>

#include "kernels/attention/attention.h"

/* Per-(sequence, query head) dK/dV rows [T, D] of a backward (NULL when not wanted). */
typedef struct lrsa_attn_head_grads {
    float *dk, *dv;
    int64_t T;
    int D;
} lrsa_attn_head_grads;

void lrsa_attn_head_grads_init(lrsa_attn_head_grads *g, const lrsa_attn_dims *d, int want_dk,
                               int want_dv);
void lrsa_attn_head_grads_free(lrsa_attn_head_grads *g);
/* Row 0 of task (b, h)'s buffers, zeroed (NULL for a gradient not wanted). */
float *lrsa_attn_head_grads_dk(lrsa_attn_head_grads *g, const lrsa_attn_dims *d, int b, int h);
float *lrsa_attn_head_grads_dv(lrsa_attn_head_grads *g, const lrsa_attn_dims *d, int b, int h);
/* dk/dv of KV head g = the sum over its query heads in order (overwrites; threaded by rows). */
void lrsa_attn_head_grads_reduce(const lrsa_attn_head_grads *g, float *dk, float *dv,
                                 const lrsa_attn_dims *d);

/* Checks B, T, D >= 0 and that Hq is a multiple of Hkv (aborts otherwise: a caller bug). */
void lrsa_attn_check_dims(const lrsa_attn_dims *d);
#endif
