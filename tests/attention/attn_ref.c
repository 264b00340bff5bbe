#include "attn_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ref_causal(const void *ctx, int b, int g, int i, int t) {
    (void)ctx, (void)b, (void)g;
    return t <= i;
}

static const float *row(const float *base, const lrsa_attn_dims *d, int64_t stride, int b, int t,
                        int head) {
    return base + ((int64_t)b * d->T + t) * stride + (int64_t)head * d->D;
}

/* Probabilities of query (b, h, i) over all T keys (0 where invisible); returns the lse. */
static double probs(double *p, const float *q, const float *k, const lrsa_attn_dims *d, int b,
                    int h, int i, ref_visible_fn vis, const void *ctx) {
    int g = h / (d->Hq / d->Hkv);
    const float *qi = row(q, d, d->q_stride, b, i, h);
    double mx = -INFINITY;
    for (int t = 0; t < d->T; t++) {
        p[t] = -INFINITY;
        if (!vis(ctx, b, g, i, t)) continue;
        const float *kt = row(k, d, d->kv_stride, b, t, g);
        double s = 0;
        for (int c = 0; c < d->D; c++) s += (double)qi[c] * kt[c];
        p[t] = s * d->scale;
        if (p[t] > mx) mx = p[t];
    }
    double sum = 0;
    for (int t = 0; t < d->T; t++) {
        p[t] = p[t] == -INFINITY ? 0.0 : exp(p[t] - mx);
        sum += p[t];
    }
    for (int t = 0; t < d->T; t++) p[t] /= sum;
    return mx + log(sum);
}

void ref_attention_forward(double *out, double *lse, const float *q, const float *k, const float *v,
                           const lrsa_attn_dims *d, ref_visible_fn vis, const void *ctx) {
    double *p = malloc(sizeof(double) * (size_t)d->T);
    int G = d->Hq / d->Hkv;
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < d->Hq; h++)
            for (int i = 0; i < d->T; i++) {
                lse[((int64_t)b * d->Hq + h) * d->T + i] = probs(p, q, k, d, b, h, i, vis, ctx);
                double *o = out + (((int64_t)b * d->T + i) * d->Hq + h) * d->D;
                memset(o, 0, sizeof(double) * (size_t)d->D);
                for (int t = 0; t < d->T; t++) {
                    if (p[t] == 0.0) continue;
                    const float *vt = row(v, d, d->kv_stride, b, t, h / G);
                    for (int c = 0; c < d->D; c++) o[c] += p[t] * vt[c];
                }
            }
    free(p);
}

void ref_attention_backward(double *dq, double *dk, double *dv, const float *dout, const float *q,
                            const float *k, const float *v, const lrsa_attn_dims *d,
                            ref_visible_fn vis, const void *ctx) {
    int G = d->Hq / d->Hkv, D = d->D;
    double *p = malloc(sizeof(double) * (size_t)d->T), *dp = malloc(sizeof(double) * d->T);
    memset(dq, 0, sizeof(double) * (size_t)d->B * d->T * d->Hq * D);
    memset(dk, 0, sizeof(double) * (size_t)d->B * d->T * d->Hkv * D);
    memset(dv, 0, sizeof(double) * (size_t)d->B * d->T * d->Hkv * D);
    for (int b = 0; b < d->B; b++)
        for (int h = 0; h < d->Hq; h++)
            for (int i = 0; i < d->T; i++) {
                int g = h / G;
                probs(p, q, k, d, b, h, i, vis, ctx);
                const float *go = row(dout, d, d->o_stride, b, i, h);
                const float *qi = row(q, d, d->q_stride, b, i, h);
                double pdp = 0;
                for (int t = 0; t < d->T; t++) {
                    const float *vt = row(v, d, d->kv_stride, b, t, g);
                    dp[t] = 0;
                    for (int c = 0; c < D; c++) dp[t] += (double)go[c] * vt[c];
                    pdp += p[t] * dp[t];
                }
                double *dqi = dq + (((int64_t)b * d->T + i) * d->Hq + h) * D;
                for (int t = 0; t < d->T; t++) {
                    if (p[t] == 0.0) continue;
                    double ds = p[t] * (dp[t] - pdp) * d->scale;
                    const float *kt = row(k, d, d->kv_stride, b, t, g);
                    double *dkt = dk + (((int64_t)b * d->T + t) * d->Hkv + g) * D;
                    double *dvt = dv + (((int64_t)b * d->T + t) * d->Hkv + g) * D;
                    for (int c = 0; c < D; c++) {
                        dqi[c] += ds * kt[c];
                        dkt[c] += ds * qi[c];
                        dvt[c] += p[t] * go[c];
                    }
                }
            }
    free(p);
    free(dp);
}

void ref_pack(float *dst, const float *src, int B, int T, int H, int D, int64_t stride) {
    for (int64_t r = 0; r < (int64_t)B * T; r++)
        memcpy(dst + r * H * D, src + r * stride, sizeof(float) * (size_t)H * D);
}

double ref_rel_err(const float *a, const double *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        if (isnan(a[i])) return INFINITY;
        num += e * e;
        den += b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) > 1e-30 ? sqrt(den) : 1e-30);
}

double ref_fd_check(ref_loss_fn loss, void *ctx, float *x, const float *grad, int64_t n,
                    int n_probe, float eps, uint64_t seed) {
    double num = 0, den = 0;
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (int p = 0; p < n_probe; p++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t i = (int64_t)((s >> 17) % (uint64_t)n);
        float keep = x[i];
        x[i] = keep + eps;
        double lp = loss(ctx, x);
        x[i] = keep - eps;
        double lm = loss(ctx, x);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * eps);
        num += (fd - grad[i]) * (fd - grad[i]);
        den += fd * fd;
    }
    return sqrt(num) / (sqrt(den) > 1e-30 ? sqrt(den) : 1e-30);
}
