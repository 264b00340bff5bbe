/* The frozen base in bf16 (base_bf16.h). */
#include "model/base_bf16.h"

#include <stdlib.h>
#include <string.h>

#include "model/lora.h"

static int is_matrix(const lrsa_param_desc *d) {
    return d->kind == LRSA_KIND_MATRIX;
}

/* The elements of the largest fused linear op: q+k+v, o, gate+up or down. */
static int64_t largest_op(const lrsa_model *m) {
    const lrsa_param_desc *d = m->table.desc;
    int64_t most = 0;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const lrsa_layer_index *L = &m->layers[l];
        const int64_t ops[4] = {d[L->q].numel + d[L->k].numel + d[L->v].numel, d[L->o].numel,
                                d[L->gate].numel + d[L->up].numel, d[L->down].numel};
        for (int i = 0; i < 4; i++)
            if (ops[i] > most) most = ops[i];
    }
    return most;
}

lrsa_base_bf16 *lrsa_base_bf16_begin(const lrsa_model *m) {
    const lrsa_tensor_table *t = &m->table;
    lrsa_base_bf16 *s = lrsa_calloc(1, sizeof *s);
    s->off = lrsa_malloc(sizeof(int64_t) * (size_t)(t->n > 0 ? t->n : 1));
    for (int i = 0; i < t->n; i++) {
        int64_t *n = is_matrix(&t->desc[i]) ? &s->mat_numel : &s->rest_numel;
        s->off[i] = *n;
        *n += t->desc[i].numel;
    }
    s->mat = lrsa_alloc_aligned(sizeof(uint16_t) * (size_t)(s->mat_numel + 1));
    s->rest = lrsa_alloc_aligned(sizeof(float) * (size_t)(s->rest_numel + 1));
    s->scratch_numel = largest_op(m);
    s->scratch = lrsa_alloc_aligned(sizeof(float) * (size_t)(s->scratch_numel + 1));
    lrsa_checksum_init(&s->hash);
    return s;
}

float *lrsa_base_bf16_slot(lrsa_base_bf16 *s, const lrsa_model *m, int i) {
    return is_matrix(&m->table.desc[i]) ? s->scratch : s->rest + s->off[i];
}

void lrsa_base_bf16_put(lrsa_base_bf16 *s, const lrsa_model *m, int i) {
    const lrsa_param_desc *d = &m->table.desc[i];
    const float *w = lrsa_base_bf16_slot(s, m, i);
    lrsa_checksum_update(&s->hash, w, sizeof(float) * (size_t)d->numel);
    if (!is_matrix(d)) return;
    uint16_t *h = s->mat + s->off[i];
    for (int64_t j = 0; j < d->numel; j++) h[j] = lrsa_f32_to_bf16(w[j]);
}

void lrsa_base_bf16_end(lrsa_base_bf16 *s, lrsa_model *m) {
    LRSA_CHECK(m->base16 == NULL, "the base is already stored in bf16");
    s->checksum = lrsa_checksum_final(&s->hash);
    m->base16 = s;
}

void lrsa_model_store_base_bf16(lrsa_model *m) {
    lrsa_tensor_table *t = &m->table;
    LRSA_CHECK(m->base16 == NULL, "the base is already stored in bf16");
    LRSA_CHECK(t->arena[LRSA_ROLE_GRAD] == NULL, "a model with gradients is not frozen");
    lrsa_base_bf16 *s = lrsa_base_bf16_begin(m);
    for (int i = 0; i < t->n; i++) {
        memcpy(lrsa_base_bf16_slot(s, m, i), lrsa_table_ptr(t, LRSA_ROLE_PARAM, i),
               sizeof(float) * (size_t)t->desc[i].numel);
        lrsa_base_bf16_put(s, m, i);
    }
    free(t->arena[LRSA_ROLE_PARAM]);
    t->arena[LRSA_ROLE_PARAM] = NULL;
    lrsa_base_bf16_end(s, m);
}

void lrsa_base_bf16_free(lrsa_base_bf16 *s) {
    if (!s) return;
    free(s->mat);
    free(s->rest);
    free(s->off);
    free(s->scratch);
    free(s);
}

const float *lrsa_model_param(const lrsa_model *m, int idx) {
    if (idx < 0) return NULL;
    const lrsa_base_bf16 *s = m->base16;
    if (!s) return lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, idx);
    LRSA_CHECK(idx < m->table.n && !is_matrix(&m->table.desc[idx]),
               "%s is stored in bf16: read it through lrsa_model_linear_weight",
               m->table.desc[idx].name);
    return s->rest + s->off[idx];
}

const float *lrsa_model_linear_weight(const lrsa_model *m, int idx, int64_t numel, float *dst) {
    const lrsa_base_bf16 *s = m->base16;
    if (!s) return lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, idx);
    LRSA_CHECK(idx >= 0 && idx < m->table.n && is_matrix(&m->table.desc[idx]) &&
                   s->off[idx] + numel <= s->mat_numel,
               "tensor %d is not a linear op's matrix of %lld elements", idx, (long long)numel);
    if (!dst) {
        LRSA_CHECK(numel <= s->scratch_numel, "the widening scratch holds %lld elements, not %lld",
                   (long long)s->scratch_numel, (long long)numel);
        dst = s->scratch;
    }
    /* bf16 is the top half of an fp32: widening is a shift, exact */
    const uint16_t *h = s->mat + s->off[idx];
    for (int64_t j = 0; j < numel; j++) {
        const uint32_t u = (uint32_t)h[j] << 16;
        memcpy(&dst[j], &u, sizeof u);
    }
    return dst;
}

lrsa_weight_bytes lrsa_model_weight_bytes(const lrsa_model *m) {
    lrsa_weight_bytes b = {0, 0, 0};
    const lrsa_base_bf16 *s = m->base16;
    if (s) {
        b.matrices = (int64_t)sizeof(uint16_t) * s->mat_numel;
        b.other = (int64_t)sizeof(float) * s->rest_numel;
        b.scratch = (int64_t)sizeof(float) * s->scratch_numel;
        return b;
    }
    for (int i = 0; i < m->table.n; i++)
        *(is_matrix(&m->table.desc[i]) ? &b.matrices : &b.other) +=
            (int64_t)sizeof(float) * m->table.desc[i].numel;
    return b;
}
