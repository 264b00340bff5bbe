/* Per-query-head gradient buffers of the threaded attention backward (attention_parallel.h). */
#include "kernels/attention/attention_parallel.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/cpu/cpu_threads.h"

void lrsa_attn_check_dims(const lrsa_attn_dims *d) {
    /* (no % inside the condition: LRSA_CHECK prints it as a format string) */
    int grouped = d->Hkv > 0 && d->Hq >= d->Hkv && d->Hq / d->Hkv * d->Hkv == d->Hq;
    LRSA_CHECK(d->B >= 0 && d->T >= 0 && d->D > 0 && grouped,
               "(attention dims: Hq must be a multiple of Hkv)");
}

void lrsa_attn_head_grads_init(lrsa_attn_head_grads *g, const lrsa_attn_dims *d, int want_dk,
                               int want_dv) {
    size_t n = (size_t)d->B * (size_t)d->Hq * (size_t)d->T * (size_t)d->D;
    g->T = d->T;
    g->D = d->D;
    g->dk = want_dk ? lrsa_alloc_aligned(sizeof(float) * (n > 0 ? n : 1)) : NULL;
    g->dv = want_dv ? lrsa_alloc_aligned(sizeof(float) * (n > 0 ? n : 1)) : NULL;
}

void lrsa_attn_head_grads_free(lrsa_attn_head_grads *g) {
    free(g->dk);
    free(g->dv);
    memset(g, 0, sizeof *g);
}

static float *head_rows(float *base, const lrsa_attn_dims *d, int b, int h) {
    if (!base) return NULL;
    float *p = base + ((int64_t)b * d->Hq + h) * d->T * d->D;
    memset(p, 0, sizeof(float) * (size_t)d->T * (size_t)d->D);
    return p;
}

float *lrsa_attn_head_grads_dk(lrsa_attn_head_grads *g, const lrsa_attn_dims *d, int b, int h) {
    return head_rows(g->dk, d, b, h);
}

float *lrsa_attn_head_grads_dv(lrsa_attn_head_grads *g, const lrsa_attn_dims *d, int b, int h) {
    return head_rows(g->dv, d, b, h);
}

/* dst row (b, t, KV head g) = sum over j of src[(b, g*G + j), t] in order j = 0, 1, ... */
static void reduce_one(float *dst, const float *src, const lrsa_attn_dims *d) {
    const int G = d->Hq / d->Hkv, D = d->D;
    const int64_t T = d->T, rows = (int64_t)d->B * T;
#pragma omp parallel for schedule(static) num_threads(lrsa_cpu_threads_for(rows, (int64_t)d->Hq *D))
    for (int64_t bt = 0; bt < rows; bt++) {
        int64_t b = bt / T, t = bt - b * T;
        for (int g = 0; g < d->Hkv; g++) {
            float *o = dst + bt * d->kv_stride + (int64_t)g * D;
            const float *s0 = src + ((b * d->Hq + (int64_t)g * G) * T + t) * D;
            memcpy(o, s0, sizeof(float) * (size_t)D);
            for (int j = 1; j < G; j++) {
                const float *s = s0 + (int64_t)j * T * D;
#pragma omp simd
                for (int c = 0; c < D; c++) o[c] += s[c];
            }
        }
    }
}

void lrsa_attn_head_grads_reduce(const lrsa_attn_head_grads *g, float *dk, float *dv,
                                 const lrsa_attn_dims *d) {
    if (dk && g->dk) reduce_one(dk, g->dk, d);
    if (dv && g->dv) reduce_one(dv, g->dv, d);
}
