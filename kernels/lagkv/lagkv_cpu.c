/* LagKV scoring and top-k selection on the CPU (../shared/docs/lagkv-lrsa.md section 3). */
#include "kernels/lagkv/lagkv.h"

#include <math.h>
#include <stdlib.h>

int lrsa_lagkv_k(const lrsa_lagkv_params *p) {
    return (int)((double)p->keep * p->lag);
}

int lrsa_lagkv_validate(const lrsa_lagkv_params *p, lrsa_err *e) {
    if (p->sink < 0)
        return lrsa_errorf(e,
                           "LagKV sink size (sink, S) is %d; it must be >= 0 (the number of "
                           "leading tokens never compressed, e.g. 16)",
                           p->sink);
    if (p->lag <= 0)
        return lrsa_errorf(e,
                           "LagKV lag (partition size L) is %d; it must be > 0 (e.g. 128 or "
                           "1024)",
                           p->lag);
    if (!(p->keep > 0.0f && p->keep <= 1.0f))
        return lrsa_errorf(e,
                           "LagKV keep fraction (keep, r) is %g; it must be in (0, 1] (the "
                           "fraction of each partition kept, e.g. 0.5 or 0.125)",
                           (double)p->keep);
    if (!isfinite(p->value_weight))
        return lrsa_errorf(e,
                           "LagKV value weight (value_weight, w) is %g; it must be a finite "
                           "number (default 1)",
                           (double)p->value_weight);
    return 0;
}

int lrsa_lagkv_num_partitions(int T, const lrsa_lagkv_params *p) {
    if (T <= p->sink) return 0;
    return (T - p->sink) / p->lag;
}

int lrsa_lagkv_num_scored(int T, const lrsa_lagkv_params *p) {
    int n = lrsa_lagkv_num_partitions(T, p);
    return n > 1 ? n - 1 : 0;
}

/* s[t] = unbiased std over channels of (x[t] - mn) / max(mx - mn, 1e-6), with mn/mx per channel
 * over the reference rows; then s becomes softmax(s) over the L tokens. tmp holds 2*D floats. */
static void lag_softmax_std(float *s, const float *x, const float *ref, int L, int D,
                            int64_t stride, float *tmp) {
    float *mn = tmp, *den = tmp + D;
    for (int c = 0; c < D; c++) mn[c] = den[c] = ref[c];
    for (int t = 1; t < L; t++) {
        const float *r = ref + t * stride;
        for (int c = 0; c < D; c++) {
            if (r[c] < mn[c]) mn[c] = r[c];
            if (r[c] > den[c]) den[c] = r[c]; /* the max, for now */
        }
    }
    for (int c = 0; c < D; c++) {
        float range = den[c] - mn[c];
        den[c] = range > 1e-6f ? range : 1e-6f; /* [decision] guard constant channels */
    }
    float smax = -INFINITY;
    for (int t = 0; t < L; t++) {
        const float *xt = x + t * stride;
        float mean = 0.0f;
        for (int c = 0; c < D; c++) mean += (xt[c] - mn[c]) / den[c];
        mean /= (float)D;
        float ss = 0.0f;
        for (int c = 0; c < D; c++) {
            float dz = (xt[c] - mn[c]) / den[c] - mean;
            ss += dz * dz;
        }
        s[t] = D > 1 ? sqrtf(ss / (float)(D - 1)) : 0.0f;
        if (s[t] > smax) smax = s[t];
    }
    float sum = 0.0f;
    for (int t = 0; t < L; t++) {
        s[t] = expf(s[t] - smax);
        sum += s[t];
    }
    for (int t = 0; t < L; t++) s[t] /= sum;
}

void lrsa_lagkv_score_partition(float *score, const float *k_part, const float *v_part,
                                const float *k_ref, const float *v_ref, int L, int D,
                                int64_t row_stride, float value_weight) {
    float *tmp = lrsa_malloc(sizeof(float) * ((size_t)2 * D + (size_t)L));
    float *pv = tmp + 2 * D;
    lag_softmax_std(score, k_part, k_ref, L, D, row_stride, tmp);
    lag_softmax_std(pv, v_part, v_ref, L, D, row_stride, tmp);
    for (int t = 0; t < L; t++) score[t] += value_weight * pv[t];
    free(tmp);
}

typedef struct {
    float s;
    int pos;
} scored_pos;

/* Descending score, ties (and NaN pairs) to the lower position; NaN ranks last. */
static int by_score_desc(const void *a, const void *b) {
    const scored_pos *x = a, *y = b;
    int xn = isnan(x->s), yn = isnan(y->s);
    if (xn != yn) return xn - yn;
    if (!xn && x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->pos - y->pos;
}

static int by_int(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void lrsa_lagkv_topk_ascending(int32_t *idx, const float *score, int L, int k) {
    LRSA_CHECK(k >= 0 && k <= L, "(top-k needs 0 <= k <= L)");
    scored_pos *sp = lrsa_malloc(sizeof(scored_pos) * (size_t)(L > 0 ? L : 1));
    for (int t = 0; t < L; t++) sp[t] = (scored_pos){score[t], t};
    qsort(sp, (size_t)L, sizeof(scored_pos), by_score_desc);
    for (int i = 0; i < k; i++) idx[i] = sp[i].pos;
    qsort(idx, (size_t)k, sizeof(int32_t), by_int);
    free(sp);
}

void lrsa_lagkv_select_cpu(int32_t *sel, float *scores, const float *k, const float *v, int B,
                           int T, int Hkv, int D, int64_t kv_stride, const lrsa_lagkv_params *p) {
    LRSA_CHECK(p->lag > 0 && p->sink >= 0, "(LagKV parameters must be validated first)");
    int ns = lrsa_lagkv_num_scored(T, p), kk = lrsa_lagkv_k(p), L = p->lag, S = p->sink;
    float *sc = lrsa_malloc(sizeof(float) * (size_t)L);
    for (int b = 0; b < B; b++)
        for (int g = 0; g < Hkv; g++) {
            float *srow = scores ? scores + ((int64_t)b * Hkv + g) * T : NULL;
            if (srow)
                for (int t = 0; t < T; t++) srow[t] = INFINITY;
            for (int j = 0; j < ns; j++) {
                int start = S + j * L;
                int64_t off = ((int64_t)b * T + start) * kv_stride + (int64_t)g * D;
                int64_t ref = (int64_t)L * kv_stride;
                lrsa_lagkv_score_partition(sc, k + off, v + off, k + off + ref, v + off + ref, L, D,
                                           kv_stride, p->value_weight);
                int32_t *out = sel + (((int64_t)b * Hkv + g) * ns + j) * kk;
                lrsa_lagkv_topk_ascending(out, sc, L, kk);
                for (int i = 0; i < kk; i++) out[i] += start;
                if (srow)
                    for (int t = 0; t < L; t++) srow[start + t] = sc[t];
            }
        }
    free(sc);
}
