/* Dense causal grouped-query attention on the CPU: one causal key segment per query block,
 * handed to the tile engine (attention_tile.h). */
#include "kernels/attention/attention.h"

#include "base/error.h"
#include "kernels/attention/attention_tile.h"

static void check_dims(const lrsa_attn_dims *d) {
    /* (no % inside the condition: LRSA_CHECK prints it as a format string) */
    int grouped = d->Hkv > 0 && d->Hq >= d->Hkv && d->Hq / d->Hkv * d->Hkv == d->Hq;
    LRSA_CHECK(d->B >= 0 && d->T >= 0 && d->D > 0 && grouped,
               "(attention dims: Hq must be a multiple of Hkv)");
}

/* The causal segment of sequence b, KV head g: every key before the end of the query block. */
static lrsa_attn_seg causal_seg(const float *k, const float *v, float *dk, float *dv,
                                const lrsa_attn_dims *d, int b, int g, int nkeys) {
    int64_t off = (int64_t)b * d->T * d->kv_stride + (int64_t)g * d->D;
    lrsa_attn_seg s = {.k = k + off,
                       .v = v + off,
                       .ld = d->kv_stride,
                       .dk = dk ? dk + off : NULL,
                       .dv = dv ? dv + off : NULL,
                       .dld = d->kv_stride,
                       .n = nkeys,
                       .causal = 1,
                       .pos0 = 0};
    return s;
}

void lrsa_attention_forward_cpu(float *out, float *lse, const float *q, const float *k,
                                const float *v, const lrsa_attn_dims *d) {
    check_dims(d);
    int G = d->Hq / d->Hkv;
    lrsa_attn_scratch w;
    lrsa_attn_scratch_init(&w, d->D);
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < d->Hq; h++)
            for (int i0 = 0; i0 < d->T; i0 += LRSA_ATTN_BQ) {
                int nq = d->T - i0 < LRSA_ATTN_BQ ? d->T - i0 : LRSA_ATTN_BQ;
                lrsa_attn_seg s = causal_seg(k, v, NULL, NULL, d, b, h / G, i0 + nq);
                int64_t row = (int64_t)b * d->T + i0;
                lrsa_attn_tile_forward(out + row * d->o_stride + (int64_t)h * d->D, d->o_stride,
                                       lse + ((int64_t)b * d->Hq + h) * d->T + i0,
                                       q + row * d->q_stride + (int64_t)h * d->D, d->q_stride, nq,
                                       i0, &s, 1, d->D, d->scale, &w);
            }
    lrsa_attn_scratch_free(&w);
}

void lrsa_attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                 const float *k, const float *v, const float *out, const float *lse,
                                 const lrsa_attn_dims *d) {
    check_dims(d);
    int G = d->Hq / d->Hkv;
    lrsa_attn_scratch w;
    lrsa_attn_scratch_init(&w, d->D);
    for (int b = 0; b < d->B; b++)
        for (int g = 0; g < d->Hkv; g++) {
            /* dk/dv of this KV head collect every query head of its group: zero once here */
            int64_t off = (int64_t)b * d->T * d->kv_stride + (int64_t)g * d->D;
            if (dk) lrsa_attn_zero_rows(dk + off, d->kv_stride, d->T, d->D);
            if (dv) lrsa_attn_zero_rows(dv + off, d->kv_stride, d->T, d->D);
            for (int h = g * G; h < (g + 1) * G; h++)
                for (int i0 = 0; i0 < d->T; i0 += LRSA_ATTN_BQ) {
                    int nq = d->T - i0 < LRSA_ATTN_BQ ? d->T - i0 : LRSA_ATTN_BQ;
                    lrsa_attn_seg s = causal_seg(k, v, dk, dv, d, b, g, i0 + nq);
                    int64_t row = (int64_t)b * d->T + i0, hq = (int64_t)h * d->D;
                    lrsa_attn_tile_backward(dq ? dq + row * d->q_stride + hq : NULL, d->q_stride,
                                            dout + row * d->o_stride + hq, d->o_stride,
                                            q + row * d->q_stride + hq, d->q_stride,
                                            out + row * d->o_stride + hq, d->o_stride,
                                            lse + ((int64_t)b * d->Hq + h) * d->T + i0, nq, i0, &s,
                                            1, d->D, d->scale, &w);
                }
        }
    lrsa_attn_scratch_free(&w);
}
