#include "autograd/tensor_table.h"

#include <string.h>
#include <stdlib.h>

#include "base/error.h"

void lrsa_table_init(lrsa_tensor_table *t) {
    memset(t, 0, sizeof *t);
}

void lrsa_table_free(lrsa_tensor_table *t) {
    for (int r = 0; r < LRSA_NUM_ROLES; r++) free(t->arena[r]);
    free(t->desc);
    memset(t, 0, sizeof *t);
}

int lrsa_table_add(lrsa_tensor_table *t, const char *name, int ndim, const int64_t *shape,
                   lrsa_param_kind kind) {
    for (int r = 0; r < LRSA_NUM_ROLES; r++)
        LRSA_CHECK(t->arena[r] == NULL, "tensor table is frozen once an arena exists (%s)", name);
    LRSA_CHECK(ndim >= 1 && ndim <= LRSA_MAX_DIMS);
    LRSA_CHECK(strlen(name) < sizeof t->desc[0].name, "%s", name);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->desc = lrsa_realloc(t->desc, (size_t)t->cap * sizeof *t->desc);
    }
    lrsa_param_desc *d = &t->desc[t->n];
    memset(d, 0, sizeof *d);
    strcpy(d->name, name);
    d->ndim = ndim;
    for (int i = 0; i < ndim; i++) d->shape[i] = shape[i];
    d->numel = lrsa_shape_numel(ndim, shape);
    d->offset = t->numel;
    d->kind = kind;
    t->numel += d->numel;
    return t->n++;
}

void lrsa_table_alloc(lrsa_tensor_table *t, lrsa_role role) {
    if (t->arena[role]) return;
    size_t bytes = (size_t)t->numel * sizeof(float);
    t->arena[role] = lrsa_alloc_aligned(bytes);
    memset(t->arena[role], 0, bytes);
}

void lrsa_table_zero(lrsa_tensor_table *t, lrsa_role role) {
    LRSA_CHECK(t->arena[role] != NULL);
    memset(t->arena[role], 0, (size_t)t->numel * sizeof(float));
}

int lrsa_table_find(const lrsa_tensor_table *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->desc[i].name, name) == 0) return i;
    return -1;
}

float *lrsa_table_ptr(const lrsa_tensor_table *t, lrsa_role role, int i) {
    LRSA_CHECK(i >= 0 && i < t->n);
    LRSA_CHECK(t->arena[role] != NULL, "role %d not allocated", (int)role);
    return t->arena[role] + t->desc[i].offset;
}

lrsa_tensor lrsa_table_tensor(const lrsa_tensor_table *t, lrsa_role role, int i) {
    lrsa_tensor x = {0};
    x.data = lrsa_table_ptr(t, role, i);
    x.ndim = t->desc[i].ndim;
    memcpy(x.shape, t->desc[i].shape, sizeof x.shape);
    x.dtype = LRSA_F32;
    x.device = LRSA_CPU;
    return x;
}

int lrsa_kind_decays(lrsa_param_kind kind) {
    return kind == LRSA_KIND_MATRIX;
}
