/* Op wrappers: forward now through the device's table, backward recorded on the tape (see
 * model_ops.h). */
#include "model/model_ops.h"

typedef struct {
    const lrsa_device_ops *ops;
    void *dx, *dy;
    float *dw, *db;
    const void *x, *w;
    int64_t N;
    int in, out;
} linear_ctx;
static void linear_bwd(void *p) {
    linear_ctx *c = p;
    c->ops->linear_bwd(c->ops->ctx, c->dx, c->dw, c->db, c->dy, c->x, c->w, c->N, c->in, c->out);
}
void lrsa_op_linear(const lrsa_device_ops *ops, lrsa_tape *tp, void *y, const void *x,
                    const void *w, const void *b, int64_t N, int in, int out, void *dy, void *dx,
                    float *dw, float *db) {
    ops->linear_fwd(ops->ctx, y, x, w, b, N, in, out);
    if (!tp) return;
    linear_ctx *c = lrsa_tape_push(tp, "linear", linear_bwd, sizeof *c);
    *c = (linear_ctx){ops, dx, dy, dw, b ? db : NULL, x, w, N, in, out};
}

typedef struct {
    const lrsa_device_ops *ops;
    void *dx, *dout;
    float *dw;
    const void *x, *w;
    const float *rstd;
    int64_t N;
    int C;
} rms_ctx;
static void rms_bwd(void *p) {
    rms_ctx *c = p;
    c->ops->rmsnorm_bwd(c->ops->ctx, c->dx, c->dw, c->dout, c->dx, c->x, c->w, c->rstd, c->N, c->C);
}
void lrsa_op_rmsnorm(const lrsa_device_ops *ops, lrsa_tape *tp, void *out, float *rstd,
                     const void *x, const void *w, int64_t N, int C, float eps, void *dout,
                     void *dx, float *dw) {
    ops->rmsnorm_fwd(ops->ctx, out, rstd, x, w, N, C, eps);
    if (!tp) return;
    rms_ctx *c = lrsa_tape_push(tp, "rmsnorm", rms_bwd, sizeof *c);
    *c = (rms_ctx){ops, dx, dout, dw, x, w, rstd, N, C};
}

typedef struct {
    const lrsa_device_ops *ops;
    void *dx;
    const int32_t *pos;
    const float *inv_freq;
    int64_t N, stride;
    int n_heads, D;
} rope_ctx;
static void rope_bwd(void *p) {
    rope_ctx *c = p;
    c->ops->rope_bwd(c->ops->ctx, c->dx, c->pos, c->inv_freq, c->N, c->n_heads, c->D, c->stride);
}
void lrsa_op_rope(const lrsa_device_ops *ops, lrsa_tape *tp, void *x, const int32_t *pos,
                  const float *inv_freq, int64_t N, int n_heads, int D, int64_t stride, void *dx) {
    ops->rope_fwd(ops->ctx, x, pos, inv_freq, N, n_heads, D, stride);
    if (!tp) return;
    rope_ctx *c = lrsa_tape_push(tp, "rope", rope_bwd, sizeof *c);
    *c = (rope_ctx){ops, dx, pos, inv_freq, N, stride, n_heads, D};
}

typedef struct {
    const lrsa_device_ops *ops;
    void *dout, *dqkv;
    const void *out, *qkv;
    const float *lse;
    const int32_t *sel;
    lrsa_attn_dims d;
    lrsa_lagkv_params p;
} attn_ctx;
static void attn_bwd(void *p) {
    attn_ctx *c = p;
    c->ops->attention_bwd(c->ops->ctx, c->dqkv, c->dout, c->qkv, c->out, c->lse, &c->d, c->sel,
                          &c->p);
}
void lrsa_op_attention(const lrsa_device_ops *ops, lrsa_tape *tp, void *out, float *lse,
                       const void *qkv, const lrsa_attn_dims *d, const int32_t *sel,
                       const lrsa_lagkv_params *p, void *dout, void *dqkv) {
    ops->attention_fwd(ops->ctx, out, lse, qkv, d, sel, p);
    if (!tp) return;
    attn_ctx *c = lrsa_tape_push(tp, sel ? "lrsa_attention" : "attention", attn_bwd, sizeof *c);
    c->ops = ops;
    c->dout = dout;
    c->dqkv = dqkv;
    c->out = out;
    c->lse = lse;
    c->qkv = qkv;
    c->sel = sel;
    c->d = *d;
    if (p) c->p = *p;
}

typedef struct {
    const lrsa_device_ops *ops;
    void *dgu, *dout;
    const void *gu;
    int64_t N;
    int I;
} swiglu_ctx;
static void swiglu_bwd(void *p) {
    swiglu_ctx *c = p;
    c->ops->swiglu_bwd(c->ops->ctx, c->dgu, c->dout, c->gu, c->N, c->I);
}
void lrsa_op_swiglu(const lrsa_device_ops *ops, lrsa_tape *tp, void *out, const void *gu, int64_t N,
                    int I, void *dout, void *dgu) {
    ops->swiglu_fwd(ops->ctx, out, gu, N, I);
    if (!tp) return;
    swiglu_ctx *c = lrsa_tape_push(tp, "swiglu", swiglu_bwd, sizeof *c);
    *c = (swiglu_ctx){ops, dgu, dout, gu, N, I};
}

typedef struct {
    const lrsa_device_ops *ops;
    float *dtable;
    void *dout;
    const int32_t *ids;
    int64_t N;
    int C, V;
} emb_ctx;
static void emb_bwd(void *p) {
    emb_ctx *c = p;
    c->ops->embedding_bwd(c->ops->ctx, c->dtable, c->dout, c->ids, c->N, c->C, c->V);
}
void lrsa_op_embedding(const lrsa_device_ops *ops, lrsa_tape *tp, void *out, const int32_t *ids,
                       const void *table, int64_t N, int C, int V, void *dout, float *dtable) {
    ops->embedding_fwd(ops->ctx, out, ids, table, N, C);
    if (!tp || !dtable) return; /* no gradient for a frozen table */
    emb_ctx *c = lrsa_tape_push(tp, "embedding", emb_bwd, sizeof *c);
    *c = (emb_ctx){ops, dtable, dout, ids, N, C, V};
}
