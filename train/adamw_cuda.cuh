// One AdamW element update, shared by the whole-arena kernel (optim_cuda.cu) and the ZeRO-1
// shard kernel (zero_cuda.cu), so both apply exactly lrsa_adamw_step's arithmetic.
#ifndef LRSA_TRAIN_ADAMW_CUDA_CUH
#define LRSA_TRAIN_ADAMW_CUDA_CUH
#include <math.h>
#include <stdint.h>

extern "C" {
#include "train/optim.h"
}

struct lrsa_adamw_consts {
    float b1, b2, step_size, inv_sqrt_bc2, eps, decay_factor;
    int apply_decay;
};

// The host-side constants of update number t (already incremented), as lrsa_adamw_step
// computes them.
static inline lrsa_adamw_consts lrsa_adamw_consts_for(const lrsa_adamw_cuda *o, double lr) {
    const double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    lrsa_adamw_consts k;
    k.b1 = (float)o->beta1;
    k.b2 = (float)o->beta2;
    k.step_size = (float)(lr / bc1);
    k.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    k.eps = (float)o->eps;
    k.decay_factor = (float)(1.0 - lr * o->weight_decay);
    k.apply_decay = o->weight_decay > 0 && o->n_decay > 0;
    return k;
}

// Whether arena element i lies in one of the sorted decay ranges.
static __device__ inline bool lrsa_in_decay(const lrsa_decay_range *d, int n, int64_t i) {
    int lo = 0, hi = n; // first range with d.hi > i
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (d[mid].hi > i)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo < n && d[lo].lo <= i;
}

// Returns the updated parameter p (arena element i) and updates its moments in place.
static __device__ inline float lrsa_adamw_elem(float p, float g, float *m, float *v, bool decay,
                                               const lrsa_adamw_consts &k) {
    if (decay) p *= k.decay_factor;
    float mj = k.b1 * *m + (1.0f - k.b1) * g;
    float vj = k.b2 * *v + (1.0f - k.b2) * g * g;
    *m = mj;
    *v = vj;
    return p - k.step_size * mj / (sqrtf(vj) * k.inv_sqrt_bc2 + k.eps);
}
#endif
