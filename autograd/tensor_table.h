/* The one tensor table: every trainable tensor described once (name, shape, kind), laid out
 * back to back in flat arenas, one arena per role. Loading, saving, zeroing, collectives,
 * AdamW and the weight-decay mask all iterate this table; nothing hard-codes index ranges.
 *
 * Layout guarantee: tensors are placed contiguously in the order they were added, with no
 * padding. The model relies on this to fuse q/k/v (and gate/up) projections into one matrix:
 * adding q_proj, k_proj, v_proj in a row makes them one [(Hq+2Hkv)*D, C] matrix. */
#ifndef LRSA_TENSOR_TABLE_H
#define LRSA_TENSOR_TABLE_H

#include <stdint.h>

#include "autograd/tensor.h"

typedef enum lrsa_param_kind {
    LRSA_KIND_MATRIX = 0, /* a linear layer's weight: gets weight decay */
    LRSA_KIND_EMBEDDING,  /* token embedding / untied LM head: no decay by default */
    LRSA_KIND_NORM,       /* RMSNorm weight: no decay */
    LRSA_KIND_BIAS,       /* projection bias: no decay */
} lrsa_param_kind;

typedef enum lrsa_role {
    LRSA_ROLE_PARAM = 0, /* the weights (fp32 on CPU; the fp32 master copy on GPU) */
    LRSA_ROLE_GRAD,      /* their gradients (accumulated with +=) */
    LRSA_ROLE_ADAM_M,    /* AdamW first moment */
    LRSA_ROLE_ADAM_V,    /* AdamW second moment */
    LRSA_NUM_ROLES
} lrsa_role;

typedef struct lrsa_param_desc {
    char name[128]; /* the Hugging Face name, e.g. model.layers.3.self_attn.q_proj.weight */
    int ndim;
    int64_t shape[LRSA_MAX_DIMS];
    int64_t numel;
    int64_t offset; /* element offset inside every arena */
    lrsa_param_kind kind;
} lrsa_param_desc;

typedef struct lrsa_tensor_table {
    lrsa_param_desc *desc;
    int n, cap;
    int64_t numel;                /* total elements */
    float *arena[LRSA_NUM_ROLES]; /* NULL until lrsa_table_alloc(role) */
} lrsa_tensor_table;

void lrsa_table_init(lrsa_tensor_table *t);
void lrsa_table_free(lrsa_tensor_table *t);
/* Adds a tensor; returns its index. Must be called before any arena is allocated. */
int lrsa_table_add(lrsa_tensor_table *t, const char *name, int ndim, const int64_t *shape,
                   lrsa_param_kind kind);
/* Allocates (zeroed) the arena of one role; idempotent. */
void lrsa_table_alloc(lrsa_tensor_table *t, lrsa_role role);
void lrsa_table_zero(lrsa_tensor_table *t, lrsa_role role);
/* Index of a tensor by name, or -1. Linear scan: for loading, not for hot paths. */
int lrsa_table_find(const lrsa_tensor_table *t, const char *name);
/* Pointer to tensor i inside the arena of a role (arena must be allocated). */
float *lrsa_table_ptr(const lrsa_tensor_table *t, lrsa_role role, int i);
/* A tensor view of tensor i in a role. */
lrsa_tensor lrsa_table_tensor(const lrsa_tensor_table *t, lrsa_role role, int i);
/* Whether AdamW applies weight decay to this kind (matrices only). */
int lrsa_kind_decays(lrsa_param_kind kind);

#endif
