/* A small, fast, checkpointable random number generator (xoshiro256**, seeded by splitmix64).
 * The whole state is the struct: saving it in a checkpoint and restoring it continues the
 * stream bit-exactly. Same seed, same numbers, on every platform. */
#ifndef LRSA_RNG_H
#define LRSA_RNG_H

#include <stdint.h>

typedef struct lrsa_rng {
    uint64_t s[4];
} lrsa_rng;

void lrsa_rng_seed(lrsa_rng *r, uint64_t seed);
uint64_t lrsa_rng_u64(lrsa_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
float lrsa_rng_uniform(lrsa_rng *r);
/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint64_t lrsa_rng_below(lrsa_rng *r, uint64_t n);
/* Standard normal (Box-Muller; uses two uniforms per call, no cached second value). */
float lrsa_rng_normal(lrsa_rng *r);
/* Fisher-Yates shuffle of n int64 values. */
void lrsa_rng_shuffle_i64(lrsa_rng *r, int64_t *a, int64_t n);

#endif
