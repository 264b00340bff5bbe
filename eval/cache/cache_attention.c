/* Cached attention: blocks of queries against the visible prefix of their KV head's rows, as
 * two GEMMs (OpenBLAS) around an exact row softmax. Rows past a query's own position are
 * excluded, which is the causal mask of the new chunk (everything cached precedes it). */
#include "eval/cache/cache_attention.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

/* Query rows per block: bounds the score buffer at QBLOCK x (cache length). */
#define QBLOCK 64

void lrsa_cache_attention(const lrsa_kv_cache *c, int layer, const float *q, int64_t q_stride,
                          int n_q_heads, int64_t N, float *att, int64_t att_stride) {
    const int D = c->head_dim;
    const int Hkv = c->n_kv_heads;
    LRSA_CHECK((n_q_heads / Hkv) * Hkv == n_q_heads,
               "(query heads must be a multiple of KV heads)");
    const int G = n_q_heads / Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    int64_t max_len = 0;
    for (int g = 0; g < Hkv; g++) {
        int64_t len = c->heads[(int64_t)layer * Hkv + g].len;
        if (len > max_len) max_len = len;
    }
    float *s = lrsa_malloc((size_t)QBLOCK * (max_len > 0 ? max_len : 1) * sizeof(float));
    for (int g = 0; g < Hkv; g++) {
        const lrsa_kv_head *kh = &c->heads[(int64_t)layer * Hkv + g];
        const int64_t len0 = kh->len - N; /* rows before the new chunk */
        LRSA_CHECK(len0 >= 0, "(append the chunk's K/V before attending)");
        for (int hg = 0; hg < G; hg++) {
            const int h = g * G + hg;
            for (int64_t i0 = 0; i0 < N; i0 += QBLOCK) {
                const int64_t nb = N - i0 < QBLOCK ? N - i0 : QBLOCK;
                const int64_t nk = len0 + i0 + nb; /* keys visible to the block's last query */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nk, D, scale,
                            q + i0 * q_stride + (int64_t)h * D, (int)q_stride, kh->k, D, 0.0f, s,
                            (int)nk);
                for (int64_t r = 0; r < nb; r++) {
                    float *row = s + r * nk;
                    const int64_t vis = len0 + i0 + r + 1;
                    float mx = -INFINITY;
                    for (int64_t t = 0; t < vis; t++) mx = row[t] > mx ? row[t] : mx;
                    float sum = 0.0f;
                    for (int64_t t = 0; t < vis; t++) {
                        row[t] = expf(row[t] - mx);
                        sum += row[t];
                    }
                    const float inv = 1.0f / sum;
                    for (int64_t t = 0; t < vis; t++) row[t] *= inv;
                    for (int64_t t = vis; t < nk; t++) row[t] = 0.0f;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, D, (int)nk, 1.0f, s,
                            (int)nk, kh->v, D, 0.0f, att + i0 * att_stride + (int64_t)h * D,
                            (int)att_stride);
            }
        }
    }
    free(s);
}
