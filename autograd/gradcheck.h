/* Finite-difference gradient checking for hand-written backward passes (ops, layers, or a
 * whole model).
 *
 * The caller owns the computation. It hands over:
 *   loss(ctx)  recomputes a scalar from the current inputs (accumulate it in double);
 *   x[n]       one float input or parameter array that the loss reads; the checker perturbs it
 *              in place and restores every element bit-exactly before returning;
 *   g[n]       the analytic gradient dloss/dx (from the backward being tested).
 * Check each input/parameter array with its own call.
 *
 * Two checks:
 *  1. Coordinates: central differences on every element, or on a random subset of
 *     opts->max_coords elements when n is larger.
 *     err_i = |fd_i - g_i| / (max(|fd_i|, |g_i|) + floor), floor = floor_frac * rms(g).
 *  2. Directions: opts->n_dirs random Gaussian directions u (element i scaled by its step
 *     h_i); compares diff = L(x+) - L(x-) with pred = g . (x+ - x-),
 *     err = |diff - pred| / max(|diff|, |pred|). This sees every element at once, so a formula
 *     wrong only on unchecked coordinates still shows up. It has no floor: an array whose
 *     whole gradient is below the loss noise (~1e-7 of the loss) needs n_dirs = 0.
 * The perturbed points are rounded to float, so the checker measures the step actually taken,
 * (float)(x + h) - (float)(x - h) in double, and divides by it: no step-rounding error.
 *
 * Why float32 tolerances of about 1e-2 are sound:
 *  - The loss is computed from fp32 intermediates, so it carries an absolute noise of about
 *    k * 2^-24 * S, where S = sum of |terms| in the loss (k a small op-count factor). The
 *    central difference divides the noise by 2h: error_noise ~ k * 6e-8 * S / h.
 *  - Truncation error of a central difference is h^2 * |f'''| / 6 (zero for a loss that is
 *    quadratic in x, e.g. through a linear layer).
 *  - The default step h = rel_step * max(|x_i|, rms(x)) with rel_step = 1e-2 balances
 *    the two for O(1) data: with S ~ 1e2 the noise term is ~1e-3 relative to O(1) gradients,
 *    and the truncation term ~1e-4. Correct ops measure at most 7e-4 (tests/kernels).
 *  - A wrong formula (dropped term, wrong sign, factor 2, wrong index) changes the gradient
 *    by a relative amount of order 1, or 1/sqrt(C) for the weakest coupling terms such as
 *    RMSNorm's mean term. Testing with small widths (C ~ 13: 1/sqrt(C) ~ 0.28) keeps that
 *    well above a 1e-2 tolerance. Use small, odd sizes and O(1) data when checking.
 */
#ifndef LRSA_GRADCHECK_H
#define LRSA_GRADCHECK_H

#include <stdint.h>

typedef double (*lrsa_gradcheck_loss_fn)(void *ctx);

typedef struct lrsa_gradcheck_opts {
    int64_t max_coords;    /* coordinates checked at most (random subset above); 0 = all */
    int n_dirs;            /* random directional checks (0 = none) */
    double rel_step;       /* h = rel_step * max(|x_i|, abs_step_floor); 0 = 1e-2 */
    double abs_step_floor; /* 0 = rms(x), so small weights (scale 0.02) get a step to scale */
    double floor_frac;     /* floor of the coordinate error denominator, times rms(g); 0 = 0.05 */
    uint64_t seed;         /* subset and directions */
} lrsa_gradcheck_opts;

typedef struct lrsa_gradcheck_result {
    double coord_err;    /* worst coordinate error */
    int64_t worst_index; /* its element index (-1 when no coordinate was checked) */
    double worst_fd;     /* finite difference at worst_index */
    double worst_grad;   /* analytic gradient at worst_index */
    double dir_err;      /* worst directional error */
    int64_t coords_checked;
} lrsa_gradcheck_result;

/* Default options: all coordinates up to 256 (else a random 256), 3 directions. */
lrsa_gradcheck_opts lrsa_gradcheck_defaults(void);

/* Runs both checks; returns max(coord_err, dir_err). res (may be NULL) gets the details.
 * x is restored exactly on return, and loss(ctx) is evaluated once more at the restored x, so
 * whatever the forward caches (activations, rstd) again match the unperturbed inputs.
 * opts may be NULL (defaults). */
double lrsa_gradcheck(lrsa_gradcheck_loss_fn loss, void *ctx, float *x, const float *g, int64_t n,
                      const lrsa_gradcheck_opts *opts, lrsa_gradcheck_result *res);

#endif
