/* Full-sequence forward and backward of the decoder on the tape (model.h).
 *
 * Per layer: x -> rmsnorm -> fused qkv linear (+bias) -> RoPE on q and k -> attention (dense or
 * LRSA) -> o_proj -> x += ; x -> rmsnorm -> fused gate_up -> swiglu -> down -> x += .
 * The residual stream x is one buffer updated in place; its gradient dx likewise flows through
 * every layer in one buffer (the rmsnorm backward adds the residual path's gradient). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/lm_head_loss/lm_head_loss.h"
#include "kernels/residual/residual.h"
#include "model/base_bf16.h"
#include "model/lora_ops.h"
#include "model/model.h"
#include "model/model_ops.h"

/* One layer's saved activations (what its backward reads). */
typedef struct layer_acts {
    float *xin;        /* layer input (input of input_layernorm) */
    float *rstd1, *h1; /* input norm statistics and output */
    float *qkv;        /* fused projections, q and k rotated */
    float *att, *lse;  /* attention output [N, Hq*D] and logsumexp [B*Hq*T] */
    float *xmid;       /* residual after attention (input of post_attention_layernorm) */
    float *rstd2, *h2; /* post norm statistics and output */
    float *gu, *act;   /* gate_up output [N, 2I], swiglu output [N, I] */
    float *lora_u[LRSA_LORA_NUM_SITES]; /* adapter inputs x A^T of each linear op (LoRA only) */
} layer_acts;

struct lrsa_workspace {
    int64_t cap_N;
    int n_acts;                             /* 1 (shared: recompute or no grad) or num_layers */
    int64_t C, QKV, HD, I;                  /* sizes the buffers were made for */
    int64_t lora_cols[LRSA_LORA_NUM_SITES]; /* adapter widths they were made for (0: none) */
    lrsa_lora_scratch lora;
    layer_acts *acts;
    float *saved_xin; /* recompute: every layer's input [L, N, C] */
    int saved_layers;
    float *x, *tmp, *xrec, *dx, *dh, *dqkv, *datt, *dgu, *dact;
    float *loss_w, *nll_rows;
    int32_t *pos, *targets;
    lrsa_tape tape, inner;
    /* LagKV selection per layer (LRSA mode), kept across calls so it can be frozen */
    int32_t **sel;
    size_t *sel_cap;
    int n_sel;
    int freeze_sel;
    lrsa_grads_ready_fn grads_ready; /* lrsa_workspace_on_grads_ready */
    void *grads_ready_ctx;
};

void lrsa_workspace_freeze_selection(lrsa_workspace *ws, int on) {
    ws->freeze_sel = on;
}

void lrsa_workspace_on_grads_ready(lrsa_workspace *ws, lrsa_grads_ready_fn fn, void *ctx) {
    ws->grads_ready = fn;
    ws->grads_ready_ctx = ctx;
}

static int64_t layer_offset(const lrsa_model *m, int l) {
    return m->table.desc[m->layers[l].input_norm].offset;
}

int lrsa_model_grad_ready_offsets(const lrsa_model *m, int64_t *out) {
    int n = 0;
    out[n++] = m->table.desc[m->final_norm].offset;
    for (int l = m->cfg.num_hidden_layers - 1; l >= 0; l--) out[n++] = layer_offset(m, l);
    out[n++] = 0;
    return n;
}

lrsa_workspace *lrsa_workspace_new(void) {
    lrsa_workspace *ws = lrsa_calloc(1, sizeof *ws);
    lrsa_tape_init(&ws->tape);
    lrsa_tape_init(&ws->inner);
    return ws;
}

static void *abuf(int64_t n, size_t es) {
    return lrsa_alloc_aligned((size_t)(n > 0 ? n : 1) * es);
}

static void free_acts(layer_acts *a) {
    free(a->xin);
    free(a->rstd1);
    free(a->h1);
    free(a->qkv);
    free(a->att);
    free(a->lse);
    free(a->xmid);
    free(a->rstd2);
    free(a->h2);
    free(a->gu);
    free(a->act);
    for (int s = 0; s < LRSA_LORA_NUM_SITES; s++) free(a->lora_u[s]);
    memset(a, 0, sizeof *a);
}

static void free_buffers(lrsa_workspace *ws) {
    for (int i = 0; i < ws->n_acts; i++) free_acts(&ws->acts[i]);
    free(ws->acts);
    ws->acts = NULL;
    ws->n_acts = 0;
    float **f[] = {&ws->saved_xin, &ws->x,    &ws->tmp, &ws->xrec, &ws->dx,     &ws->dh,
                   &ws->dqkv,      &ws->datt, &ws->dgu, &ws->dact, &ws->loss_w, &ws->nll_rows};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        free(*f[i]);
        *f[i] = NULL;
    }
    free(ws->pos);
    free(ws->targets);
    free(ws->lora.t);
    free(ws->lora.xd);
    ws->lora.t = ws->lora.xd = NULL;
    ws->pos = ws->targets = NULL;
    ws->cap_N = 0;
    ws->saved_layers = 0;
}

void lrsa_workspace_free(lrsa_workspace *ws) {
    if (!ws) return;
    free_buffers(ws);
    lrsa_tape_free(&ws->tape);
    lrsa_tape_free(&ws->inner);
    for (int i = 0; i < ws->n_sel; i++) free(ws->sel[i]);
    free(ws->sel);
    free(ws->sel_cap);
    free(ws);
}

/* Makes sure the buffers hold N rows for this model; reallocates only when they must grow, so
 * a training loop with a fixed batch shape allocates once. */
static void ws_ensure(lrsa_workspace *ws, const lrsa_model *m, int64_t N, int n_acts,
                      int saved_layers) {
    const lrsa_model_config *c = &m->cfg;
    int64_t C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
            Hkv = c->num_key_value_heads, I = c->intermediate_size;
    int64_t QKV = (Hq + 2 * Hkv) * D, HD = Hq * D;
    int64_t lora_cols[LRSA_LORA_NUM_SITES];
    int same_shape = ws->C == C && ws->QKV == QKV && ws->HD == HD && ws->I == I;
    for (int s = 0; s < LRSA_LORA_NUM_SITES; s++) {
        lora_cols[s] = m->lora ? lrsa_lora_site_cols(m->lora, (lrsa_lora_site)s) : 0;
        same_shape = same_shape && ws->lora_cols[s] == lora_cols[s];
    }
    if (same_shape && ws->cap_N >= N && ws->n_acts >= n_acts && ws->saved_layers >= saved_layers)
        return;
    int64_t cap = same_shape && ws->cap_N > N ? ws->cap_N : N;
    if (same_shape && ws->n_acts > n_acts) n_acts = ws->n_acts;
    if (same_shape && ws->saved_layers > saved_layers) saved_layers = ws->saved_layers;
    free_buffers(ws);
    ws->C = C, ws->QKV = QKV, ws->HD = HD, ws->I = I;
    memcpy(ws->lora_cols, lora_cols, sizeof lora_cols);
    ws->cap_N = cap;
    ws->n_acts = n_acts;
    ws->acts = lrsa_calloc((size_t)n_acts, sizeof *ws->acts);
    for (int i = 0; i < n_acts; i++) {
        layer_acts *a = &ws->acts[i];
        a->xin = abuf(cap * C, 4);
        a->rstd1 = abuf(cap, 4);
        a->h1 = abuf(cap * C, 4);
        a->qkv = abuf(cap * QKV, 4);
        a->att = abuf(cap * HD, 4);
        a->lse = abuf(cap * Hq, 4);
        a->xmid = abuf(cap * C, 4);
        a->rstd2 = abuf(cap, 4);
        a->h2 = abuf(cap * C, 4);
        a->gu = abuf(cap * 2 * I, 4);
        a->act = abuf(cap * I, 4);
        for (int s = 0; s < LRSA_LORA_NUM_SITES; s++)
            if (lora_cols[s]) a->lora_u[s] = abuf(cap * lora_cols[s], 4);
    }
    if (m->lora) {
        int64_t widest = C > HD ? C : HD;
        if (I > widest) widest = I;
        ws->lora.t = abuf(cap * LRSA_LORA_MAX_GROUPS * m->lora->cfg.rank, 4);
        if (m->lora->cfg.dropout > 0) ws->lora.xd = abuf(cap * widest, 4);
    }
    ws->saved_layers = saved_layers;
    if (saved_layers) ws->saved_xin = abuf((int64_t)saved_layers * cap * C, 4);
    ws->x = abuf(cap * C, 4);
    ws->tmp = abuf(cap * C, 4);
    ws->xrec = abuf(cap * C, 4);
    ws->dx = abuf(cap * C, 4);
    ws->dh = abuf(cap * C, 4);
    ws->dqkv = abuf(cap * QKV, 4);
    ws->datt = abuf(cap * HD, 4);
    ws->dgu = abuf(cap * 2 * I, 4);
    ws->dact = abuf(cap * I, 4);
    ws->loss_w = abuf(cap, 4);
    ws->nll_rows = abuf(cap, 4);
    ws->pos = abuf(cap, 4);
    ws->targets = abuf(cap, 4);
}

typedef struct fwd_args {
    lrsa_model *m;
    lrsa_workspace *ws;
    int B, T;
    lrsa_attn_config attn;
    int train; /* a training pass: LoRA dropout on (also in the forward of a recomputed layer) */
} fwd_args;

/* A base weight's gradient, or NULL (not wanted, absent, or frozen under an adapter). */
static float *grad_of(lrsa_model *m, int idx, int want) {
    return want && idx >= 0 && !m->lora ? lrsa_table_ptr(&m->table, LRSA_ROLE_GRAD, idx) : NULL;
}
static const float *param_of(const lrsa_model *m, int idx) {
    return lrsa_model_param(m, idx);
}

/* A bf16 base (model/base_bf16.h) widens each linear op's matrix into one shared scratch right
 * before the op; this tape entry, recorded after the op's own, runs just before the op's
 * backward and widens the same matrix again for its dx GEMM. */
typedef struct widen_ctx {
    const lrsa_model *m;
    int idx;
    int64_t numel;
} widen_ctx;

static void widen_bwd(void *p) {
    widen_ctx *c = p;
    lrsa_model_linear_weight(c->m, c->idx, c->numel, NULL);
}

/* One of a layer's four linear ops, its matrix starting at tensor w_idx: the plain op, or with
 * adapters on it the fused LoRA op (the base weight then frozen: dw and db are NULL). u: the
 * layer's saved adapter input. */
static void proj(const fwd_args *f, int l, lrsa_lora_site site, float *u, lrsa_tape *tp, float *y,
                 const float *x, int w_idx, const float *b, int64_t N, int in, int out, float *dy,
                 float *dx, float *dw, float *db) {
    lrsa_lora *a = f->m->lora;
    lrsa_lora_spec s;
    int ia, ib;
    const int64_t numel = (int64_t)out * in;
    const float *w = lrsa_model_linear_weight(f->m, w_idx, numel, NULL);
    if (!a || !lrsa_lora_site_spec(a, &f->m->cfg, l, site, f->train, &s, &ia, &ib)) {
        lrsa_op_linear(tp, y, x, w, b, N, in, out, dy, dx, dw, db);
    } else {
        const int g = tp != NULL;
        lrsa_op_lora_linear(tp, y, u, x, w, b, lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ia),
                            lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ib), &s, N, in, out, dy, dx,
                            g ? lrsa_table_ptr(&a->table, LRSA_ROLE_GRAD, ia) : NULL,
                            g ? lrsa_table_ptr(&a->table, LRSA_ROLE_GRAD, ib) : NULL, &f->ws->lora);
    }
    if (tp && f->m->base16) {
        widen_ctx *c = lrsa_tape_push(tp, "widen_base", widen_bwd, sizeof *c);
        *c = (widen_ctx){f->m, w_idx, numel};
    }
}

/* Runs layer l on the residual stream x (updated in place), saving activations in a and
 * recording backward calls on tp when non-NULL. */
static void layer_forward(const fwd_args *f, int l, layer_acts *a, float *x, lrsa_tape *tp) {
    lrsa_model *m = f->m;
    lrsa_workspace *ws = f->ws;
    const lrsa_model_config *c = &m->cfg;
    const lrsa_layer_index *L = &m->layers[l];
    const int B = f->B, T = f->T, C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
              Hkv = c->num_key_value_heads, I = c->intermediate_size;
    const int64_t N = (int64_t)B * T, QKV = (int64_t)(Hq + 2 * Hkv) * D, HD = (int64_t)Hq * D;
    const int g = tp != NULL;
    const float eps = c->rms_norm_eps;

    if (a->xin != x) memcpy(a->xin, x, (size_t)(N * C) * sizeof(float));
    lrsa_op_rmsnorm(tp, a->h1, a->rstd1, a->xin, param_of(m, L->input_norm), N, C, eps, ws->dh,
                    ws->dx, grad_of(m, L->input_norm, g));
    proj(f, l, LRSA_LORA_SITE_QKV, a->lora_u[0], tp, a->qkv, a->h1, L->q, param_of(m, L->q_bias), N,
         C, (int)QKV, ws->dqkv, ws->dh, grad_of(m, L->q, g), grad_of(m, L->q_bias, g));
    lrsa_op_rope(tp, a->qkv, ws->pos, m->inv_freq, N, Hq + Hkv, D, QKV, ws->dqkv);

    lrsa_attn_dims d = {.B = B,
                        .T = T,
                        .Hq = Hq,
                        .Hkv = Hkv,
                        .D = D,
                        .q_stride = QKV,
                        .kv_stride = QKV,
                        .o_stride = HD,
                        .scale = 1.0f / sqrtf((float)D)};
    const int32_t *sel = NULL;
    if (f->attn.mode == LRSA_ATTN_LRSA) {
        const lrsa_lagkv_params *p = &f->attn.lagkv;
        size_t need =
            (size_t)B * Hkv * (size_t)lrsa_lagkv_num_scored(T, p) * (size_t)lrsa_lagkv_k(p);
        if (need == 0) need = 1;
        if (ws->n_sel < c->num_hidden_layers) {
            ws->sel = lrsa_realloc(ws->sel, (size_t)c->num_hidden_layers * sizeof *ws->sel);
            ws->sel_cap = lrsa_realloc(ws->sel_cap, (size_t)c->num_hidden_layers * sizeof(size_t));
            for (int i = ws->n_sel; i < c->num_hidden_layers; i++) {
                ws->sel[i] = NULL;
                ws->sel_cap[i] = 0;
            }
            ws->n_sel = c->num_hidden_layers;
        }
        if (ws->freeze_sel) {
            LRSA_CHECK(ws->sel_cap[l] >= need, "frozen selection does not fit this call");
        } else {
            if (ws->sel_cap[l] < need) {
                free(ws->sel[l]);
                ws->sel[l] = lrsa_malloc(need * sizeof(int32_t));
                ws->sel_cap[l] = need;
            }
            /* no gradient flows through the selection (lagkv-lrsa.md) */
            lrsa_lagkv_select_cpu(ws->sel[l], NULL, a->qkv + HD, a->qkv + HD + (int64_t)Hkv * D, B,
                                  T, Hkv, D, QKV, p);
        }
        sel = ws->sel[l];
    }
    lrsa_op_attention(tp, a->att, a->lse, a->qkv, &d, sel, &f->attn.lagkv, ws->datt, ws->dqkv);
    proj(f, l, LRSA_LORA_SITE_O, a->lora_u[1], tp, ws->tmp, a->att, L->o, param_of(m, L->o_bias), N,
         (int)HD, C, ws->dx, ws->datt, grad_of(m, L->o, g), grad_of(m, L->o_bias, g));
    lrsa_residual_forward_cpu(x, x, ws->tmp, N * C); /* gradient: dx passes through in place */
    memcpy(a->xmid, x, (size_t)(N * C) * sizeof(float));

    lrsa_op_rmsnorm(tp, a->h2, a->rstd2, a->xmid, param_of(m, L->post_norm), N, C, eps, ws->dh,
                    ws->dx, grad_of(m, L->post_norm, g));
    proj(f, l, LRSA_LORA_SITE_GATE_UP, a->lora_u[2], tp, a->gu, a->h2, L->gate, NULL, N, C, 2 * I,
         ws->dgu, ws->dh, grad_of(m, L->gate, g), NULL);
    lrsa_op_swiglu(tp, a->act, a->gu, N, I, ws->dact, ws->dgu);
    proj(f, l, LRSA_LORA_SITE_DOWN, a->lora_u[3], tp, ws->tmp, a->act, L->down, NULL, N, I, C,
         ws->dx, ws->dact, grad_of(m, L->down, g), NULL);
    lrsa_residual_forward_cpu(x, x, ws->tmp, N * C);
}

/* A tape entry recorded before a layer's own entries: it runs once that layer's backward has
 * added its last gradient (lrsa_workspace_on_grads_ready). */
typedef struct ready_ctx {
    lrsa_workspace *ws;
    int64_t offset;
} ready_ctx;

static void grads_ready_bwd(void *p) {
    ready_ctx *r = p;
    r->ws->grads_ready(r->ws->grads_ready_ctx, r->offset);
}

/* Recomputation: the layer's backward re-runs its forward from the saved input on a nested
 * tape (into the shared activation buffers) and replays that tape. */
typedef struct recompute_ctx {
    fwd_args f;
    int layer;
} recompute_ctx;

static void recompute_bwd(void *p) {
    recompute_ctx *r = p;
    lrsa_workspace *ws = r->f.ws;
    const int64_t NC = (int64_t)r->f.B * r->f.T * ws->C;
    layer_acts *a = &ws->acts[0];
    float *own_xin = a->xin;
    a->xin = ws->saved_xin + (int64_t)r->layer * NC;
    memcpy(ws->xrec, a->xin, (size_t)NC * sizeof(float));
    layer_forward(&r->f, r->layer, a, ws->xrec, &ws->inner);
    lrsa_tape_backward(&ws->inner);
    a->xin = own_xin;
}

static void run_forward(fwd_args *f, const int32_t *ids, int recompute, lrsa_tape *tp) {
    lrsa_model *m = f->m;
    lrsa_workspace *ws = f->ws;
    const lrsa_model_config *c = &m->cfg;
    const int64_t N = (int64_t)f->B * f->T, C = c->hidden_size;
    const int Ln = c->num_hidden_layers;
    const int shared = recompute || tp == NULL;
    ws_ensure(ws, m, N, shared ? 1 : Ln, recompute && tp ? Ln : 0);
    for (int64_t i = 0; i < N; i++) {
        LRSA_CHECK(ids[i] >= 0 && ids[i] < c->vocab_size, "token id %d at %lld outside [0, %d)",
                   ids[i], (long long)i, c->vocab_size);
        ws->pos[i] = (int32_t)(i % f->T);
    }
    LRSA_CHECK(!tp || !m->base16 || m->lora,
               "a base stored in bf16 is frozen: attach a LoRA adapter to train on it");
    if (tp) lrsa_table_alloc(m->lora ? &m->lora->table : &m->table, LRSA_ROLE_GRAD);
    lrsa_op_embedding(tp, ws->x, ids, param_of(m, m->embed), N, (int)C, ws->dx,
                      grad_of(m, m->embed, tp != NULL));
    for (int l = 0; l < Ln; l++) {
        if (tp && ws->grads_ready) {
            ready_ctx *r = lrsa_tape_push(tp, "grads_ready", grads_ready_bwd, sizeof *r);
            r->ws = ws;
            r->offset = layer_offset(m, l);
        }
        if (!shared) {
            layer_forward(f, l, &ws->acts[l], ws->x, tp);
        } else if (!tp) {
            /* no grad: acts[0].xin is a private buffer, overwritten each layer */
            layer_forward(f, l, &ws->acts[0], ws->x, NULL);
        } else {
            /* recompute: keep only the input, shared buffers for the rest */
            layer_acts *a = &ws->acts[0];
            float *own_xin = a->xin;
            a->xin = ws->saved_xin + (int64_t)l * N * C;
            layer_forward(f, l, a, ws->x, NULL);
            a->xin = own_xin;
            recompute_ctx *r = lrsa_tape_push(tp, "layer_recompute", recompute_bwd, sizeof *r);
            r->f = *f;
            r->layer = l;
        }
    }
}

double lrsa_model_forward_backward(lrsa_model *m, lrsa_workspace *ws, const int32_t *ids,
                                   const float *loss_weight, int B, int T,
                                   const lrsa_attn_config *attn, int recompute, int want_grad,
                                   float *nll_out) {
    LRSA_CHECK(B > 0 && T > 0);
    const lrsa_model_config *c = &m->cfg;
    fwd_args f = {m, ws, B, T, *attn, want_grad};
    lrsa_tape *tp = want_grad ? &ws->tape : NULL;
    if (tp) lrsa_tape_reset(tp);
    run_forward(&f, ids, recompute, tp);
    const int64_t N = (int64_t)B * T;
    /* Row t predicts token t+1 with that token's weight (HF label shift); the last row of each
     * sequence predicts nothing. */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)b * T + t;
            int last = t == T - 1;
            ws->targets[i] = last ? 0 : ids[i + 1];
            ws->loss_w[i] = last ? 0.f : loss_weight[i + 1];
        }
    double loss = lrsa_lm_head_loss_cpu(
        ws->nll_rows, tp ? ws->dx : NULL, grad_of(m, m->final_norm, tp != NULL),
        grad_of(m, m->lm_head, tp != NULL), ws->x, param_of(m, m->final_norm),
        param_of(m, m->lm_head), ws->targets, ws->loss_w, N, c->hidden_size, c->vocab_size,
        c->rms_norm_eps);
    if (tp && ws->grads_ready)
        ws->grads_ready(ws->grads_ready_ctx, m->table.desc[m->final_norm].offset);
    if (tp) lrsa_tape_backward(tp);
    if (tp && ws->grads_ready) ws->grads_ready(ws->grads_ready_ctx, 0);
    if (nll_out)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                nll_out[(int64_t)b * T + t] = t == 0 ? 0.f : ws->nll_rows[(int64_t)b * T + t - 1];
    return loss;
}

void lrsa_model_logits(lrsa_model *m, lrsa_workspace *ws, const int32_t *ids, int B, int T,
                       const lrsa_attn_config *attn, float *logits) {
    LRSA_CHECK(B > 0 && T > 0);
    const lrsa_model_config *c = &m->cfg;
    fwd_args f = {m, ws, B, T, *attn, 0};
    run_forward(&f, ids, 0, NULL);
    lrsa_lm_head_logits_cpu(logits, ws->x, param_of(m, m->final_norm), param_of(m, m->lm_head),
                            (int64_t)B * T, c->hidden_size, c->vocab_size, c->rms_norm_eps);
}
