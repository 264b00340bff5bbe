/* LoRA op wrappers (lora_ops.h). */
#include "model/lora_ops.h"

typedef struct {
    const lrsa_device_ops *ops;
    void *dx, *dy;
    float *dA, *dB;
    const void *x, *w, *A, *B, *u;
    lrsa_lora_spec s;
    int64_t N;
    int in, out;
    lrsa_lora_scratch scratch;
} lora_ctx;

static void lora_bwd(void *p) {
    lora_ctx *c = p;
    c->ops->lora_linear_bwd(c->ops->ctx, c->dx, c->dA, c->dB, c->dy, c->x, c->w, c->A, c->B, c->u,
                            &c->s, c->N, c->in, c->out, c->scratch.t, c->scratch.xd);
}

void lrsa_op_lora_linear(const lrsa_device_ops *ops, lrsa_tape *tp, void *y, void *u, const void *x,
                         const void *w, const void *b, const void *A, const void *B,
                         const lrsa_lora_spec *s, int64_t N, int in, int out, void *dy, void *dx,
                         float *dA, float *dB, const lrsa_lora_scratch *scratch) {
    ops->lora_linear_fwd(ops->ctx, y, u, x, w, b, A, B, s, N, in, out, scratch->xd);
    if (!tp) return;
    lora_ctx *c = lrsa_tape_push(tp, "lora_linear", lora_bwd, sizeof *c);
    *c = (lora_ctx){ops, dx, dy, dA, dB, x, w, A, B, u, *s, N, in, out, *scratch};
}

void lrsa_model_site_linear(const lrsa_device_ops *ops, const lrsa_model *m, int layer,
                            lrsa_lora_site site, void *y, const void *x, const void *w,
                            const void *b, int64_t N, int in, int out) {
    lrsa_lora_spec s;
    int ia, ib;
    const lrsa_lora *a = m->lora;
    if (!a || !lrsa_lora_site_spec(a, &m->cfg, layer, site, 0, &s, &ia, &ib)) {
        ops->linear_fwd(ops->ctx, y, x, w, b, N, in, out);
        return;
    }
    LRSA_CHECK(ops->device == LRSA_CPU && ops->lora_linear_fwd,
               "(a LoRA adapter is attached and the %s op table has no LoRA op)", ops->name);
    void *u = ops->alloc(ops->ctx, ops->act_bytes * (size_t)(N * s.n_groups * s.rank));
    ops->lora_linear_fwd(ops->ctx, y, u, x, w, b, lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ia),
                         lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ib), &s, N, in, out, NULL);
    ops->free(ops->ctx, u);
}
