/* Op wrappers: forward now, backward recorded on the tape (see model_ops.h). */
#include "model/model_ops.h"

#include "kernels/embedding/embedding.h"
#include "kernels/linear/linear.h"
#include "kernels/lrsa_attention/lrsa_attention.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/rope/rope.h"
#include "kernels/swiglu/swiglu.h"

typedef struct {
    float *dx, *dw, *db, *dy;
    const float *x, *w;
    int64_t N;
    int in, out;
} linear_ctx;
static void linear_bwd(void *p) {
    linear_ctx *c = p;
    lrsa_linear_backward_cpu(c->dx, c->dw, c->db, c->dy, c->x, c->w, c->N, c->in, c->out);
}
void lrsa_op_linear(lrsa_tape *tp, float *y, const float *x, const float *w, const float *b,
                    int64_t N, int in, int out, float *dy, float *dx, float *dw, float *db) {
    lrsa_linear_forward_cpu(y, x, w, b, N, in, out);
    if (!tp) return;
    linear_ctx *c = lrsa_tape_push(tp, "linear", linear_bwd, sizeof *c);
    *c = (linear_ctx){dx, dw, b ? db : NULL, dy, x, w, N, in, out};
}

typedef struct {
    float *dx, *dw, *dout;
    const float *x, *w, *rstd;
    int64_t N;
    int C;
} rms_ctx;
static void rms_bwd(void *p) {
    rms_ctx *c = p;
    lrsa_rmsnorm_backward_cpu(c->dx, c->dw, c->dout, c->dx, c->x, c->w, c->rstd, c->N, c->C);
}
void lrsa_op_rmsnorm(lrsa_tape *tp, float *out, float *rstd, const float *x, const float *w,
                     int64_t N, int C, float eps, float *dout, float *dx, float *dw) {
    lrsa_rmsnorm_forward_cpu(out, rstd, x, w, N, C, eps);
    if (!tp) return;
    rms_ctx *c = lrsa_tape_push(tp, "rmsnorm", rms_bwd, sizeof *c);
    *c = (rms_ctx){dx, dw, dout, x, w, rstd, N, C};
}

typedef struct {
    float *dx;
    const int32_t *pos;
    const float *inv_freq;
    int64_t N, stride;
    int n_heads, D;
} rope_ctx;
static void rope_bwd(void *p) {
    rope_ctx *c = p;
    lrsa_rope_backward_cpu(c->dx, c->pos, c->inv_freq, c->N, c->n_heads, c->D, c->stride);
}
void lrsa_op_rope(lrsa_tape *tp, float *x, const int32_t *pos, const float *inv_freq, int64_t N,
                  int n_heads, int D, int64_t stride, float *dx) {
    lrsa_rope_forward_cpu(x, pos, inv_freq, N, n_heads, D, stride);
    if (!tp) return;
    rope_ctx *c = lrsa_tape_push(tp, "rope", rope_bwd, sizeof *c);
    *c = (rope_ctx){dx, pos, inv_freq, N, stride, n_heads, D};
}

typedef struct {
    float *dout, *dqkv;
    const float *out, *lse, *qkv;
    const int32_t *sel;
    lrsa_attn_dims d;
    lrsa_lagkv_params p;
} attn_ctx;
static void attn_bwd(void *p) {
    attn_ctx *c = p;
    const int64_t qd = (int64_t)c->d.Hq * c->d.D, kd = (int64_t)c->d.Hkv * c->d.D;
    const float *q = c->qkv, *k = c->qkv + qd, *v = c->qkv + qd + kd;
    float *dq = c->dqkv, *dk = c->dqkv + qd, *dv = c->dqkv + qd + kd;
    if (c->sel)
        lrsa_lrsa_attention_backward_cpu(dq, dk, dv, c->dout, q, k, v, c->out, c->lse, c->sel,
                                         &c->d, &c->p);
    else
        lrsa_attention_backward_cpu(dq, dk, dv, c->dout, q, k, v, c->out, c->lse, &c->d);
}
void lrsa_op_attention(lrsa_tape *tp, float *out, float *lse, const float *qkv,
                       const lrsa_attn_dims *d, const int32_t *sel, const lrsa_lagkv_params *p,
                       float *dout, float *dqkv) {
    const int64_t qd = (int64_t)d->Hq * d->D, kd = (int64_t)d->Hkv * d->D;
    const float *q = qkv, *k = qkv + qd, *v = qkv + qd + kd;
    if (sel)
        lrsa_lrsa_attention_forward_cpu(out, lse, q, k, v, sel, d, p);
    else
        lrsa_attention_forward_cpu(out, lse, q, k, v, d);
    if (!tp) return;
    attn_ctx *c = lrsa_tape_push(tp, sel ? "lrsa_attention" : "attention", attn_bwd, sizeof *c);
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
    float *dgu, *dout;
    const float *gu;
    int64_t N;
    int I;
} swiglu_ctx;
static void swiglu_bwd(void *p) {
    swiglu_ctx *c = p;
    lrsa_swiglu_backward_cpu(c->dgu, c->dout, c->gu, c->N, c->I);
}
void lrsa_op_swiglu(lrsa_tape *tp, float *out, const float *gu, int64_t N, int I, float *dout,
                    float *dgu) {
    lrsa_swiglu_forward_cpu(out, gu, N, I);
    if (!tp) return;
    swiglu_ctx *c = lrsa_tape_push(tp, "swiglu", swiglu_bwd, sizeof *c);
    *c = (swiglu_ctx){dgu, dout, gu, N, I};
}

typedef struct {
    float *dtable, *dout;
    const int32_t *ids;
    int64_t N;
    int C;
} emb_ctx;
static void emb_bwd(void *p) {
    emb_ctx *c = p;
    lrsa_embedding_backward_cpu(c->dtable, c->dout, c->ids, c->N, c->C);
}
void lrsa_op_embedding(lrsa_tape *tp, float *out, const int32_t *ids, const float *table, int64_t N,
                       int C, float *dout, float *dtable) {
    lrsa_embedding_forward_cpu(out, ids, table, N, C);
    if (!tp || !dtable) return; /* no gradient for a frozen table */
    emb_ctx *c = lrsa_tape_push(tp, "embedding", emb_bwd, sizeof *c);
    *c = (emb_ctx){dtable, dout, ids, N, C};
}
