/* LoRA op wrappers (lora_ops.h). */
#include "model/lora_ops.h"

#include <stdlib.h>

#include "kernels/linear/linear.h"

typedef struct {
    float *dx, *dA, *dB, *dy;
    const float *x, *w, *A, *B, *u;
    lrsa_lora_spec s;
    int64_t N;
    int in, out;
    lrsa_lora_scratch scratch;
} lora_ctx;

static void lora_bwd(void *p) {
    lora_ctx *c = p;
    lrsa_lora_linear_backward_cpu(c->dx, c->dA, c->dB, c->dy, c->x, c->w, c->A, c->B, c->u, &c->s,
                                  c->N, c->in, c->out, c->scratch.t, c->scratch.xd);
}

void lrsa_op_lora_linear(lrsa_tape *tp, float *y, float *u, const float *x, const float *w,
                         const float *b, const float *A, const float *B, const lrsa_lora_spec *s,
                         int64_t N, int in, int out, float *dy, float *dx, float *dA, float *dB,
                         const lrsa_lora_scratch *scratch) {
    lrsa_lora_linear_forward_cpu(y, u, x, w, b, A, B, s, N, in, out, scratch->xd);
    if (!tp) return;
    lora_ctx *c = lrsa_tape_push(tp, "lora_linear", lora_bwd, sizeof *c);
    *c = (lora_ctx){dx, dA, dB, dy, x, w, A, B, u, *s, N, in, out, *scratch};
}

void lrsa_model_site_linear(const lrsa_model *m, int layer, lrsa_lora_site site, float *y,
                            const float *x, const float *w, const float *b, int64_t N, int in,
                            int out) {
    lrsa_lora_spec s;
    int ia, ib;
    const lrsa_lora *a = m->lora;
    if (!a || !lrsa_lora_site_spec(a, &m->cfg, layer, site, 0, &s, &ia, &ib)) {
        lrsa_linear_forward_cpu(y, x, w, b, N, in, out);
        return;
    }
    float *u = lrsa_malloc(sizeof(float) * (size_t)(N * s.n_groups * s.rank) + 1);
    lrsa_lora_linear_forward_cpu(y, u, x, w, b, lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ia),
                                 lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ib), &s, N, in, out,
                                 NULL);
    free(u);
}
