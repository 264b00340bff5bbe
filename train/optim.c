#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "kernels/cpu/cpu_threads.h"
#include "train/comm.h"

void lrsa_adamw_init(lrsa_adamw *o, const lrsa_tensor_table *t, int rank, int world, double beta1,
                     double beta2, double eps, double weight_decay) {
    memset(o, 0, sizeof *o);
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    lrsa_shard_range(t->numel, rank, world, &o->lo, &o->hi);
    int64_t n = o->hi - o->lo;
    o->m = lrsa_calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    o->v = lrsa_calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    o->decay = lrsa_calloc((size_t)(t->n > 0 ? t->n : 1), sizeof *o->decay);
    for (int i = 0; i < t->n; i++) {
        if (!lrsa_kind_decays(t->desc[i].kind)) continue;
        int64_t a = t->desc[i].offset, b = a + t->desc[i].numel;
        if (a < o->lo) a = o->lo;
        if (b > o->hi) b = o->hi;
        if (a < b) o->decay[o->n_decay++] = (lrsa_decay_range){a, b};
    }
}

void lrsa_adamw_free(lrsa_adamw *o) {
    free(o->m);
    free(o->v);
    free(o->decay);
    memset(o, 0, sizeof *o);
}

/* Threaded over elements (each element updated by one thread, the same operations as one
 * thread would do: the same bits for any thread count) and vectorised (sqrt and division are
 * correctly rounded in vector and scalar form alike). */
void lrsa_adamw_step(lrsa_adamw *o, float *param, const float *grad, double lr, double grad_scale) {
    o->t++;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, gs = (float)grad_scale;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    const float step_size = (float)(lr / bc1), inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float eps = (float)o->eps, f = (float)(1.0 - lr * o->weight_decay);
    float *m = o->m, *v = o->v;
    const int64_t lo = o->lo, n = o->hi - o->lo;
#pragma omp parallel num_threads(lrsa_cpu_threads_for(n, 12))
    {
        /* Decoupled weight decay first (as PyTorch's AdamW), only on matrices (the barrier at
         * the end of each loop keeps it before the update). */
        if (o->weight_decay > 0)
            for (int r = 0; r < o->n_decay; r++) {
                float *p = param + o->decay[r].lo;
                const int64_t len = o->decay[r].hi - o->decay[r].lo;
#pragma omp for simd schedule(static)
                for (int64_t i = 0; i < len; i++) p[i] *= f;
            }
        float *p = param + lo;
        const float *gr = grad + lo;
#pragma omp for simd schedule(static)
        for (int64_t j = 0; j < n; j++) {
            float g = gr[j] * gs;
            m[j] = b1 * m[j] + (1.0f - b1) * g;
            v[j] = b2 * v[j] + (1.0f - b2) * g * g;
            p[j] -= step_size * m[j] / (sqrtf(v[j]) * inv_sqrt_bc2 + eps);
        }
    }
}

double lrsa_schedule_lr(const lrsa_train_config *c, int64_t step) {
    if (c->warmup_steps > 0 && step <= c->warmup_steps)
        return c->lr * (double)step / (double)c->warmup_steps;
    if (!strcmp(c->decay, "constant")) return c->lr;
    int64_t span = c->max_steps - c->warmup_steps;
    double p = span > 0 ? (double)(step - c->warmup_steps) / (double)span : 1.0;
    if (p < 0) p = 0;
    if (p > 1) p = 1;
    double f = !strcmp(c->decay, "cosine") ? 0.5 * (1.0 + cos(M_PI * p)) : 1.0 - p;
    return c->lr * (c->min_lr_ratio + (1.0 - c->min_lr_ratio) * f);
}

double lrsa_grad_norm(const float *g, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    return sqrt(s);
}

double lrsa_clip_scale(double norm, double max_norm) {
    if (max_norm <= 0 || !(norm > max_norm)) return 1.0;
    return max_norm / (norm + 1e-6);
}
