/* Dense causal grouped-query attention on the CPU: one causal key segment per query block,
 * handed to the tile engine (attention_tile.h), threaded as attention_parallel.h describes. */
#include "kernels/attention/attention.h"

#include "base/error.h"
#include "kernels/attention/attention_parallel.h"
#include "kernels/attention/attention_tile.h"
#include "kernels/cpu/cpu_threads.h"

/* The causal segment of sequence b, KV head g: every key before the end of the query block. */
static lrsa_attn_seg causal_seg(const float *k, const float *v, const lrsa_attn_dims *d, int b,
                                int g, int nkeys) {
    int64_t off = (int64_t)b * d->T * d->kv_stride + (int64_t)g * d->D;
    lrsa_attn_seg s = {
        .k = k + off, .v = v + off, .ld = d->kv_stride, .n = nkeys, .causal = 1, .pos0 = 0};
    return s;
}

void lrsa_attention_forward_cpu(float *out, float *lse, const float *q, const float *k,
                                const float *v, const lrsa_attn_dims *d) {
    lrsa_attn_check_dims(d);
    const int G = d->Hq / d->Hkv, P = lrsa_attn_block_positions(G);
    const int nb = (d->T + P - 1) / P, heads = d->B * d->Hkv;
    const int64_t ntask = (int64_t)heads * nb;
    int threads = lrsa_blas_serial_begin();
#pragma omp parallel num_threads(threads)
    {
        lrsa_attn_scratch w;
        lrsa_attn_scratch_init(&w, G * P, d->D);
        /* the last blocks see the most keys: hand them out first */
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < ntask; task++) {
            const int blk = nb - 1 - (int)(task / heads), bg = (int)(task % heads);
            const int b = bg / d->Hkv, g = bg % d->Hkv, i0 = blk * P;
            const int nq = d->T - i0 < P ? d->T - i0 : P;
            const int64_t row = (int64_t)b * d->T + i0, h0 = (int64_t)g * G * d->D;
            lrsa_attn_seg s = causal_seg(k, v, d, b, g, i0 + nq);
            lrsa_attn_qblock qb = {.q = q + row * d->q_stride + h0,
                                   .q_ld = d->q_stride,
                                   .out = out + row * d->o_stride + h0,
                                   .o_ld = d->o_stride,
                                   .lse = lse + ((int64_t)b * d->Hq + (int64_t)g * G) * d->T + i0,
                                   .lse_hs = d->T,
                                   .nq = nq,
                                   .G = G,
                                   .qpos0 = i0};
            lrsa_attn_tile_forward(&w, &qb, &s, 1, d->D, d->scale);
        }
        lrsa_attn_scratch_free(&w);
    }
    lrsa_blas_serial_end(threads);
}

void lrsa_attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                 const float *k, const float *v, const float *out, const float *lse,
                                 const lrsa_attn_dims *d) {
    lrsa_attn_check_dims(d);
    const int G = d->Hq / d->Hkv, P = LRSA_ATTN_BQ_BWD;
    const int64_t ntask = (int64_t)d->B * d->Hq;
    lrsa_attn_head_grads hg;
    lrsa_attn_head_grads_init(&hg, d, dk != NULL, dv != NULL);
    int threads = lrsa_blas_serial_begin();
#pragma omp parallel num_threads(threads)
    {
        lrsa_attn_scratch w;
        lrsa_attn_scratch_init(&w, P, d->D);
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < ntask; task++) {
            const int b = (int)(task / d->Hq), h = (int)(task % d->Hq);
            lrsa_attn_seg s = causal_seg(k, v, d, b, h / G, 0);
            s.dk = lrsa_attn_head_grads_dk(&hg, d, b, h);
            s.dv = lrsa_attn_head_grads_dv(&hg, d, b, h);
            s.dld = d->D;
            for (int i0 = 0; i0 < d->T; i0 += P) {
                const int nq = d->T - i0 < P ? d->T - i0 : P;
                const int64_t row = (int64_t)b * d->T + i0, hq = (int64_t)h * d->D;
                s.n = i0 + nq;
                /* (the backward only reads out and lse through the block) */
                lrsa_attn_qblock qb = {.q = q + row * d->q_stride + hq,
                                       .q_ld = d->q_stride,
                                       .out = (float *)out + row * d->o_stride + hq,
                                       .o_ld = d->o_stride,
                                       .lse = (float *)lse + ((int64_t)b * d->Hq + h) * d->T + i0,
                                       .lse_hs = d->T,
                                       .nq = nq,
                                       .G = 1,
                                       .qpos0 = i0};
                lrsa_attn_tile_backward(&w, &qb, dout + row * d->o_stride + hq, d->o_stride,
                                        dq ? dq + row * d->q_stride + hq : NULL, d->q_stride, &s, 1,
                                        d->D, d->scale);
            }
        }
        lrsa_attn_scratch_free(&w);
    }
    lrsa_blas_serial_end(threads);
    lrsa_attn_head_grads_reduce(&hg, dk, dv, d);
    lrsa_attn_head_grads_free(&hg);
}
