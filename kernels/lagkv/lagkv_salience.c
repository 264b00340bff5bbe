/* The salience loss of LagKV scores and its hand-written gradient (lagkv_salience.h). */
#include "kernels/lagkv/lagkv_salience.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* The softmax-of-std scores of one of K or V (lag_softmax_std of lagkv_cpu.c, in double), with
 * what the backward needs: z, per-token mean and std, per-channel min/max rows and range. */
typedef struct side {
    double *z, *mean, *sd, *p, *mn, *den;
    int *arg_mn, *arg_mx, *guarded;
} side;

static void side_forward(side *s, const double *x, const double *ref, int L, int D) {
    for (int c = 0; c < D; c++) {
        int amn = 0, amx = 0;
        for (int t = 1; t < L; t++) {
            if (ref[t * D + c] < ref[amn * D + c]) amn = t;
            if (ref[t * D + c] > ref[amx * D + c]) amx = t;
        }
        s->arg_mn[c] = amn;
        s->arg_mx[c] = amx;
        s->mn[c] = ref[amn * D + c];
        double range = ref[amx * D + c] - s->mn[c];
        s->guarded[c] = !(range > 1e-6);
        s->den[c] = s->guarded[c] ? 1e-6 : range;
    }
    double mx = -INFINITY;
    for (int t = 0; t < L; t++) {
        double m = 0.0;
        for (int c = 0; c < D; c++) {
            s->z[t * D + c] = (x[t * D + c] - s->mn[c]) / s->den[c];
            m += s->z[t * D + c];
        }
        m /= D;
        double var = 0.0;
        for (int c = 0; c < D; c++) var += (s->z[t * D + c] - m) * (s->z[t * D + c] - m);
        s->mean[t] = m;
        s->sd[t] = sqrt(var / (D - 1));
        mx = s->sd[t] > mx ? s->sd[t] : mx;
    }
    double sum = 0.0;
    for (int t = 0; t < L; t++) sum += s->p[t] = exp(s->sd[t] - mx);
    for (int t = 0; t < L; t++) s->p[t] /= sum;
}

/* Adds the gradient of sum_t gp[t] * p[t] (gp: d loss / d p) into dx (P_j rows) and dref. */
static void side_backward(const side *s, const double *gp, const double *x, int L, int D,
                          double *dx, double *dref, double *gmn, double *gmx) {
    double dot = 0.0;
    for (int t = 0; t < L; t++) dot += s->p[t] * gp[t];
    memset(gmn, 0, (size_t)D * sizeof(double));
    memset(gmx, 0, (size_t)D * sizeof(double));
    for (int t = 0; t < L; t++) {
        double ds = s->p[t] * (gp[t] - dot);
        if (!(s->sd[t] > 0.0)) continue; /* a constant row: std has no direction */
        for (int c = 0; c < D; c++) {
            double dz = ds * (s->z[t * D + c] - s->mean[t]) / ((D - 1) * s->sd[t]);
            dx[t * D + c] += dz / s->den[c];
            double u = (x[t * D + c] - s->mn[c]) / (s->den[c] * s->den[c]);
            /* z = (x - mn) / (mx - mn); under the guard the divisor is a constant */
            gmn[c] += dz * (-1.0 / s->den[c] + (s->guarded[c] ? 0.0 : u));
            if (!s->guarded[c]) gmx[c] -= dz * u;
        }
    }
    for (int c = 0; c < D; c++) {
        dref[s->arg_mn[c] * D + c] += gmn[c];
        dref[s->arg_mx[c] * D + c] += gmx[c];
    }
}

double lrsa_lagkv_salience_partition(const double *k_part, const double *v_part,
                                     const double *k_ref, const double *v_ref, int L, int D,
                                     double w, const uint8_t *needle, double g, double *dk_part,
                                     double *dv_part, double *dk_ref, double *dv_ref) {
    LRSA_CHECK(L > 0 && D >= 2, "salience: partition of %d tokens, %d channels", L, D);
    const size_t LD = (size_t)L * D;
    double *buf =
        lrsa_malloc((2 * LD + 2 * 4 * (size_t)L + 2 * 2 * (size_t)D + 3 * (size_t)D + (size_t)L) *
                    sizeof(double));
    int *ibuf = lrsa_malloc((size_t)2 * 3 * D * sizeof(int));
    side sd[2];
    double *b = buf;
    for (int i = 0; i < 2; i++) {
        sd[i].z = b, b += LD;
        sd[i].mean = b, b += L;
        sd[i].sd = b, b += L;
        sd[i].p = b, b += L;
        b += L; /* spare */
        sd[i].mn = b, b += D;
        sd[i].den = b, b += D;
        sd[i].arg_mn = ibuf + i * 3 * D;
        sd[i].arg_mx = ibuf + i * 3 * D + D;
        sd[i].guarded = ibuf + i * 3 * D + 2 * D;
    }
    double *gmn = b, *gmx = b + D, *gp = b + 3 * D;
    side_forward(&sd[0], k_part, k_ref, L, D);
    side_forward(&sd[1], v_part, v_ref, L, D);
    double R = 0.0;
    for (int t = 0; t < L; t++)
        if (needle[t]) R += sd[0].p[t] + w * sd[1].p[t];
    double aux = -log(R / (1.0 + w));
    if (dk_part) {
        /* d aux / d p_X[t] = -a_X [t in N] / R, a_K = 1, a_V = w */
        for (int i = 0; i < 2; i++) {
            double a = i == 0 ? 1.0 : w;
            for (int t = 0; t < L; t++) gp[t] = needle[t] ? -g * a / R : 0.0;
            side_backward(&sd[i], gp, i == 0 ? k_part : v_part, L, D, i == 0 ? dk_part : dv_part,
                          i == 0 ? dk_ref : dv_ref, gmn, gmx);
        }
    }
    free(buf);
    free(ibuf);
    return aux;
}

int lrsa_lagkv_salience_terms(const uint8_t *needle, int T, const lrsa_lagkv_params *p) {
    int n = 0, ns = lrsa_lagkv_num_scored(T, p);
    for (int j = 0; j < ns; j++) {
        int any = 0;
        for (int t = p->sink + j * p->lag; t < p->sink + (j + 1) * p->lag && !any; t++)
            any = needle[t] != 0;
        n += any;
    }
    return n;
}

double lrsa_lagkv_salience_layer(const float *k, const float *v, int64_t kv_stride, int T, int Hkv,
                                 int D, const lrsa_lagkv_params *p, const uint8_t *needle, double g,
                                 float *dk, float *dv) {
    const int L = p->lag, ns = lrsa_lagkv_num_scored(T, p);
    const size_t LD = (size_t)L * D;
    double *x = lrsa_malloc(8 * LD * sizeof(double)), *dx = x + 4 * LD;
    double sum = 0.0;
    for (int j = 0; j < ns; j++) {
        const int start = p->sink + j * L;
        int any = 0;
        for (int t = start; t < start + L && !any; t++) any = needle[t] != 0;
        if (!any) continue;
        for (int h = 0; h < Hkv; h++) {
            /* gather K, V of P_j then P_{j+1}: x = [k_part | v_part | k_ref | v_ref] */
            for (int part = 0; part < 2; part++)
                for (int t = 0; t < L; t++) {
                    int64_t row = (int64_t)(start + part * L + t) * kv_stride + (int64_t)h * D;
                    for (int c = 0; c < D; c++) {
                        x[(2 * part) * LD + (size_t)t * D + c] = k[row + c];
                        x[(2 * part + 1) * LD + (size_t)t * D + c] = v[row + c];
                    }
                }
            if (dk) memset(dx, 0, 4 * LD * sizeof(double));
            sum += lrsa_lagkv_salience_partition(x, x + LD, x + 2 * LD, x + 3 * LD, L, D,
                                                 p->value_weight, needle + start, g, dk ? dx : NULL,
                                                 dx + LD, dx + 2 * LD, dx + 3 * LD);
            if (!dk) continue;
            for (int part = 0; part < 2; part++)
                for (int t = 0; t < L; t++) {
                    int64_t row = (int64_t)(start + part * L + t) * kv_stride + (int64_t)h * D;
                    for (int c = 0; c < D; c++) {
                        dk[row + c] += (float)dx[(2 * part) * LD + (size_t)t * D + c];
                        dv[row + c] += (float)dx[(2 * part + 1) * LD + (size_t)t * D + c];
                    }
                }
        }
    }
    free(x);
    return sum;
}
