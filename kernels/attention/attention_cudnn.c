/* cuDNN fused attention (SDPA) behind our attention op signature (attention_cudnn.h).
 * Compiled, never run on a GPU.
 *
 * The graphs are the composite ones cuDNN's runtime-fusion flash-attention engines recognise
 * (the shape the cudnn-frontend library lowers its SDPA node to, rebuilt here in C with the
 * backend API): matmul, pointwise, reduction and reshape operations on [B, H, S, D]-shaped
 * tensors whose strides describe our token-major layout, so nothing is copied or transposed.
 *
 * Forward:  S = Q K^T (fp32), S *= scale, causal mask (row index >= column index, else -inf:
 *           GEN_INDEX on axes 2 and 3, CMP_GE, BINARY_SELECT), m = max_row S, E = exp(S - m),
 *           l = sum_row E, stats = m + log l (our lse), P = E / l (bf16), O = P V.
 * Backward: delta = rowsum(dO * O) (a non-virtual tensor: our delta workspace),
 *           P = exp(mask(scale Q K^T - stats)), dV = P^T dO, dP = dO V^T,
 *           dS = scale * P * (dP - delta), dK = dS^T Q, dQ = dS K (through an fp32 accumulator
 *           in the workspace, then converted). With GQA (Hq > Hkv) dK and dV come from
 *           per-query-head products reduced (ADD) over each group to the Hkv heads.
 * K^T and V^T are K and V with the last two dimensions and strides swapped; P^T and dS^T are
 * reshape operations. The scale, 1 and -inf are fp32 scalars passed by value. */
#include "kernels/attention/attention_cudnn.h"

#ifdef LRSA_HAVE_CUDNN
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "kernels/device/cuda_check.h"
#include "kernels/device/cudnn_graph.h"

/* Tensor uids bound at execution (virtual tensors are numbered from 1000 by the graph). */
enum {
    UID_Q = 1,
    UID_K,
    UID_V,
    UID_O,
    UID_STATS,
    UID_SCALE,
    UID_NEG_INF,
    UID_DO,
    UID_DQ,
    UID_DK,
    UID_DV,
    UID_DELTA,
    UID_DQ_ACCUM,
    UID_ONE,
};

#define CACHE_MAX 32

/* The plans of one shape. */
typedef struct shape_plans {
    lrsa_attn_dims d; /* scale ignored: it is bound at execution */
    lrsa_dnn_graph fwd, bwd;
    size_t dq_accum_bytes; /* the backward's fp32 dQ accumulator, at the workspace's start */
    size_t bytes;          /* workspace of the larger call */
} shape_plans;

struct lrsa_attention_cudnn {
    cudnnHandle_t handle;
    cudaStream_t stream;
    float neg_inf;
    void *ws;
    size_t ws_bytes;
    shape_plans *cache[CACHE_MAX];
    int n_cached;
};

static size_t round_up(size_t n) {
    return (n + 255) / 256 * 256;
}

/* The four tensors' shapes in the [B, H, S, D] view cuDNN takes, over our token-major rows. */
typedef struct views {
    int64_t q[4], kv[4], kt[4], o[4], st_q[4], st_kv[4], st_kt[4], st_o[4];
    int64_t scores[4], st_scores[4], scores_t_st[4]; /* [B, Hq, T, T] and its transpose */
    int64_t row[4], st_row[4];                       /* [B, Hq, T, 1]: stats, delta */
    int64_t full_kv[4], st_full_kv[4];               /* [B, Hq, T, D]: per-query-head dK, dV */
} views;

static views make_views(const lrsa_attn_dims *d) {
    const int64_t B = d->B, T = d->T, Hq = d->Hq, Hk = d->Hkv, D = d->D;
    views v = {
        .q = {B, Hq, T, D},
        .st_q = {T * d->q_stride, D, d->q_stride, 1},
        .kv = {B, Hk, T, D},
        .st_kv = {T * d->kv_stride, D, d->kv_stride, 1},
        .kt = {B, Hk, D, T},
        .st_kt = {T * d->kv_stride, D, 1, d->kv_stride},
        .o = {B, Hq, T, D},
        .st_o = {T * d->o_stride, D, d->o_stride, 1},
        .scores = {B, Hq, T, T},
        .st_scores = {Hq * T * T, T * T, T, 1},
        .scores_t_st = {Hq * T * T, T * T, 1, T},
        .row = {B, Hq, T, 1},
        .st_row = {Hq * T, T, 1, 1},
        .full_kv = {B, Hq, T, D},
        .st_full_kv = {Hq * T * D, T * D, D, 1},
    };
    return v;
}

/* x * scale, then the causal mask: the scores a query may not see become -inf. */
static lrsa_dnn_tensor scaled_causal(lrsa_dnn_graph *g, const views *v, lrsa_dnn_tensor s,
                                     const lrsa_dnn_tensor *scale, const lrsa_dnn_tensor *stats,
                                     const lrsa_dnn_tensor *neg_inf) {
    lrsa_dnn_tensor scaled = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, &s, scale, NULL, &scaled, -1);
    if (stats) { /* the backward subtracts the saved logsumexp before masking, as cuDNN expects */
        lrsa_dnn_tensor shifted = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
        lrsa_dnn_pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, &scaled, stats, NULL, &shifted,
                           -1);
        scaled = shifted;
    }
    lrsa_dnn_tensor row = lrsa_dnn_tensor4(g, CUDNN_DATA_INT32, 0, v->scores, v->st_scores);
    lrsa_dnn_tensor col = lrsa_dnn_tensor4(g, CUDNN_DATA_INT32, 0, v->scores, v->st_scores);
    lrsa_dnn_tensor keep = lrsa_dnn_tensor4(g, CUDNN_DATA_BOOLEAN, 0, v->scores, v->st_scores);
    lrsa_dnn_tensor masked = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, &scaled, NULL, NULL, &row,
                       2);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, &scaled, NULL, NULL, &col,
                       3);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, &row, &col, NULL, &keep, -1);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, &scaled, neg_inf, &keep,
                       &masked, -1);
    return masked;
}

static int build_forward(lrsa_dnn_graph *g, const views *v, lrsa_err *e) {
    lrsa_dnn_tensor q = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_Q, v->q, v->st_q);
    lrsa_dnn_tensor kt = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_K, v->kt, v->st_kt);
    lrsa_dnn_tensor val = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_V, v->kv, v->st_kv);
    lrsa_dnn_tensor o = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_O, v->o, v->st_o);
    lrsa_dnn_tensor stats = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, UID_STATS, v->row, v->st_row);
    lrsa_dnn_tensor scale = lrsa_dnn_scalar(g, UID_SCALE);
    lrsa_dnn_tensor neg_inf = lrsa_dnn_scalar(g, UID_NEG_INF);

    lrsa_dnn_tensor s = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_matmul(g, &q, &kt, &s);
    lrsa_dnn_tensor masked = scaled_causal(g, v, s, &scale, NULL, &neg_inf);
    /* softmax with its statistics: m, exp(s - m), l, stats = m + log l, P = exp / l */
    lrsa_dnn_tensor m = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->row, v->st_row);
    lrsa_dnn_reduction(g, CUDNN_REDUCE_TENSOR_MAX, &masked, &m);
    lrsa_dnn_tensor centred = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, &masked, &m, NULL, &centred, -1);
    lrsa_dnn_tensor ex = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, &centred, NULL, NULL, &ex, -1);
    lrsa_dnn_tensor l = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->row, v->st_row);
    lrsa_dnn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, &ex, &l);
    lrsa_dnn_tensor log_l = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->row, v->st_row);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_LOG, CUDNN_DATA_FLOAT, &l, NULL, NULL, &log_l, -1);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, &m, &log_l, NULL, &stats, -1);
    /* P is the second product's A operand: bf16, like Q */
    lrsa_dnn_tensor p = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, &ex, &l, NULL, &p, -1);
    lrsa_dnn_matmul(g, &p, &val, &o);
    return lrsa_dnn_graph_plan(g, "attention forward", e);
}

/* c = a b, reduced over each GQA group to `out` when the query heads outnumber the KV heads. */
static void product_to_kv_heads(lrsa_dnn_graph *g, const views *v, int gqa,
                                const lrsa_dnn_tensor *a, const lrsa_dnn_tensor *b,
                                const lrsa_dnn_tensor *out) {
    if (!gqa) {
        lrsa_dnn_matmul(g, a, b, out);
        return;
    }
    lrsa_dnn_tensor full = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, 0, v->full_kv, v->st_full_kv);
    lrsa_dnn_matmul(g, a, b, &full);
    lrsa_dnn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, &full, out);
}

static int build_backward(lrsa_dnn_graph *g, const views *v, int gqa, lrsa_err *e) {
    lrsa_dnn_tensor q = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_Q, v->q, v->st_q);
    lrsa_dnn_tensor kt = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_K, v->kt, v->st_kt);
    lrsa_dnn_tensor vt = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_V, v->kt, v->st_kt);
    lrsa_dnn_tensor o = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_O, v->o, v->st_o);
    lrsa_dnn_tensor dout = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_DO, v->o, v->st_o);
    lrsa_dnn_tensor stats = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, UID_STATS, v->row, v->st_row);
    lrsa_dnn_tensor dq = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_DQ, v->q, v->st_q);
    lrsa_dnn_tensor dk = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_DK, v->kv, v->st_kv);
    lrsa_dnn_tensor dv = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, UID_DV, v->kv, v->st_kv);
    lrsa_dnn_tensor delta = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, UID_DELTA, v->row, v->st_row);
    lrsa_dnn_tensor dq_acc =
        lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, UID_DQ_ACCUM, v->full_kv, v->st_full_kv);
    lrsa_dnn_tensor scale = lrsa_dnn_scalar(g, UID_SCALE);
    lrsa_dnn_tensor neg_inf = lrsa_dnn_scalar(g, UID_NEG_INF);
    lrsa_dnn_tensor one = lrsa_dnn_scalar(g, UID_ONE);

    /* delta = rowsum(dO * O) (the elementwise product in a [B, Hq, T, D] view whose layout is
     * cuDNN's choice: it is virtual) */
    const int64_t Hq = v->o[1], T = v->o[2], D = v->o[3];
    const int64_t prod_st[4] = {Hq * T * D, T * D, Hq * D, 1};
    lrsa_dnn_tensor prod = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->o, prod_st);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, &dout, &o, NULL, &prod, -1);
    lrsa_dnn_tensor rowsum = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->row, v->st_row);
    lrsa_dnn_reduction(g, CUDNN_REDUCE_TENSOR_ADD, &prod, &rowsum);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, &rowsum, &one, NULL, &delta, -1);

    /* P = exp(mask(scale Q K^T - stats)) */
    lrsa_dnn_tensor s = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_matmul(g, &q, &kt, &s);
    lrsa_dnn_tensor masked = scaled_causal(g, v, s, &scale, &stats, &neg_inf);
    lrsa_dnn_tensor p = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, &masked, NULL, NULL, &p, -1);

    /* dV = P^T dO */
    lrsa_dnn_tensor pt = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, 0, v->scores, v->scores_t_st);
    lrsa_dnn_reshape(g, &p, &pt);
    product_to_kv_heads(g, v, gqa, &pt, &dout, &dv);

    /* dS = scale * P * (dO V^T - delta) */
    lrsa_dnn_tensor dp = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_matmul(g, &dout, &vt, &dp);
    lrsa_dnn_tensor dp_c = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, &dp, &delta, NULL, &dp_c, -1);
    lrsa_dnn_tensor ds_u = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, &dp_c, &p, NULL, &ds_u, -1);
    lrsa_dnn_tensor ds = lrsa_dnn_tensor4(g, CUDNN_DATA_FLOAT, 0, v->scores, v->st_scores);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, &ds_u, &scale, NULL, &ds, -1);

    /* dK = dS^T Q */
    lrsa_dnn_tensor dst = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, 0, v->scores, v->scores_t_st);
    lrsa_dnn_reshape(g, &ds, &dst);
    product_to_kv_heads(g, v, gqa, &dst, &q, &dk);

    /* dQ = dS K, accumulated in fp32, then converted */
    lrsa_dnn_tensor k = lrsa_dnn_tensor4(g, CUDNN_DATA_BFLOAT16, 0, v->kv, v->st_kv);
    lrsa_dnn_reshape(g, &kt, &k);
    lrsa_dnn_matmul(g, &ds, &k, &dq_acc);
    lrsa_dnn_pointwise(g, CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, &dq_acc, NULL, NULL, &dq, -1);
    return lrsa_dnn_graph_plan(g, "attention backward", e);
}

static int same_shape(const lrsa_attn_dims *a, const lrsa_attn_dims *b) {
    return a->B == b->B && a->T == b->T && a->Hq == b->Hq && a->Hkv == b->Hkv && a->D == b->D &&
           a->q_stride == b->q_stride && a->kv_stride == b->kv_stride && a->o_stride == b->o_stride;
}

static int check_dims(const lrsa_attn_dims *d, lrsa_err *e) {
    if (d->D != 64 && d->D != 128)
        return lrsa_errorf(e, "attention.impl: cudnn: head dim %d (64 and 128 are supported)",
                           d->D);
    if (d->B < 1 || d->T < 1 || d->Hkv < 1 || d->Hq % d->Hkv)
        return lrsa_errorf(e, "attention.impl: cudnn: bad shape B %d T %d Hq %d Hkv %d", d->B, d->T,
                           d->Hq, d->Hkv);
    /* cuDNN's 16-byte alignment of every bf16 row */
    if (d->q_stride % 8 || d->kv_stride % 8 || d->o_stride % 8)
        return lrsa_errorf(e, "attention.impl: cudnn: row strides must be multiples of 8");
    return 0;
}

static shape_plans *find(lrsa_attention_cudnn *a, const lrsa_attn_dims *d) {
    for (int i = 0; i < a->n_cached; i++)
        if (same_shape(&a->cache[i]->d, d)) return a->cache[i];
    return NULL;
}

int lrsa_attention_cudnn_prepare(lrsa_attention_cudnn *a, const lrsa_attn_dims *d, size_t *bytes,
                                 lrsa_err *e) {
    shape_plans *sp = find(a, d);
    if (!sp) {
        if (check_dims(d, e)) return -1;
        if (a->n_cached == CACHE_MAX)
            return lrsa_errorf(e,
                               "attention.impl: cudnn: more than %d attention shapes in one "
                               "run (each needs its own cuDNN plan)",
                               CACHE_MAX);
        sp = lrsa_calloc(1, sizeof *sp);
        sp->d = *d;
        views v = make_views(d);
        lrsa_dnn_graph_init(&sp->fwd, a->handle);
        lrsa_dnn_graph_init(&sp->bwd, a->handle);
        if (build_forward(&sp->fwd, &v, e) || build_backward(&sp->bwd, &v, d->Hq != d->Hkv, e)) {
            lrsa_dnn_graph_free(&sp->fwd);
            lrsa_dnn_graph_free(&sp->bwd);
            free(sp);
            return lrsa_err_prefix(e, "attention.impl: cudnn: ");
        }
        sp->dq_accum_bytes =
            round_up(sizeof(float) * (size_t)d->B * (size_t)d->Hq * (size_t)d->T * (size_t)d->D);
        size_t fwd = (size_t)sp->fwd.workspace,
               bwd = sp->dq_accum_bytes + (size_t)sp->bwd.workspace;
        sp->bytes = fwd > bwd ? fwd : bwd;
        a->cache[a->n_cached++] = sp;
    }
    *bytes = sp->bytes;
    return 0;
}

int lrsa_attention_cudnn_check_graphs(const lrsa_attn_dims *d, int *fwd_ops, int *bwd_ops,
                                      lrsa_err *e) {
    if (check_dims(d, e)) return -1;
    views v = make_views(d);
    lrsa_dnn_graph fwd, bwd;
    lrsa_dnn_graph_init(&fwd, NULL);
    lrsa_dnn_graph_init(&bwd, NULL);
    int rc = build_forward(&fwd, &v, e) || build_backward(&bwd, &v, d->Hq != d->Hkv, e) ? -1 : 0;
    *fwd_ops = fwd.n_ops;
    *bwd_ops = bwd.n_ops;
    lrsa_dnn_graph_free(&fwd);
    lrsa_dnn_graph_free(&bwd);
    return rc;
}

lrsa_attention_cudnn *lrsa_attention_cudnn_create(void *stream, lrsa_err *e) {
    cudnnHandle_t h = NULL;
    cudnnStatus_t st = cudnnCreate(&h);
    if (st != CUDNN_STATUS_SUCCESS) {
        char last[1024] = "";
        cudnnGetLastErrorString(last, sizeof last);
        lrsa_errorf(e, "attention.impl: cudnn: cudnnCreate failed: %s%s%s", cudnnGetErrorString(st),
                    last[0] ? ": " : "", last);
        return NULL;
    }
    lrsa_attention_cudnn *a = lrsa_calloc(1, sizeof *a);
    a->handle = h;
    a->stream = (cudaStream_t)stream;
    CUDNN_CHECK(cudnnSetStream(h, a->stream));
    /* older cuDNN wanted the lowest float for masked scores, 9.10 on -inf (cudnn-frontend) */
    a->neg_inf = cudnnGetVersion() >= 91000 ? -INFINITY : -FLT_MAX;
    return a;
}

void lrsa_attention_cudnn_free(lrsa_attention_cudnn *a) {
    if (!a) return;
    for (int i = 0; i < a->n_cached; i++) {
        lrsa_dnn_graph_free(&a->cache[i]->fwd);
        lrsa_dnn_graph_free(&a->cache[i]->bwd);
        free(a->cache[i]);
    }
    CUDNN_CHECK(cudnnDestroy(a->handle));
    free(a);
}

void lrsa_attention_cudnn_set_workspace(lrsa_attention_cudnn *a, void *ws, size_t bytes) {
    a->ws = ws;
    a->ws_bytes = bytes;
}

/* The plans of d, prepared now if new, checked against the workspace the caller planned. */
static shape_plans *plans_for(lrsa_attention_cudnn *a, const lrsa_attn_dims *d) {
    size_t need = 0;
    lrsa_err e = {0};
    if (lrsa_attention_cudnn_prepare(a, d, &need, &e)) lrsa_fatal(__FILE__, __LINE__, "%s", e.msg);
    LRSA_CHECK(need <= a->ws_bytes,
               "(cuDNN attention needs %zu bytes of workspace for B %d T %d, the memory plan "
               "holds %zu: plan for the largest B and T)",
               need, d->B, d->T, a->ws_bytes);
    return find(a, d);
}

void lrsa_attention_forward_cudnn(lrsa_attention_cudnn *a, uint16_t *out, float *lse,
                                  const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                  const lrsa_attn_dims *d) {
    if (d->B == 0 || d->T == 0) return;
    shape_plans *sp = plans_for(a, d);
    float scale = d->scale, neg_inf = a->neg_inf;
    const int64_t uids[] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_NEG_INF};
    void *const ptrs[] = {(void *)q, (void *)k,      (void *)v,       out,
                          lse,       (void *)&scale, (void *)&neg_inf};
    lrsa_dnn_graph_execute(&sp->fwd, 7, uids, ptrs, a->ws);
}

void lrsa_attention_backward_cudnn(lrsa_attention_cudnn *a, uint16_t *dq, uint16_t *dk,
                                   uint16_t *dv, const uint16_t *dout, const uint16_t *q,
                                   const uint16_t *k, const uint16_t *v, const uint16_t *out,
                                   const float *lse, float *delta, const lrsa_attn_dims *d) {
    if (d->B == 0 || d->T == 0) return;
    LRSA_CHECK(dq && dk && dv, "(the cuDNN attention backward computes dq, dk and dv together)");
    shape_plans *sp = plans_for(a, d);
    float scale = d->scale, neg_inf = a->neg_inf, one = 1.0f;
    /* cuDNN >= 9.6 clears its dQ accumulator itself; earlier versions need it zeroed */
    CUDA_CHECK(cudaMemsetAsync(a->ws, 0, sp->dq_accum_bytes, a->stream));
    void *cudnn_ws = (char *)a->ws + sp->dq_accum_bytes;
    const int64_t uids[] = {UID_Q,        UID_K,     UID_V,       UID_O,  UID_DO,
                            UID_STATS,    UID_DQ,    UID_DK,      UID_DV, UID_DELTA,
                            UID_DQ_ACCUM, UID_SCALE, UID_NEG_INF, UID_ONE};
    void *const ptrs[] = {
        (void *)q, (void *)k, (void *)v, (void *)out, (void *)dout, (void *)lse,      dq,
        dk,        dv,        delta,     a->ws,       &scale,       (void *)&neg_inf, (void *)&one};
    lrsa_dnn_graph_execute(&sp->bwd, 14, uids, ptrs, cudnn_ws);
}
#else
typedef int lrsa_attention_cudnn_not_built; /* this build has no cuDNN */
#endif
