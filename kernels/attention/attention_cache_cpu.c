/* Cached attention of prefill chunks and decode steps (attention_cache.h). */
#include "kernels/attention/attention_cache.h"

#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "kernels/attention/attention_tile.h"
#include "kernels/cpu/cpu_threads.h"

typedef struct {
    float *out;
    int64_t o_stride;
    const float *q;
    int64_t q_stride, N;
    const lrsa_attn_kv_rows *kv;
    int Hkv, G, D, P, nqb;
} cache_call;

static lrsa_attn_qblock query_block(const cache_call *c, int g, int qb_i) {
    const int64_t i0 = (int64_t)qb_i * c->P, h0 = (int64_t)g * c->G * c->D;
    lrsa_attn_qblock qb = {.q = c->q + i0 * c->q_stride + h0,
                           .q_ld = c->q_stride,
                           .out = c->out + i0 * c->o_stride + h0,
                           .o_ld = c->o_stride,
                           .lse = NULL,
                           .nq = (int)(c->N - i0 < c->P ? c->N - i0 : c->P),
                           .G = c->G,
                           .qpos0 = i0};
    return qb;
}

/* Rows [a, b) of KV head g as a causal segment: query i sits at position i, so cached row j
 * sits at j - (len - N). */
static lrsa_attn_seg key_range(const cache_call *c, int g, int64_t a, int64_t b) {
    const lrsa_attn_kv_rows *h = &c->kv[g];
    lrsa_attn_seg s = {.k = h->k + a * c->D,
                       .v = h->v + a * c->D,
                       .ld = c->D,
                       .n = (int)(b - a),
                       .causal = 1,
                       .pos0 = a - (h->len - c->N)};
    return s;
}

static int64_t max_len(const cache_call *c) {
    int64_t m = 0;
    for (int g = 0; g < c->Hkv; g++) m = c->kv[g].len > m ? c->kv[g].len : m;
    return m;
}

/* Few (head, block) tasks: every task also takes one key range of SPLIT rows; its softmax
 * state is saved, and a second pass merges the ranges of a block in order. */
static void forward_split(const cache_call *c, int nsplit, int threads) {
    const int M = c->G * c->P, D = c->D;
    const int64_t nblk = (int64_t)c->Hkv * c->nqb, ntask = nblk * nsplit;
    const int64_t per = (int64_t)M * (D + 2);
    float *states = lrsa_alloc_aligned(sizeof(float) * (size_t)(ntask * per));
#pragma omp parallel num_threads(threads)
    {
        lrsa_attn_scratch w;
        lrsa_attn_scratch_init(&w, M, D);
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < ntask; task++) {
            const int64_t blk = task / nsplit;
            const int g = (int)(blk / c->nqb), qi = (int)(blk % c->nqb), s = (int)(task % nsplit);
            lrsa_attn_qblock qb = query_block(c, g, qi);
            const int rows = qb.G * qb.nq;
            const int64_t len = c->kv[g].len, a = (int64_t)s * LRSA_ATTN_CACHE_SPLIT;
            const int64_t b = a + LRSA_ATTN_CACHE_SPLIT < len ? a + LRSA_ATTN_CACHE_SPLIT : len;
            lrsa_attn_fwd_begin(&w, &qb, D);
            if (a < b) {
                lrsa_attn_seg sg = key_range(c, g, a, b);
                lrsa_attn_fwd_segment(&w, &qb, &sg, 1.0f / sqrtf((float)D));
            }
            float *st = states + task * per;
            lrsa_attn_state_save(&w, rows, &(lrsa_attn_state){st, st + M, st + 2 * M});
        }
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < nblk; blk++) {
            lrsa_attn_qblock qb = query_block(c, (int)(blk / c->nqb), (int)(blk % c->nqb));
            lrsa_attn_fwd_begin(&w, &qb, D);
            for (int s = 0; s < nsplit; s++) {
                float *st = states + (blk * nsplit + s) * per;
                lrsa_attn_state_merge(&w, qb.G * qb.nq, &(lrsa_attn_state){st, st + M, st + 2 * M});
            }
            lrsa_attn_fwd_end(&w, &qb);
        }
        lrsa_attn_scratch_free(&w);
    }
    free(states);
}

void lrsa_attention_cache_forward_cpu(float *out, int64_t o_stride, const float *q,
                                      int64_t q_stride, int Hq, int64_t N,
                                      const lrsa_attn_kv_rows *kv, int Hkv, int D) {
    LRSA_CHECK(Hkv > 0 && (Hq / Hkv) * Hkv == Hq, "(query heads must be a multiple of KV heads)");
    for (int g = 0; g < Hkv; g++)
        LRSA_CHECK(kv[g].len >= N, "(append the chunk's K/V before attending)");
    if (N <= 0) return;
    const int G = Hq / Hkv, P = lrsa_attn_block_positions(G);
    cache_call c = {out, o_stride, q, q_stride, N, kv, Hkv, G, D, P, (int)((N + P - 1) / P)};
    const int64_t nblk = (int64_t)Hkv * c.nqb;
    const int64_t len = max_len(&c);
    int nsplit = 1;
    if (nblk < LRSA_ATTN_CACHE_MIN_TASKS)
        nsplit = (int)((len + LRSA_ATTN_CACHE_SPLIT - 1) / LRSA_ATTN_CACHE_SPLIT);
    int threads = lrsa_blas_serial_begin();
    if (nsplit > 1) {
        forward_split(&c, nsplit, threads);
    } else {
        const float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel num_threads(threads)
        {
            lrsa_attn_scratch w;
            lrsa_attn_scratch_init(&w, G * P, D);
            /* later blocks see more keys: hand them out first */
#pragma omp for schedule(dynamic, 1)
            for (int64_t task = 0; task < nblk; task++) {
                const int qi = c.nqb - 1 - (int)(task / Hkv), g = (int)(task % Hkv);
                lrsa_attn_qblock qb = query_block(&c, g, qi);
                lrsa_attn_seg sg = key_range(&c, g, 0, kv[g].len);
                lrsa_attn_tile_forward(&w, &qb, &sg, 1, D, scale);
            }
            lrsa_attn_scratch_free(&w);
        }
    }
    lrsa_blas_serial_end(threads);
}
