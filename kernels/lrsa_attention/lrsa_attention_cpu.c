/* LRSA attention on the CPU as gather + dense (../shared/docs/lagkv-lrsa.md section 5):
 * per (sequence, KV head) the sink and the selected rows are gathered into C; the queries of
 * partition c >= 2 attend to the unmasked prefix C[0 : S + k(c-1)] and the causal band
 * [start(P_{c-1}), i] through the tile engine's single online softmax. Threaded as
 * kernels/attention/attention_parallel.h describes: forward tasks are (sequence, KV head,
 * query block), backward tasks (sequence, query head). */
#include "kernels/lrsa_attention/lrsa_attention.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/attention/attention_parallel.h"
#include "kernels/attention/attention_tile.h"
#include "kernels/cpu/cpu_threads.h"

/* The gathered rows of every (sequence, KV head) and the shape of the rule. */
typedef struct {
    const lrsa_attn_dims *d;
    int S, L, kk, ns, nc; /* sink, lag, kept per partition, scored partitions, rows of C */
    const int32_t *sel;   /* [B * Hkv * ns * kk] */
    float *ck, *cv;       /* [B * Hkv * nc, D] */
} lrsa_gathered;

/* One query block: rows [i0, i0 + nq) inside region c (c < 2: the plain causal region before
 * S + 2L), whose band ends at i_end. */
typedef struct {
    int c, i0, nq, i_end;
} lrsa_block;

static void check_args(const lrsa_attn_dims *d, const lrsa_lagkv_params *p) {
    lrsa_attn_check_dims(d);
    LRSA_CHECK(p->lag > 0 && p->sink >= 0 && p->keep > 0.0f && p->keep <= 1.0f,
               "(LagKV parameters must pass lrsa_lagkv_validate first)");
}

/* Only queries at or after S + 2L see the gathered prefix. */
static int prefix_used(const lrsa_gathered *gt) {
    return gt->d->T > gt->S + 2 * (int64_t)gt->L; /* (64-bit: L may be huge) */
}

static int64_t head_off(const lrsa_attn_dims *d, int b, int g) {
    return (int64_t)b * d->T * d->kv_stride + (int64_t)g * d->D;
}

static const int32_t *head_sel(const lrsa_gathered *gt, int b, int g) {
    return gt->sel + ((int64_t)b * gt->d->Hkv + g) * gt->ns * gt->kk;
}

/* Original position of row c of C. */
static int64_t c_position(const lrsa_gathered *gt, const int32_t *sel, int c) {
    return c < gt->S ? c : sel[c - gt->S];
}

/* Copies sink and selected rows of every (b, g) into gt->ck, gt->cv (rows D floats apart). */
static void gather(lrsa_gathered *gt, const float *k, const float *v) {
    const lrsa_attn_dims *d = gt->d;
    const int heads = d->B * d->Hkv;
    const size_t row = sizeof(float) * (size_t)d->D;
#pragma omp parallel for schedule(static) num_threads(lrsa_cpu_threads_for(heads, gt->nc * d->D))
    for (int bg = 0; bg < heads; bg++) {
        const int b = bg / d->Hkv, g = bg % d->Hkv;
        const int32_t *sel = head_sel(gt, b, g);
        const int64_t off = head_off(d, b, g);
        float *ck = gt->ck + (int64_t)bg * gt->nc * d->D,
              *cv = gt->cv + (int64_t)bg * gt->nc * d->D;
        for (int c = 0; c < gt->nc; c++) {
            if (c >= gt->S) {
                int j = (c - gt->S) / gt->kk, lo = gt->S + j * gt->L;
                LRSA_CHECK(sel[c - gt->S] >= lo && sel[c - gt->S] < lo + gt->L,
                           "(a selected position lies outside its partition: sel must come "
                           "from lrsa_lagkv_select_cpu with the same T, S, L)");
            }
            int64_t pos = c_position(gt, sel, c);
            memcpy(ck + (int64_t)c * d->D, k + off + pos * d->kv_stride, row);
            memcpy(cv + (int64_t)c * d->D, v + off + pos * d->kv_stride, row);
        }
    }
}

static lrsa_gathered gathered_init(const lrsa_attn_dims *d, const lrsa_lagkv_params *p,
                                   const int32_t *sel, const float *k, const float *v) {
    lrsa_gathered gt = {.d = d, .S = p->sink, .L = p->lag, .kk = lrsa_lagkv_k(p), .sel = sel};
    gt.ns = lrsa_lagkv_num_scored(d->T, p);
    gt.nc = prefix_used(&gt) ? gt.S + gt.ns * gt.kk : 0; /* (the sink may exceed T) */
    size_t n = (size_t)d->B * (size_t)d->Hkv * (size_t)gt.nc * (size_t)d->D;
    gt.ck = lrsa_alloc_aligned(sizeof(float) * (n > 0 ? n : 1));
    gt.cv = lrsa_alloc_aligned(sizeof(float) * (n > 0 ? n : 1));
    gather(&gt, k, v);
    return gt;
}

static void gathered_free(lrsa_gathered *gt) {
    free(gt->ck);
    free(gt->cv);
}

/* The query blocks of one sequence, P positions at most, none crossing a region boundary.
 * Returns how many; *out is allocated. */
static int list_blocks(const lrsa_gathered *gt, int P, lrsa_block **out) {
    const int T = gt->d->T;
    int cap = T / P + 8, n = 0;
    lrsa_block *bl = lrsa_malloc(sizeof *bl * (size_t)cap);
    int c = 0;
    for (int r0 = 0; r0 < T;) {
        int64_t end = c == 0 ? gt->S + 2 * (int64_t)gt->L : r0 + (int64_t)gt->L;
        int r1 = end < T ? (int)end : T;
        for (int i0 = r0; i0 < r1; i0 += P) {
            if (n == cap) bl = lrsa_realloc(bl, sizeof *bl * (size_t)(cap *= 2));
            bl[n++] = (lrsa_block){c, i0, r1 - i0 < P ? r1 - i0 : P, r1};
        }
        c = c == 0 ? 2 : c + 1;
        r0 = r1;
    }
    *out = bl;
    return n;
}

/* The key segments of a block of KV head (b, g): returns how many. Region 0 (rows < S + 2L) is
 * plain causal; partition c >= 2 is the gathered prefix plus the band. Gradient pointers: dc
 * (rows of C, D apart) and dband (original positions, dld apart), each may be NULL. */
static int segments(lrsa_attn_seg *sg, const lrsa_gathered *gt, const float *k, const float *v,
                    int b, int g, const lrsa_block *blk, float *dck, float *dcv, float *dk,
                    float *dv, int64_t dld) {
    const lrsa_attn_dims *d = gt->d;
    const int64_t band0 = blk->c < 2 ? 0 : gt->S + (int64_t)(blk->c - 1) * gt->L;
    const int64_t cbase = ((int64_t)b * d->Hkv + g) * gt->nc * d->D;
    int n = 0;
    if (blk->c >= 2)
        sg[n++] = (lrsa_attn_seg){.k = gt->ck + cbase,
                                  .v = gt->cv + cbase,
                                  .ld = d->D,
                                  .dk = dck,
                                  .dv = dcv,
                                  .dld = d->D,
                                  .n = gt->S + gt->kk * (blk->c - 1),
                                  .causal = 0,
                                  .pos0 = 0};
    const int64_t o = head_off(d, b, g) + band0 * d->kv_stride;
    sg[n++] = (lrsa_attn_seg){.k = k + o,
                              .v = v + o,
                              .ld = d->kv_stride,
                              .dk = dk ? dk + band0 * dld : NULL,
                              .dv = dv ? dv + band0 * dld : NULL,
                              .dld = dld,
                              .n = (int)(blk->i_end - band0),
                              .causal = 1,
                              .pos0 = band0};
    return n;
}

void lrsa_lrsa_attention_forward_cpu(float *out, float *lse, const float *q, const float *k,
                                     const float *v, const int32_t *sel, const lrsa_attn_dims *d,
                                     const lrsa_lagkv_params *p) {
    check_args(d, p);
    const int G = d->Hq / d->Hkv, P = lrsa_attn_block_positions(G), heads = d->B * d->Hkv;
    lrsa_gathered gt = gathered_init(d, p, sel, k, v);
    lrsa_block *bl;
    const int nb = list_blocks(&gt, P, &bl);
    const int64_t ntask = (int64_t)nb * heads;
    int threads = lrsa_blas_serial_begin();
#pragma omp parallel num_threads(threads)
    {
        lrsa_attn_scratch w;
        lrsa_attn_scratch_init(&w, G * P, d->D);
        /* later blocks see more keys: hand them out first */
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < ntask; task++) {
            const lrsa_block *blk = &bl[nb - 1 - (int)(task / heads)];
            const int bg = (int)(task % heads), b = bg / d->Hkv, g = bg % d->Hkv;
            lrsa_attn_seg sg[2];
            int ns = segments(sg, &gt, k, v, b, g, blk, NULL, NULL, NULL, NULL, 0);
            const int64_t row = (int64_t)b * d->T + blk->i0, h0 = (int64_t)g * G * d->D;
            lrsa_attn_qblock qb = {.q = q + row * d->q_stride + h0,
                                   .q_ld = d->q_stride,
                                   .out = out + row * d->o_stride + h0,
                                   .o_ld = d->o_stride,
                                   .lse =
                                       lse + ((int64_t)b * d->Hq + (int64_t)g * G) * d->T + blk->i0,
                                   .lse_hs = d->T,
                                   .nq = blk->nq,
                                   .G = G,
                                   .qpos0 = blk->i0};
            lrsa_attn_tile_forward(&w, &qb, sg, ns, d->D, d->scale);
        }
        lrsa_attn_scratch_free(&w);
    }
    lrsa_blas_serial_end(threads);
    free(bl);
    gathered_free(&gt);
}

/* Adds the gathered rows' gradients back at their original positions of one head's dK/dV rows
 * (D apart); each position occurs once in C, so this is a plain scatter. */
static void scatter_add(const lrsa_gathered *gt, const int32_t *sel, const float *dc, float *dst) {
    if (!dc || !dst) return;
    const int D = gt->d->D;
    for (int c = 0; c < gt->nc; c++) {
        float *a = dst + c_position(gt, sel, c) * D;
        const float *s = dc + (int64_t)c * D;
        for (int x = 0; x < D; x++) a[x] += s[x];
    }
}

void lrsa_lrsa_attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout,
                                      const float *q, const float *k, const float *v,
                                      const float *out, const float *lse, const int32_t *sel,
                                      const lrsa_attn_dims *d, const lrsa_lagkv_params *p) {
    check_args(d, p);
    const int G = d->Hq / d->Hkv, P = LRSA_ATTN_BQ_BWD;
    lrsa_gathered gt = gathered_init(d, p, sel, k, v);
    lrsa_block *bl;
    const int nb = list_blocks(&gt, P, &bl);
    const int64_t ntask = (int64_t)d->B * d->Hq;
    lrsa_attn_head_grads hg;
    lrsa_attn_head_grads_init(&hg, d, dk != NULL, dv != NULL);
    const size_t cbytes = sizeof(float) * ((size_t)gt.nc * (size_t)d->D + 1);
    int threads = lrsa_blas_serial_begin();
#pragma omp parallel num_threads(threads)
    {
        lrsa_attn_scratch w;
        lrsa_attn_scratch_init(&w, P, d->D);
        float *dck = dk ? lrsa_alloc_aligned(cbytes) : NULL;
        float *dcv = dv ? lrsa_alloc_aligned(cbytes) : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < ntask; task++) {
            const int b = (int)(task / d->Hq), h = (int)(task % d->Hq), g = h / G;
            /* this head's dK/dV: the band's rows accumulate straight in, the prefix's in dck/dcv
             * (rows of C), scattered back once the head is done */
            float *hk = lrsa_attn_head_grads_dk(&hg, d, b, h);
            float *hv = lrsa_attn_head_grads_dv(&hg, d, b, h);
            if (dck) memset(dck, 0, cbytes);
            if (dcv) memset(dcv, 0, cbytes);
            const int64_t hq = (int64_t)h * d->D;
            for (int i = 0; i < nb; i++) {
                const lrsa_block *blk = &bl[i];
                lrsa_attn_seg sg[2];
                int ns = segments(sg, &gt, k, v, b, g, blk, dck, dcv, hk, hv, d->D);
                const int64_t row = (int64_t)b * d->T + blk->i0;
                /* (the backward only reads out and lse through the block) */
                lrsa_attn_qblock qb = {.q = q + row * d->q_stride + hq,
                                       .q_ld = d->q_stride,
                                       .out = (float *)out + row * d->o_stride + hq,
                                       .o_ld = d->o_stride,
                                       .lse =
                                           (float *)lse + ((int64_t)b * d->Hq + h) * d->T + blk->i0,
                                       .lse_hs = d->T,
                                       .nq = blk->nq,
                                       .G = 1,
                                       .qpos0 = blk->i0};
                lrsa_attn_tile_backward(&w, &qb, dout + row * d->o_stride + hq, d->o_stride,
                                        dq ? dq + row * d->q_stride + hq : NULL, d->q_stride, sg,
                                        ns, d->D, d->scale);
            }
            const int32_t *hsel = head_sel(&gt, b, g);
            scatter_add(&gt, hsel, dck, hk);
            scatter_add(&gt, hsel, dcv, hv);
        }
        free(dck);
        free(dcv);
        lrsa_attn_scratch_free(&w);
    }
    lrsa_blas_serial_end(threads);
    lrsa_attn_head_grads_reduce(&hg, dk, dv, d);
    lrsa_attn_head_grads_free(&hg);
    free(bl);
    gathered_free(&gt);
}
