/* Full-sequence forward and backward of the decoder on the tape (model.h).
 *
 * Per layer: x -> rmsnorm -> fused qkv linear (+bias) -> RoPE on q and k -> attention (dense or
 * LRSA) -> o_proj -> x += ; x -> rmsnorm -> fused gate_up -> swiglu -> down -> x += .
 * The residual stream x is one buffer updated in place; its gradient dx likewise flows through
 * every layer in one buffer (the rmsnorm backward adds the residual path's gradient). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/lagkv/lagkv_salience.h"
#include "kernels/lm_head_loss/lm_head_loss.h"
#include "model/base_bf16.h"
#include "model/lora_ops.h"
#include "model/model.h"
#include "model/weights_needed.h"
#include "model/model_ops.h"

/* One layer's saved activations (what its backward reads); act-typed unless fp32. */
typedef struct layer_acts {
    void *xin;      /* layer input (input of input_layernorm) */
    float *rstd1;   /* input norm statistics (fp32) */
    void *h1;       /* input norm output */
    void *qkv;      /* fused projections, q and k rotated */
    void *att;      /* attention output [N, Hq*D] */
    float *lse;     /* logsumexp [B*Hq*T] (fp32) */
    void *xmid;     /* residual after attention (input of post_attention_layernorm) */
    float *rstd2;   /* post norm statistics (fp32) */
    void *h2;       /* post norm output */
    void *gu, *act; /* gate_up output [N, 2I], swiglu output [N, I] */
    void *lora_u[LRSA_LORA_NUM_SITES]; /* adapter inputs x A^T of each linear op (LoRA only) */
} layer_acts;

struct lrsa_workspace {
    const lrsa_device_ops *ops;
    void *param; /* bound weights (act-typed, table layout) or NULL: the table's PARAM arena */
    float *grad; /* bound fp32 gradients (table layout) or NULL: the table's GRAD arena */
    int planned; /* reserve() ran: growing later would allocate inside a step, which is a bug */
    int64_t cap_N;
    int n_acts;                             /* 1 (shared: recompute or no grad) or num_layers */
    int64_t C, QKV, HD, I;                  /* sizes the buffers were made for */
    int64_t lora_cols[LRSA_LORA_NUM_SITES]; /* adapter widths they were made for (0: none) */
    lrsa_lora_scratch lora;                 /* act-typed */
    layer_acts *acts;
    void *saved_xin; /* recompute: every layer's input [L, N, C] */
    int saved_layers;
    void *x, *tmp, *xrec, *dx, *dh, *dqkv, *datt, *dgu, *dact;
    float *loss_w, *nll_rows;     /* device */
    int32_t *ids, *pos, *targets; /* device */
    float *h_loss_w, *h_nll;      /* host staging */
    int32_t *h_pos, *h_targets;   /* host staging */
    lrsa_tape tape, inner;
    /* LagKV selection per layer (LRSA mode, device memory), kept across calls so it can be
     * frozen */
    int32_t **sel;
    size_t *sel_cap;
    int n_sel;
    int freeze_sel;
    int sel_live; /* the last forward ran in LRSA mode: sel holds its selections */
    /* salience loss (lrsa_workspace_set_salience): needle mask, partitions, scale, and the last
     * forward's sum of aux and number of terms per (layer, KV head) */
    const uint8_t *sal_needle;
    lrsa_lagkv_params sal_p;
    double sal_scale, sal_sum;
    int sal_terms;
    lrsa_grads_ready_fn grads_ready; /* lrsa_workspace_on_grads_ready */
    void *grads_ready_ctx;
    lrsa_weights_needed_fn weights_needed; /* lrsa_workspace_on_weights_needed */
    void *weights_needed_ctx;
};

void lrsa_workspace_freeze_selection(lrsa_workspace *ws, int on) {
    ws->freeze_sel = on;
}

const int32_t *lrsa_workspace_selection(const lrsa_workspace *ws, int layer) {
    return ws->sel_live && layer >= 0 && layer < ws->n_sel ? ws->sel[layer] : NULL;
}

void lrsa_workspace_set_salience(lrsa_workspace *ws, const uint8_t *needle,
                                 const lrsa_lagkv_params *p, double scale) {
    ws->sal_needle = needle;
    if (p) ws->sal_p = *p;
    ws->sal_scale = scale;
}

double lrsa_workspace_salience(const lrsa_workspace *ws) {
    return ws->sal_terms > 0 ? ws->sal_sum / ws->sal_terms : 0.0;
}

void lrsa_workspace_on_grads_ready(lrsa_workspace *ws, lrsa_grads_ready_fn fn, void *ctx) {
    ws->grads_ready = fn;
    ws->grads_ready_ctx = ctx;
}

void lrsa_workspace_on_weights_needed(lrsa_workspace *ws, lrsa_weights_needed_fn fn, void *ctx) {
    ws->weights_needed = fn;
    ws->weights_needed_ctx = ctx;
}

static int64_t layer_offset(const lrsa_model *m, int l) {
    return m->table.desc[m->layers[l].input_norm].offset;
}

/* The forward is about to read the weights below `end` (weights_needed.h). */
static void need_weights(lrsa_workspace *ws, int64_t end) {
    if (ws->weights_needed) ws->weights_needed(ws->weights_needed_ctx, end);
}

int lrsa_model_grad_ready_offsets(const lrsa_model *m, int64_t *out) {
    int n = 0;
    out[n++] = m->table.desc[m->final_norm].offset;
    for (int l = m->cfg.num_hidden_layers - 1; l >= 0; l--) out[n++] = layer_offset(m, l);
    out[n++] = 0;
    return n;
}

lrsa_workspace *lrsa_workspace_new_on(const lrsa_device_ops *ops) {
    lrsa_workspace *ws = lrsa_calloc(1, sizeof *ws);
    ws->ops = ops;
    lrsa_tape_init(&ws->tape);
    lrsa_tape_init(&ws->inner);
    return ws;
}

lrsa_workspace *lrsa_workspace_new(void) {
    return lrsa_workspace_new_on(lrsa_device_ops_cpu());
}

const lrsa_device_ops *lrsa_workspace_ops(const lrsa_workspace *ws) {
    return ws->ops;
}

void lrsa_workspace_bind_params(lrsa_workspace *ws, void *param, float *grad) {
    ws->param = param;
    ws->grad = grad;
}

static void *abuf(const lrsa_workspace *ws, int64_t n, size_t es) {
    return ws->ops->alloc(ws->ops->ctx, (size_t)(n > 0 ? n : 1) * es);
}

static void dfree(const lrsa_workspace *ws, void *p) {
    if (p) ws->ops->free(ws->ops->ctx, p);
}

static void free_acts(const lrsa_workspace *ws, layer_acts *a) {
    void *p[] = {a->xin,  a->rstd1, a->h1, a->qkv, a->att, a->lse,
                 a->xmid, a->rstd2, a->h2, a->gu,  a->act};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) dfree(ws, p[i]);
    for (int s = 0; s < LRSA_LORA_NUM_SITES; s++) dfree(ws, a->lora_u[s]);
    memset(a, 0, sizeof *a);
}

static void free_buffers(lrsa_workspace *ws) {
    for (int i = 0; i < ws->n_acts; i++) free_acts(ws, &ws->acts[i]);
    free(ws->acts);
    ws->acts = NULL;
    ws->n_acts = 0;
    void **d[] = {&ws->saved_xin,
                  &ws->x,
                  &ws->tmp,
                  &ws->xrec,
                  &ws->dx,
                  &ws->dh,
                  &ws->dqkv,
                  &ws->datt,
                  &ws->dgu,
                  &ws->dact,
                  (void **)&ws->loss_w,
                  (void **)&ws->nll_rows,
                  (void **)&ws->ids,
                  (void **)&ws->pos,
                  (void **)&ws->targets,
                  (void **)&ws->lora.t,
                  (void **)&ws->lora.xd};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        dfree(ws, *d[i]);
        *d[i] = NULL;
    }
    void **h[] = {(void **)&ws->h_loss_w, (void **)&ws->h_nll, (void **)&ws->h_pos,
                  (void **)&ws->h_targets};
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        free(*h[i]);
        *h[i] = NULL;
    }
    ws->cap_N = 0;
    ws->saved_layers = 0;
}

void lrsa_workspace_free(lrsa_workspace *ws) {
    if (!ws) return;
    free_buffers(ws);
    lrsa_tape_free(&ws->tape);
    lrsa_tape_free(&ws->inner);
    for (int i = 0; i < ws->n_sel; i++) dfree(ws, ws->sel[i]);
    free(ws->sel);
    free(ws->sel_cap);
    free(ws);
}

/* Makes sure the buffers hold N rows for this model; reallocates only when they must grow, so
 * a training loop with a fixed batch shape allocates once (and a planned workspace never). */
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
    LRSA_CHECK(!ws->planned,
               "the %s workspace was planned for %lld tokens (%d activation sets, %d saved "
               "inputs) and this call needs %lld (%d, %d): allocating now would allocate "
               "inside a step",
               ws->ops->name, (long long)ws->cap_N, ws->n_acts, ws->saved_layers, (long long)N,
               n_acts, saved_layers);
    int64_t cap = same_shape && ws->cap_N > N ? ws->cap_N : N;
    if (same_shape && ws->n_acts > n_acts) n_acts = ws->n_acts;
    if (same_shape && ws->saved_layers > saved_layers) saved_layers = ws->saved_layers;
    free_buffers(ws);
    const size_t A = ws->ops->act_bytes;
    ws->C = C, ws->QKV = QKV, ws->HD = HD, ws->I = I;
    memcpy(ws->lora_cols, lora_cols, sizeof lora_cols);
    ws->cap_N = cap;
    ws->n_acts = n_acts;
    ws->acts = lrsa_calloc((size_t)n_acts, sizeof *ws->acts);
    for (int i = 0; i < n_acts; i++) {
        layer_acts *a = &ws->acts[i];
        a->xin = abuf(ws, cap * C, A);
        a->rstd1 = abuf(ws, cap, 4);
        a->h1 = abuf(ws, cap * C, A);
        a->qkv = abuf(ws, cap * QKV, A);
        a->att = abuf(ws, cap * HD, A);
        a->lse = abuf(ws, cap * Hq, 4);
        a->xmid = abuf(ws, cap * C, A);
        a->rstd2 = abuf(ws, cap, 4);
        a->h2 = abuf(ws, cap * C, A);
        a->gu = abuf(ws, cap * 2 * I, A);
        a->act = abuf(ws, cap * I, A);
        for (int s = 0; s < LRSA_LORA_NUM_SITES; s++)
            if (lora_cols[s]) a->lora_u[s] = abuf(ws, cap * lora_cols[s], A);
    }
    if (m->lora) {
        int64_t widest = C > HD ? C : HD;
        if (I > widest) widest = I;
        ws->lora.t = abuf(ws, cap * LRSA_LORA_MAX_GROUPS * m->lora->cfg.rank, A);
        if (m->lora->cfg.dropout > 0) ws->lora.xd = abuf(ws, cap * widest, A);
    }
    ws->saved_layers = saved_layers;
    if (saved_layers) ws->saved_xin = abuf(ws, (int64_t)saved_layers * cap * C, A);
    void **big[] = {&ws->x, &ws->tmp, &ws->xrec, &ws->dx, &ws->dh};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) *big[i] = abuf(ws, cap * C, A);
    ws->dqkv = abuf(ws, cap * QKV, A);
    ws->datt = abuf(ws, cap * HD, A);
    ws->dgu = abuf(ws, cap * 2 * I, A);
    ws->dact = abuf(ws, cap * I, A);
    ws->loss_w = abuf(ws, cap, 4);
    ws->nll_rows = abuf(ws, cap, 4);
    ws->ids = abuf(ws, cap, 4);
    ws->pos = abuf(ws, cap, 4);
    ws->targets = abuf(ws, cap, 4);
    ws->h_loss_w = lrsa_malloc(sizeof(float) * (size_t)cap);
    ws->h_nll = lrsa_malloc(sizeof(float) * (size_t)cap);
    ws->h_pos = lrsa_malloc(sizeof(int32_t) * (size_t)cap);
    ws->h_targets = lrsa_malloc(sizeof(int32_t) * (size_t)cap);
}

/* The LagKV selection buffer of every layer, sized for B sequences of T tokens. */
static void ws_ensure_sel(lrsa_workspace *ws, int layers, int B, int T, int Hkv,
                          const lrsa_lagkv_params *p) {
    size_t need = (size_t)B * Hkv * (size_t)lrsa_lagkv_num_scored(T, p) * (size_t)lrsa_lagkv_k(p);
    if (need == 0) need = 1;
    if (ws->n_sel < layers) {
        ws->sel = lrsa_realloc(ws->sel, (size_t)layers * sizeof *ws->sel);
        ws->sel_cap = lrsa_realloc(ws->sel_cap, (size_t)layers * sizeof(size_t));
        for (int i = ws->n_sel; i < layers; i++) {
            ws->sel[i] = NULL;
            ws->sel_cap[i] = 0;
        }
        ws->n_sel = layers;
    }
    for (int l = 0; l < layers; l++) {
        if (ws->sel_cap[l] >= need) continue;
        LRSA_CHECK(!ws->freeze_sel, "frozen selection does not fit this call");
        LRSA_CHECK(!ws->planned, "the LagKV selection buffers were planned for fewer tokens");
        dfree(ws, ws->sel[l]);
        ws->sel[l] = abuf(ws, (int64_t)need, sizeof(int32_t));
        ws->sel_cap[l] = need;
    }
}

void lrsa_workspace_reserve(lrsa_workspace *ws, const lrsa_model *m, int B, int T,
                            const lrsa_attn_config *attn, int recompute) {
    const int Ln = m->cfg.num_hidden_layers;
    ws->planned = 0;
    ws_ensure(ws, m, (int64_t)B * T, recompute ? 1 : Ln, recompute ? Ln : 0);
    if (attn->mode == LRSA_ATTN_LRSA)
        ws_ensure_sel(ws, Ln, B, T, m->cfg.num_key_value_heads, &attn->lagkv);
    ws->planned = 1;
}

typedef struct fwd_args {
    lrsa_model *m;
    lrsa_workspace *ws;
    int B, T;
    lrsa_attn_config attn;
    int train; /* a training pass: LoRA dropout on (also in the forward of a recomputed layer) */
    int recomputing; /* the forward of a recomputed layer (its salience was already counted) */
} fwd_args;

/* A base weight's gradient, or NULL (not wanted, absent, or frozen under an adapter). */
static float *grad_of(const fwd_args *f, int idx, int want) {
    if (!want || idx < 0 || f->m->lora) return NULL;
    if (f->ws->grad) return f->ws->grad + f->m->table.desc[idx].offset;
    return lrsa_table_ptr(&f->m->table, LRSA_ROLE_GRAD, idx);
}
/* A non-matrix weight (norms, biases, embedding, LM head): the device's act-typed copy when the
 * workspace has one, else the host's fp32 (a bf16-stored base keeps these in fp32). */
static const void *param_of(const fwd_args *f, int idx) {
    if (idx < 0) return NULL;
    if (f->ws->param)
        return (const char *)f->ws->param +
               (size_t)f->m->table.desc[idx].offset * f->ws->ops->act_bytes;
    return lrsa_model_param(f->m, idx);
}
/* Element i of an act-typed buffer. */
static void *at(const lrsa_workspace *ws, void *p, int64_t i) {
    return (char *)p + (size_t)i * ws->ops->act_bytes;
}

/* A bf16 base (model/base_bf16.h) widens each linear op's matrix into the store's one scratch
 * right before the op; this tape entry, recorded after the op's own, runs just before the op's
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

/* The matrix of a linear op starting at tensor idx (numel elements: a fused op spans q, k, v or
 * gate, up): the device's copy, the host's fp32, or a bf16 base's widened into its scratch. */
static const void *weight_of(const fwd_args *f, int idx, int64_t numel) {
    if (f->ws->param || !f->m->base16) return param_of(f, idx);
    return lrsa_model_linear_weight(f->m, idx, numel, NULL);
}

/* One of a layer's four linear ops, its matrix starting at tensor w_idx: the plain op, or with
 * adapters on it the fused LoRA op (the base weight then frozen: dw and db are NULL). u: the
 * layer's saved adapter input. */
static void proj(const fwd_args *f, int l, lrsa_lora_site site, void *u, lrsa_tape *tp, void *y,
                 const void *x, int w_idx, const void *b, int64_t N, int in, int out, void *dy,
                 void *dx, float *dw, float *db) {
    const lrsa_device_ops *ops = f->ws->ops;
    lrsa_lora *a = f->m->lora;
    lrsa_lora_spec s;
    int ia, ib;
    const int64_t numel = (int64_t)out * in;
    const void *w = weight_of(f, w_idx, numel);
    if (!a || !lrsa_lora_site_spec(a, &f->m->cfg, l, site, f->train, &s, &ia, &ib)) {
        lrsa_op_linear(ops, tp, y, x, w, b, N, in, out, dy, dx, dw, db);
    } else {
        /* the adapter's weights live in its host table: CPU only (docs/CUDA.md) */
        LRSA_CHECK(ops->lora_linear_fwd && !f->ws->param,
                   "(a LoRA adapter is attached and the %s op table has no LoRA op)", ops->name);
        const int g = tp != NULL;
        lrsa_op_lora_linear(ops, tp, y, u, x, w, b, lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ia),
                            lrsa_table_ptr(&a->table, LRSA_ROLE_PARAM, ib), &s, N, in, out, dy, dx,
                            g ? lrsa_table_ptr(&a->table, LRSA_ROLE_GRAD, ia) : NULL,
                            g ? lrsa_table_ptr(&a->table, LRSA_ROLE_GRAD, ib) : NULL, &f->ws->lora);
    }
    if (tp && f->m->base16) {
        widen_ctx *c = lrsa_tape_push(tp, "widen_base", widen_bwd, sizeof *c);
        *c = (widen_ctx){f->m, w_idx, numel};
    }
}

/* The salience term of one layer: its value counted once per forward, and a tape entry that
 * adds its gradient to the post-RoPE dK and dV. Recorded before the attention's entry, so its
 * backward runs after the attention backward has written dqkv and before the RoPE backward. */
typedef struct salience_ctx {
    const float *qkv;
    float *dqkv;
    const uint8_t *needle;
    lrsa_lagkv_params p;
    int T, Hkv, D;
    int64_t HD, QKV;
    double g;
} salience_ctx;

static void salience_bwd(void *p) {
    salience_ctx *c = p;
    lrsa_lagkv_salience_layer(c->qkv + c->HD, c->qkv + c->HD + (int64_t)c->Hkv * c->D, c->QKV, c->T,
                              c->Hkv, c->D, &c->p, c->needle, c->g, c->dqkv + c->HD,
                              c->dqkv + c->HD + (int64_t)c->Hkv * c->D);
}

static void salience(const fwd_args *f, const float *qkv, lrsa_tape *tp) {
    lrsa_workspace *ws = f->ws;
    const lrsa_model_config *c = &f->m->cfg;
    const int Hkv = c->num_key_value_heads, D = c->head_dim;
    const int64_t HD = (int64_t)c->num_attention_heads * D, QKV = HD + 2 * (int64_t)Hkv * D;
    LRSA_CHECK(f->B == 1, "the salience loss takes one sequence per call (B = %d)", f->B);
    const int terms = lrsa_lagkv_salience_terms(ws->sal_needle, f->T, &ws->sal_p);
    if (terms == 0) return;
    if (!f->recomputing) {
        ws->sal_sum +=
            lrsa_lagkv_salience_layer(qkv + HD, qkv + HD + (int64_t)Hkv * D, QKV, f->T, Hkv, D,
                                      &ws->sal_p, ws->sal_needle, 0.0, NULL, NULL);
        ws->sal_terms += Hkv * terms;
    }
    if (!tp) return;
    salience_ctx *s = lrsa_tape_push(tp, "salience", salience_bwd, sizeof *s);
    *s = (salience_ctx){qkv, ws->dqkv, ws->sal_needle, ws->sal_p, f->T, Hkv, D, HD, QKV, 0.0};
    s->g = ws->sal_scale / ((double)c->num_hidden_layers * Hkv * terms);
}

/* Runs layer l on the residual stream x (updated in place), saving activations in a and
 * recording backward calls on tp when non-NULL. */
static void layer_forward(const fwd_args *f, int l, layer_acts *a, void *x, lrsa_tape *tp) {
    lrsa_model *m = f->m;
    lrsa_workspace *ws = f->ws;
    const lrsa_device_ops *ops = ws->ops;
    const lrsa_model_config *c = &m->cfg;
    const lrsa_layer_index *L = &m->layers[l];
    const int B = f->B, T = f->T, C = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
              Hkv = c->num_key_value_heads, I = c->intermediate_size;
    const int64_t N = (int64_t)B * T, QKV = (int64_t)(Hq + 2 * Hkv) * D, HD = (int64_t)Hq * D;
    const int g = tp != NULL;
    const float eps = c->rms_norm_eps;
    const size_t NC = (size_t)(N * C) * ops->act_bytes;

    if (a->xin != x) ops->copy(ops->ctx, a->xin, x, NC);
    lrsa_op_rmsnorm(ops, tp, a->h1, a->rstd1, a->xin, param_of(f, L->input_norm), N, C, eps, ws->dh,
                    ws->dx, grad_of(f, L->input_norm, g));
    proj(f, l, LRSA_LORA_SITE_QKV, a->lora_u[0], tp, a->qkv, a->h1, L->q, param_of(f, L->q_bias), N,
         C, (int)QKV, ws->dqkv, ws->dh, grad_of(f, L->q, g), grad_of(f, L->q_bias, g));
    lrsa_op_rope(ops, tp, a->qkv, ws->pos, m->inv_freq, N, Hq + Hkv, D, QKV, ws->dqkv);

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
        ws_ensure_sel(ws, c->num_hidden_layers, B, T, Hkv, p);
        /* no gradient flows through the selection (lagkv-lrsa.md) */
        if (!ws->freeze_sel)
            ops->lagkv_select(ops->ctx, ws->sel[l], at(ws, a->qkv, HD),
                              at(ws, a->qkv, HD + (int64_t)Hkv * D), B, T, Hkv, D, QKV, p);
        sel = ws->sel[l];
    }
    /* CPU only: device: cuda refuses attention.salience (train/config.c) */
    if (ws->sal_needle) salience(f, (const float *)a->qkv, tp);
    lrsa_op_attention(ops, tp, a->att, a->lse, a->qkv, &d, sel, &f->attn.lagkv, ws->datt, ws->dqkv);
    proj(f, l, LRSA_LORA_SITE_O, a->lora_u[1], tp, ws->tmp, a->att, L->o, param_of(f, L->o_bias), N,
         (int)HD, C, ws->dx, ws->datt, grad_of(f, L->o, g), grad_of(f, L->o_bias, g));
    ops->add(ops->ctx, x, x, ws->tmp, N * C); /* gradient: dx passes through in place */
    ops->copy(ops->ctx, a->xmid, x, NC);

    lrsa_op_rmsnorm(ops, tp, a->h2, a->rstd2, a->xmid, param_of(f, L->post_norm), N, C, eps, ws->dh,
                    ws->dx, grad_of(f, L->post_norm, g));
    proj(f, l, LRSA_LORA_SITE_GATE_UP, a->lora_u[2], tp, a->gu, a->h2, L->gate, NULL, N, C, 2 * I,
         ws->dgu, ws->dh, grad_of(f, L->gate, g), NULL);
    lrsa_op_swiglu(ops, tp, a->act, a->gu, N, I, ws->dact, ws->dgu);
    proj(f, l, LRSA_LORA_SITE_DOWN, a->lora_u[3], tp, ws->tmp, a->act, L->down, NULL, N, I, C,
         ws->dx, ws->dact, grad_of(f, L->down, g), NULL);
    ops->add(ops->ctx, x, x, ws->tmp, N * C);
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
    void *own_xin = a->xin;
    a->xin = at(ws, ws->saved_xin, (int64_t)r->layer * NC);
    ws->ops->copy(ws->ops->ctx, ws->xrec, a->xin, (size_t)NC * ws->ops->act_bytes);
    layer_forward(&r->f, r->layer, a, ws->xrec, &ws->inner);
    lrsa_tape_backward(&ws->inner);
    a->xin = own_xin;
}

/* The host half of a forward: buffers (planned ones never grow here), the token ids checked,
 * the positions, and the uploads of both into the workspace's device buffers. */
static void stage_tokens(fwd_args *f, const int32_t *ids, int recompute, int grad) {
    lrsa_model *m = f->m;
    lrsa_workspace *ws = f->ws;
    const lrsa_device_ops *ops = ws->ops;
    const lrsa_model_config *c = &m->cfg;
    const int64_t N = (int64_t)f->B * f->T;
    const int Ln = c->num_hidden_layers;
    const int shared = recompute || !grad;
    ws_ensure(ws, m, N, shared ? 1 : Ln, recompute && grad ? Ln : 0);
    for (int64_t i = 0; i < N; i++) {
        LRSA_CHECK(ids[i] >= 0 && ids[i] < c->vocab_size, "token id %d at %lld outside [0, %d)",
                   ids[i], (long long)i, c->vocab_size);
        ws->h_pos[i] = (int32_t)(i % f->T);
    }
    LRSA_CHECK(!grad || !m->base16 || m->lora,
               "a base stored in bf16 is frozen: attach a LoRA adapter to train on it");
    LRSA_CHECK(!m->base16 || !ws->param, "a base stored in bf16 runs on the CPU only");
    ops->upload(ops->ctx, ws->ids, ids, sizeof(int32_t) * (size_t)N);
    ops->upload(ops->ctx, ws->pos, ws->h_pos, sizeof(int32_t) * (size_t)N);
}

/* The targets and loss weights (row t predicts token t+1 with that token's weight: the HF label
 * shift; the last row of each sequence predicts nothing), uploaded. Returns the number of rows
 * with a nonzero weight. */
static int64_t stage_targets(lrsa_workspace *ws, const int32_t *ids, const float *loss_weight,
                             int B, int T) {
    const lrsa_device_ops *ops = ws->ops;
    const int64_t N = (int64_t)B * T;
    int64_t active = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int64_t i = (int64_t)b * T + t;
            int last = t == T - 1;
            ws->h_targets[i] = last ? 0 : ids[i + 1];
            ws->h_loss_w[i] = last ? 0.f : loss_weight[i + 1];
            active += ws->h_loss_w[i] != 0.f;
        }
    ops->upload(ops->ctx, ws->targets, ws->h_targets, sizeof(int32_t) * (size_t)N);
    ops->upload(ops->ctx, ws->loss_w, ws->h_loss_w, sizeof(float) * (size_t)N);
    return active;
}

/* The device half of a forward, from the staged ids and positions. */
static void run_layers(fwd_args *f, int recompute, lrsa_tape *tp) {
    lrsa_model *m = f->m;
    lrsa_workspace *ws = f->ws;
    const lrsa_device_ops *ops = ws->ops;
    const lrsa_model_config *c = &m->cfg;
    const int64_t N = (int64_t)f->B * f->T, C = c->hidden_size;
    const int Ln = c->num_hidden_layers;
    const int shared = recompute || tp == NULL;
    ws->sel_live = f->attn.mode == LRSA_ATTN_LRSA;
    ws->sal_sum = 0.0;
    ws->sal_terms = 0;
    if (tp && !ws->grad) lrsa_table_alloc(m->lora ? &m->lora->table : &m->table, LRSA_ROLE_GRAD);
    need_weights(ws, Ln > 0 ? layer_offset(m, 0) : m->table.desc[m->final_norm].offset);
    lrsa_op_embedding(ops, tp, ws->x, ws->ids, param_of(f, m->embed), N, (int)C, c->vocab_size,
                      ws->dx, grad_of(f, m->embed, tp != NULL));
    for (int l = 0; l < Ln; l++) {
        need_weights(ws, l + 1 < Ln ? layer_offset(m, l + 1) : m->table.desc[m->final_norm].offset);
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
            void *own_xin = a->xin;
            a->xin = at(ws, ws->saved_xin, (int64_t)l * N * C);
            layer_forward(f, l, a, ws->x, NULL);
            a->xin = own_xin;
            recompute_ctx *r = lrsa_tape_push(tp, "layer_recompute", recompute_bwd, sizeof *r);
            r->f = *f;
            r->f.recomputing = 1;
            r->layer = l;
        }
    }
}

static void run_forward(fwd_args *f, const int32_t *ids, int recompute, lrsa_tape *tp) {
    stage_tokens(f, ids, recompute, tp != NULL);
    run_layers(f, recompute, tp);
}

/* The backward after the loss, with the readiness calls around it. */
static void run_backward(const lrsa_model *m, lrsa_workspace *ws, lrsa_tape *tp) {
    if (ws->grads_ready) ws->grads_ready(ws->grads_ready_ctx, m->table.desc[m->final_norm].offset);
    lrsa_tape_backward(tp);
    if (ws->grads_ready) ws->grads_ready(ws->grads_ready_ctx, 0);
}

double lrsa_model_forward_backward(lrsa_model *m, lrsa_workspace *ws, const int32_t *ids,
                                   const float *loss_weight, int B, int T,
                                   const lrsa_attn_config *attn, int recompute, int want_grad,
                                   float *nll_out) {
    LRSA_CHECK(B > 0 && T > 0);
    const lrsa_model_config *c = &m->cfg;
    const lrsa_device_ops *ops = ws->ops;
    fwd_args f = {m, ws, B, T, *attn, want_grad, 0};
    lrsa_tape *tp = want_grad ? &ws->tape : NULL;
    if (tp) lrsa_tape_reset(tp);
    run_forward(&f, ids, recompute, tp);
    const int64_t N = (int64_t)B * T;
    stage_targets(ws, ids, loss_weight, B, T);
    need_weights(ws, m->table.numel); /* the final norm, the LM head (or the tied embedding) */
    double loss = ops->lm_head_loss(
        ops->ctx, ws->nll_rows, tp ? ws->dx : NULL, grad_of(&f, m->final_norm, tp != NULL),
        grad_of(&f, m->lm_head, tp != NULL), ws->x, param_of(&f, m->final_norm),
        param_of(&f, m->lm_head), ws->targets, ws->loss_w, N, c->hidden_size, c->vocab_size,
        c->rms_norm_eps);
    if (ws->sal_terms > 0) loss += ws->sal_scale * ws->sal_sum / ws->sal_terms;
    if (tp) run_backward(m, ws, tp);
    if (nll_out) {
        ops->download(ops->ctx, ws->h_nll, ws->nll_rows, sizeof(float) * (size_t)N);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                nll_out[(int64_t)b * T + t] = t == 0 ? 0.f : ws->h_nll[(int64_t)b * T + t - 1];
    }
    return loss;
}

int64_t lrsa_model_stage(lrsa_model *m, lrsa_workspace *ws, const int32_t *ids,
                         const float *loss_weight, int B, int T, int recompute) {
    LRSA_CHECK(B > 0 && T > 0);
    LRSA_CHECK(ws->ops->lm_head_loss_acc && !ws->sal_needle && !m->lora,
               "(the staged step needs a device table, no salience loss and no LoRA)");
    fwd_args f = {m, ws, B, T, {0}, 1, 0};
    stage_tokens(&f, ids, recompute, 1);
    return stage_targets(ws, ids, loss_weight, B, T);
}

void lrsa_model_forward_backward_staged(lrsa_model *m, lrsa_workspace *ws, int B, int T,
                                        const lrsa_attn_config *attn, int recompute,
                                        int64_t n_active, double *loss_acc, int32_t *fault) {
    const lrsa_model_config *c = &m->cfg;
    const lrsa_device_ops *ops = ws->ops;
    fwd_args f = {m, ws, B, T, *attn, 1, 0};
    lrsa_tape *tp = &ws->tape;
    lrsa_tape_reset(tp);
    run_layers(&f, recompute, tp);
    need_weights(ws, m->table.numel);
    ops->lm_head_loss_acc(
        ops->ctx, loss_acc, fault, n_active, ws->nll_rows, ws->dx, grad_of(&f, m->final_norm, 1),
        grad_of(&f, m->lm_head, 1), ws->x, param_of(&f, m->final_norm), param_of(&f, m->lm_head),
        ws->targets, ws->loss_w, (int64_t)B * T, c->hidden_size, c->vocab_size, c->rms_norm_eps);
    run_backward(m, ws, tp);
}

void lrsa_model_logits(lrsa_model *m, lrsa_workspace *ws, const int32_t *ids, int B, int T,
                       const lrsa_attn_config *attn, float *logits) {
    LRSA_CHECK(B > 0 && T > 0);
    LRSA_CHECK(ws->ops->device == LRSA_CPU && !ws->param,
               "(full logits are computed on the CPU workspace only)");
    const lrsa_model_config *c = &m->cfg;
    fwd_args f = {m, ws, B, T, *attn, 0, 0};
    run_forward(&f, ids, 0, NULL);
    need_weights(ws, m->table.numel);
    lrsa_lm_head_logits_cpu(logits, ws->x, param_of(&f, m->final_norm), param_of(&f, m->lm_head),
                            (int64_t)B * T, c->hidden_size, c->vocab_size, c->rms_norm_eps);
}
