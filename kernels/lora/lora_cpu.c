/* LoRA linear on the CPU (lora.h): the frozen base product is the plain linear op; the adapters
 * add a few thin SGEMMs. Without dropout the A's of all groups are one [n*rank, in] matrix, so
 * the input is read once for u and once for dA and dx; with dropout each group has its own
 * dropped-out input. */
#include "kernels/lora/lora.h"

#include <cblas.h>

#include "kernels/linear/linear.h"
#include "kernels/lora/lora_mask.h"

uint64_t lrsa_lora_dropout_seed(uint64_t pass_key, uint64_t site) {
    return lrsa_lora_mix64(pass_key +
                           LRSA_LORA_GOLDEN * (lrsa_lora_mix64(site + LRSA_LORA_GOLDEN) | 1));
}

void lrsa_lora_dropout_cpu(float *out, const float *x, int64_t N, int in, float p, uint64_t seed) {
    const uint32_t threshold = lrsa_lora_threshold(p);
    const float keep_scale = 1.0f / (1.0f - p);
    const int64_t n = N * in;
    for (int64_t i = 0; i < n; i++)
        out[i] = lrsa_lora_keep(seed, i, threshold) ? x[i] * keep_scale : 0.0f;
}

/* Offset (in elements) of group g's B inside the concatenated B. */
static int64_t b_offset(const lrsa_lora_spec *s, int g) {
    int64_t rows = 0;
    for (int h = 0; h < g; h++) rows += s->width[h];
    return rows * s->rank;
}

void lrsa_lora_linear_forward_cpu(float *y, float *u, const float *x, const float *w,
                                  const float *b, const float *A, const float *B,
                                  const lrsa_lora_spec *s, int64_t N, int in, int out, float *xd) {
    lrsa_linear_forward_cpu(y, x, w, b, N, in, out);
    if (N <= 0) return;
    const int r = s->rank, G = s->n_groups, ur = G * r;
    if (s->dropout > 0) {
        for (int g = 0; g < G; g++) {
            lrsa_lora_dropout_cpu(xd, x, N, in, s->dropout, s->seed[g]);
            /* u_g[N, r] = xd[N, in] @ A_g[r, in]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, r, in, 1.0f, xd, in,
                        A + (int64_t)g * r * in, in, 0.0f, u + g * r, ur);
        }
    } else {
        /* u[N, G*r] = x @ A^T: every group's A in one product */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, ur, in, 1.0f, x, in, A, in,
                    0.0f, u, ur);
    }
    for (int g = 0; g < G; g++) /* y[:, cols_g] += scale * u_g @ B_g^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, s->width[g], r, s->scale,
                    u + g * r, ur, B + b_offset(s, g), r, 1.0f, y + s->col[g], out);
}

void lrsa_lora_linear_backward_cpu(float *dx, float *dA, float *dB, const float *dy, const float *x,
                                   const float *w, const float *A, const float *B, const float *u,
                                   const lrsa_lora_spec *s, int64_t N, int in, int out, float *t,
                                   float *xd) {
    if (N <= 0) return;
    const int r = s->rank, G = s->n_groups, ur = G * r;
    const float sc = s->scale;
    if (dx) lrsa_linear_backward_cpu(dx, NULL, NULL, dy, x, w, N, in, out); /* dx = dy @ W */
    for (int g = 0; g < G; g++) {
        const float *dyg = dy + s->col[g];
        const float *Bg = B + b_offset(s, g);
        /* t_g[N, r] = dy_g[N, width_g] @ B_g[width_g, r] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, r, s->width[g], 1.0f, dyg,
                    out, Bg, r, 0.0f, t + g * r, ur);
        if (dB) /* dB_g[width_g, r] += scale * dy_g^T @ u_g */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->width[g], r, (int)N, sc, dyg,
                        out, u + g * r, ur, 1.0f, dB + b_offset(s, g), r);
    }
    if (!(s->dropout > 0)) {
        if (dA) /* dA[G*r, in] += scale * t^T @ x */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ur, in, (int)N, sc, t, ur, x, in,
                        1.0f, dA, in);
        if (dx) /* dx[N, in] += scale * t @ A */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, in, ur, sc, t, ur, A, in,
                        1.0f, dx, in);
        return;
    }
    for (int g = 0; g < G; g++) {
        const float *Ag = A + (int64_t)g * r * in;
        if (dA) { /* dA_g += scale * t_g^T @ drop_g(x) */
            lrsa_lora_dropout_cpu(xd, x, N, in, s->dropout, s->seed[g]);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, (int)N, sc, t + g * r, ur,
                        xd, in, 1.0f, dA + (int64_t)g * r * in, in);
        }
        if (dx) { /* dx += drop_g'(scale * t_g @ A_g): the same mask and 1/(1-p) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, in, r, sc, t + g * r, ur,
                        Ag, in, 0.0f, xd, in);
            lrsa_lora_dropout_cpu(xd, xd, N, in, s->dropout, s->seed[g]);
            const int64_t n = N * in;
            for (int64_t i = 0; i < n; i++) dx[i] += xd[i];
        }
    }
}
