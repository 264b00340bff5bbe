/* LRSA attention on the CPU as gather + dense (../shared/docs/lagkv-lrsa.md section 5):
 * per (sequence, KV head) the sink and the selected rows are gathered into C; the queries of
 * partition c >= 2 attend to the unmasked prefix C[0 : S + k(c-1)] and the causal band
 * [start(P_{c-1}), i] through the tile engine's single online softmax. */
#include "kernels/lrsa_attention/lrsa_attention.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/attention/attention_tile.h"

/* Everything one (sequence b, KV head g) needs. */
typedef struct {
    const lrsa_attn_dims *d;
    int b, g, S, L, kk, ns;
    int64_t off;        /* offset of (b, t=0, g) in k/v/dk/dv */
    const int32_t *sel; /* [ns * kk] of this (b, g) */
    float *ck, *cv;     /* gathered [S + ns*kk, D] */
    float *dck, *dcv;   /* backward: their gradients */
} lrsa_head;

static void check_args(const lrsa_attn_dims *d, const lrsa_lagkv_params *p) {
    int grouped = d->Hkv > 0 && d->Hq >= d->Hkv && d->Hq / d->Hkv * d->Hkv == d->Hq;
    LRSA_CHECK(d->B >= 0 && d->T >= 0 && d->D > 0 && grouped, "(LRSA attention dims)");
    LRSA_CHECK(p->lag > 0 && p->sink >= 0 && p->keep > 0.0f && p->keep <= 1.0f,
               "(LagKV parameters must pass lrsa_lagkv_validate first)");
}

static int gathered_rows(const lrsa_head *hd) {
    return hd->S + hd->ns * hd->kk;
}
/* Only queries at or after S + 2L see the gathered prefix. */
static int prefix_used(const lrsa_head *hd) {
    return hd->d->T > hd->S + 2 * (int64_t)hd->L; /* (64-bit: L may be huge) */
}

/* Copies sink and selected rows of k and v into hd->ck, hd->cv (rows D floats apart). */
static void gather(lrsa_head *hd, const float *k, const float *v) {
    const lrsa_attn_dims *d = hd->d;
    if (!prefix_used(hd)) return; /* (and the sink may be longer than the sequence) */
    size_t row = sizeof(float) * (size_t)d->D;
    for (int t = 0; t < hd->S; t++) {
        memcpy(hd->ck + (int64_t)t * d->D, k + hd->off + t * d->kv_stride, row);
        memcpy(hd->cv + (int64_t)t * d->D, v + hd->off + t * d->kv_stride, row);
    }
    for (int j = 0; j < hd->ns; j++)
        for (int i = 0; i < hd->kk; i++) {
            int32_t pos = hd->sel[(int64_t)j * hd->kk + i];
            int lo = hd->S + j * hd->L;
            LRSA_CHECK(pos >= lo && pos < lo + hd->L,
                       "(a selected position lies outside its partition: sel must come "
                       "from lrsa_lagkv_select_cpu with the same T, S, L)");
            int64_t c = hd->S + (int64_t)j * hd->kk + i;
            memcpy(hd->ck + c * d->D, k + hd->off + pos * d->kv_stride, row);
            memcpy(hd->cv + c * d->D, v + hd->off + pos * d->kv_stride, row);
        }
}

/* Adds the gathered rows' gradients back onto dk, dv at their original positions; each
 * position occurs once in C, so this is a plain scatter. */
static void scatter_add(const lrsa_head *hd, float *dk, float *dv) {
    const lrsa_attn_dims *d = hd->d;
    if (!prefix_used(hd)) return;
    for (int c = 0; c < gathered_rows(hd); c++) {
        int64_t pos = c < hd->S ? c : hd->sel[c - hd->S];
        float *a = dk ? dk + hd->off + pos * d->kv_stride : NULL;
        float *b = dv ? dv + hd->off + pos * d->kv_stride : NULL;
        const float *ga = hd->dck + (int64_t)c * d->D, *gb = hd->dcv + (int64_t)c * d->D;
        for (int x = 0; x < d->D; x++) {
            if (a) a[x] += ga[x];
            if (b) b[x] += gb[x];
        }
    }
}

/* The key segments of query rows starting at i0 (all in one region): returns how many.
 * Region 0 (rows < S + 2L) is plain causal; partition c >= 2 is prefix + band. */
static int segments(lrsa_attn_seg *sg, const lrsa_head *hd, const float *k, const float *v,
                    float *dk, float *dv, int c, int i_end) {
    const lrsa_attn_dims *d = hd->d;
    int64_t band0 = c < 2 ? 0 : hd->S + (int64_t)(c - 1) * hd->L;
    int n = 0;
    if (c >= 2) {
        sg[n++] = (lrsa_attn_seg){.k = hd->ck,
                                  .v = hd->cv,
                                  .ld = d->D,
                                  .dk = hd->dck,
                                  .dv = hd->dcv,
                                  .dld = d->D,
                                  .n = hd->S + hd->kk * (c - 1),
                                  .causal = 0,
                                  .pos0 = 0};
    }
    int64_t o = hd->off + band0 * d->kv_stride;
    sg[n++] = (lrsa_attn_seg){.k = k + o,
                              .v = v + o,
                              .ld = d->kv_stride,
                              .dk = dk ? dk + o : NULL,
                              .dv = dv ? dv + o : NULL,
                              .dld = d->kv_stride,
                              .n = (int)(i_end - band0),
                              .causal = 1,
                              .pos0 = band0};
    return n;
}

/* Calls fn for every query block of the sequence: [i0, i0+nq) inside region c (c < 2 is the
 * plain causal region before S + 2L). */
typedef void (*block_fn)(void *ctx, int c, int i0, int nq, int i_end);
static void for_each_block(const lrsa_head *hd, block_fn fn, void *ctx) {
    int T = hd->d->T;
    int c = 0;
    for (int r0 = 0; r0 < T;) {
        int64_t end = c == 0 ? hd->S + 2 * (int64_t)hd->L : r0 + (int64_t)hd->L;
        int r1 = end < T ? (int)end : T;
        for (int i0 = r0; i0 < r1; i0 += LRSA_ATTN_BQ)
            fn(ctx, c, i0, r1 - i0 < LRSA_ATTN_BQ ? r1 - i0 : LRSA_ATTN_BQ, r1);
        c = c == 0 ? 2 : c + 1;
        r0 = r1;
    }
}

typedef struct {
    lrsa_head *hd;
    int h;
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *o, *l;
    lrsa_attn_scratch *w;
} block_ctx;

static void fwd_block(void *vctx, int c, int i0, int nq, int i_end) {
    block_ctx *x = vctx;
    const lrsa_attn_dims *d = x->hd->d;
    lrsa_attn_seg sg[2];
    int ns = segments(sg, x->hd, x->k, x->v, NULL, NULL, c, i_end);
    int64_t row = (int64_t)x->hd->b * d->T + i0, hq = (int64_t)x->h * d->D;
    lrsa_attn_tile_forward(x->out + row * d->o_stride + hq, d->o_stride,
                           x->lse + ((int64_t)x->hd->b * d->Hq + x->h) * d->T + i0,
                           x->q + row * d->q_stride + hq, d->q_stride, nq, i0, sg, ns, d->D,
                           d->scale, x->w);
}

static void bwd_block(void *vctx, int c, int i0, int nq, int i_end) {
    block_ctx *x = vctx;
    const lrsa_attn_dims *d = x->hd->d;
    lrsa_attn_seg sg[2];
    int ns = segments(sg, x->hd, x->k, x->v, x->dk, x->dv, c, i_end);
    int64_t row = (int64_t)x->hd->b * d->T + i0, hq = (int64_t)x->h * d->D;
    lrsa_attn_tile_backward(x->dq ? x->dq + row * d->q_stride + hq : NULL, d->q_stride,
                            x->dout + row * d->o_stride + hq, d->o_stride,
                            x->q + row * d->q_stride + hq, d->q_stride,
                            x->o + row * d->o_stride + hq, d->o_stride,
                            x->l + ((int64_t)x->hd->b * d->Hq + x->h) * d->T + i0, nq, i0, sg, ns,
                            d->D, d->scale, x->w);
}

static lrsa_head head_init(const lrsa_attn_dims *d, const lrsa_lagkv_params *p, int with_grad) {
    lrsa_head hd = {.d = d, .S = p->sink, .L = p->lag, .kk = lrsa_lagkv_k(p)};
    hd.ns = lrsa_lagkv_num_scored(d->T, p);
    size_t bytes = sizeof(float) * (size_t)gathered_rows(&hd) * (size_t)d->D + 64;
    hd.ck = lrsa_alloc_aligned(bytes);
    hd.cv = lrsa_alloc_aligned(bytes);
    hd.dck = with_grad ? lrsa_alloc_aligned(bytes) : NULL;
    hd.dcv = with_grad ? lrsa_alloc_aligned(bytes) : NULL;
    return hd;
}

static void head_select(lrsa_head *hd, const int32_t *sel, int b, int g) {
    const lrsa_attn_dims *d = hd->d;
    hd->b = b, hd->g = g;
    hd->off = (int64_t)b * d->T * d->kv_stride + (int64_t)g * d->D;
    hd->sel = sel + ((int64_t)b * d->Hkv + g) * hd->ns * hd->kk;
}

static void head_free(lrsa_head *hd) {
    free(hd->ck), free(hd->cv), free(hd->dck), free(hd->dcv);
}

void lrsa_lrsa_attention_forward_cpu(float *out, float *lse, const float *q, const float *k,
                                     const float *v, const int32_t *sel, const lrsa_attn_dims *d,
                                     const lrsa_lagkv_params *p) {
    check_args(d, p);
    int G = d->Hq / d->Hkv;
    lrsa_head hd = head_init(d, p, 0);
    lrsa_attn_scratch w;
    lrsa_attn_scratch_init(&w, d->D);
    for (int b = 0; b < d->B; b++)
        for (int g = 0; g < d->Hkv; g++) {
            head_select(&hd, sel, b, g);
            gather(&hd, k, v);
            for (int h = g * G; h < (g + 1) * G; h++) {
                block_ctx x = {
                    .hd = &hd, .h = h, .out = out, .lse = lse, .q = q, .k = k, .v = v, .w = &w};
                for_each_block(&hd, fwd_block, &x);
            }
        }
    lrsa_attn_scratch_free(&w);
    head_free(&hd);
}

void lrsa_lrsa_attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout,
                                      const float *q, const float *k, const float *v,
                                      const float *out, const float *lse, const int32_t *sel,
                                      const lrsa_attn_dims *d, const lrsa_lagkv_params *p) {
    check_args(d, p);
    int G = d->Hq / d->Hkv;
    lrsa_head hd = head_init(d, p, 1);
    lrsa_attn_scratch w;
    lrsa_attn_scratch_init(&w, d->D);
    for (int b = 0; b < d->B; b++)
        for (int g = 0; g < d->Hkv; g++) {
            head_select(&hd, sel, b, g);
            gather(&hd, k, v);
            /* dk/dv of this KV head collect all query heads of the group and both the band
             * and the gathered prefix: zero once, accumulate, then scatter the prefix part */
            if (dk) lrsa_attn_zero_rows(dk + hd.off, d->kv_stride, d->T, d->D);
            if (dv) lrsa_attn_zero_rows(dv + hd.off, d->kv_stride, d->T, d->D);
            size_t nc = (size_t)gathered_rows(&hd) * (size_t)d->D;
            memset(hd.dck, 0, sizeof(float) * nc);
            memset(hd.dcv, 0, sizeof(float) * nc);
            for (int h = g * G; h < (g + 1) * G; h++) {
                block_ctx x = {.hd = &hd,
                               .h = h,
                               .dq = dq,
                               .dk = dk,
                               .dv = dv,
                               .q = q,
                               .k = k,
                               .v = v,
                               .dout = dout,
                               .o = out,
                               .l = lse,
                               .w = &w};
                for_each_block(&hd, bwd_block, &x);
            }
            scatter_add(&hd, dk, dv);
        }
    lrsa_attn_scratch_free(&w);
    head_free(&hd);
}
