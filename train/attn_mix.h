/* Per-sample training attention: LRSA at one keep fraction (the default), LRSA at a keep drawn
 * from a list (`attention.keep_mix`), and/or dense attention for a share of the samples
 * (`attention.dense_mix`). The draw is a hash of (seed, step, sample index), not a stream of
 * the run's RNG, so it is the same on any number of ranks, after a resume, and whatever order
 * the samples of a step run in. */
#ifndef LRSA_TRAIN_ATTN_MIX_H
#define LRSA_TRAIN_ATTN_MIX_H
#include <stdint.h>

#include "base/error.h"
#include "data/dataset.h"
#include "model/model.h"

#define LRSA_ATTN_MIX_MAX 8

typedef struct lrsa_attn_mix {
    lrsa_attn_config base;          /* mode and LagKV parameters of the config */
    float keeps[LRSA_ATTN_MIX_MAX]; /* keep fractions drawn from (n_keeps = 0: base's keep) */
    int n_keeps;
    double dense_share; /* probability that an LRSA sample runs dense instead */
    uint64_t seed;
} lrsa_attn_mix;

/* Parses a keep list: numbers or fractions ("0.5, 1/4, 0.125"), each in (0, 1], separated by
 * commas or spaces, at most LRSA_ATTN_MIX_MAX. Empty text gives n = 0. Errors name `what`. */
int lrsa_attn_mix_parse_keeps(const char *text, float *keeps, int *n, const char *what,
                              lrsa_err *e);

/* The attention of sample `index` (its index in the training set) at optimizer step `step`.
 * Dense base configs always give dense. */
lrsa_attn_config lrsa_attn_mix_pick(const lrsa_attn_mix *m, int64_t step, int64_t index);

/* LRSA training leaves samples shorter than sink + 2*lag dense: when the training set (its
 * samples within max_len; <= 0: all) has such samples, writes a warning naming their lengths
 * and the attention.lag that would compress them into buf and returns 1, else 0. */
int lrsa_attn_mix_short_note(const lrsa_attn_mix *m, const lrsa_dataset *d, int64_t max_len,
                             char *buf, size_t cap);

/* "lrsa keep 0.25", "lrsa keep {0.5, 0.25, 0.125}, dense 30 %", "dense" (for the start line). */
void lrsa_attn_mix_describe(const lrsa_attn_mix *m, char *out, size_t cap);
#endif
