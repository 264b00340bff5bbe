/* Finite-difference gradient checker; the error model is explained in gradcheck.h. */
#include "autograd/gradcheck.h"

#include <math.h>
#include <stdlib.h>

#include "base/error.h"
#include "base/rng.h"

lrsa_gradcheck_opts lrsa_gradcheck_defaults(void) {
    lrsa_gradcheck_opts o = {.max_coords = 256,
                             .n_dirs = 3,
                             .rel_step = 1e-2,
                             .abs_step_floor = 0.0,
                             .floor_frac = 0.05,
                             .seed = 0x6a7d1c3eULL};
    return o;
}

static double step_for(const lrsa_gradcheck_opts *o, float xi) {
    double a = fabs((double)xi);
    return o->rel_step * (a > o->abs_step_floor ? a : o->abs_step_floor);
}

/* Central difference on coordinate i; restores x[i]. */
static double coord_fd(lrsa_gradcheck_loss_fn loss, void *ctx, float *x, int64_t i, double h) {
    float x0 = x[i];
    float xp = (float)((double)x0 + h), xm = (float)((double)x0 - h);
    x[i] = xp;
    double lp = loss(ctx);
    x[i] = xm;
    double lm = loss(ctx);
    x[i] = x0;
    return (lp - lm) / ((double)xp - (double)xm);
}

static double coord_check(lrsa_gradcheck_loss_fn loss, void *ctx, float *x, const float *g,
                          int64_t n, const lrsa_gradcheck_opts *o, lrsa_rng *rng,
                          lrsa_gradcheck_result *r) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    double floor = o->floor_frac * sqrt(ss / (double)(n > 0 ? n : 1)) + 1e-30;
    int64_t m = (o->max_coords <= 0 || o->max_coords >= n) ? n : o->max_coords;
    int64_t *order = NULL;
    if (m < n) { /* a random subset: the first m of a shuffled index list */
        order = lrsa_malloc(sizeof(int64_t) * (size_t)n);
        for (int64_t i = 0; i < n; i++) order[i] = i;
        lrsa_rng_shuffle_i64(rng, order, n);
    }
    double worst = 0.0;
    for (int64_t k = 0; k < m; k++) {
        int64_t i = order ? order[k] : k;
        double fd = coord_fd(loss, ctx, x, i, step_for(o, x[i]));
        double an = g[i];
        double big = fabs(fd) > fabs(an) ? fabs(fd) : fabs(an);
        double err = fabs(fd - an) / (big + floor);
        if (!(err <= worst)) { /* NaN is always the worst */
            worst = isnan(err) ? INFINITY : err;
            r->worst_index = i;
            r->worst_fd = fd;
            r->worst_grad = an;
        }
    }
    free(order);
    r->coords_checked = m;
    return worst;
}

static double dir_check(lrsa_gradcheck_loss_fn loss, void *ctx, float *x, const float *g, int64_t n,
                        const lrsa_gradcheck_opts *o, lrsa_rng *rng) {
    float *x0 = lrsa_malloc(sizeof(float) * (size_t)n);
    float *xm = lrsa_malloc(sizeof(float) * (size_t)n);
    float *xp = lrsa_malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x0[i] = x[i];
    double worst = 0.0;
    for (int d = 0; d < o->n_dirs; d++) {
        for (int64_t i = 0; i < n; i++) {
            double h = step_for(o, x0[i]) * (double)lrsa_rng_normal(rng);
            xp[i] = (float)((double)x0[i] + h);
            xm[i] = (float)((double)x0[i] - h);
        }
        /* predicted change: g . (xp - xm), with the steps actually taken */
        double pred = 0.0;
        for (int64_t i = 0; i < n; i++) pred += (double)g[i] * ((double)xp[i] - (double)xm[i]);
        for (int64_t i = 0; i < n; i++) x[i] = xp[i];
        double lp = loss(ctx);
        for (int64_t i = 0; i < n; i++) x[i] = xm[i];
        double lm = loss(ctx);
        double diff = lp - lm;
        double big = fabs(diff) > fabs(pred) ? fabs(diff) : fabs(pred);
        double err = fabs(diff - pred) / (big + 1e-300);
        if (isnan(err)) err = INFINITY;
        if (err > worst) worst = err;
    }
    for (int64_t i = 0; i < n; i++) x[i] = x0[i];
    free(x0);
    free(xm);
    free(xp);
    return worst;
}

double lrsa_gradcheck(lrsa_gradcheck_loss_fn loss, void *ctx, float *x, const float *g, int64_t n,
                      const lrsa_gradcheck_opts *opts, lrsa_gradcheck_result *res) {
    lrsa_gradcheck_opts o = opts ? *opts : lrsa_gradcheck_defaults();
    lrsa_gradcheck_opts def = lrsa_gradcheck_defaults();
    if (o.rel_step <= 0) o.rel_step = def.rel_step;
    if (o.abs_step_floor <= 0) { /* the array's own scale */
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
        o.abs_step_floor = n > 0 && ss > 0 ? sqrt(ss / (double)n) : 1.0;
    }
    if (o.floor_frac <= 0) o.floor_frac = def.floor_frac;
    lrsa_gradcheck_result r = {.worst_index = -1};
    lrsa_rng rng;
    lrsa_rng_seed(&rng, o.seed);
    if (n > 0) {
        r.coord_err = coord_check(loss, ctx, x, g, n, &o, &rng, &r);
        r.dir_err = dir_check(loss, ctx, x, g, n, &o, &rng);
        (void)loss(ctx); /* leave the caller's forward caches at the unperturbed point */
    }
    if (res) *res = r;
    return r.coord_err > r.dir_err ? r.coord_err : r.dir_err;
}
