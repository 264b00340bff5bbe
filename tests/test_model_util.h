/* Helpers for tests that build small random models (tests/model, tests/gpu/gpu_tiny_model.h).
 * Header-only, so GPU tests can use it as well. */
#ifndef LRSA_TEST_MODEL_UTIL_H
#define LRSA_TEST_MODEL_UTIL_H
#include <stdint.h>

#include "base/rng.h"
#include "model/model.h"

/* Moves every norm weight and bias by scale * N(0, 1) (from seed, in table order), so that their
 * gradients are not trivial: after lrsa_model_init_random (norms 1, biases 0) they become
 * 1 + scale * N and scale * N. */
static inline void tu_perturb_norms_biases(lrsa_model *m, uint64_t seed, float scale) {
    lrsa_rng r;
    lrsa_rng_seed(&r, seed);
    for (int i = 0; i < m->table.n; i++) {
        const lrsa_param_desc *d = &m->table.desc[i];
        float *p = lrsa_table_ptr(&m->table, LRSA_ROLE_PARAM, i);
        if (d->kind == LRSA_KIND_NORM || d->kind == LRSA_KIND_BIAS)
            for (int64_t j = 0; j < d->numel; j++) p[j] += scale * lrsa_rng_normal(&r);
    }
}
#endif
