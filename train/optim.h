/* AdamW with fp32 master weights, ZeRO-1 sharded state, learning-rate schedules and global-norm
 * clipping. The parameters are the tensor table's PARAM arena (fp32 on CPU: it is the master
 * copy). Each rank owns the contiguous shard [lo, hi) of the flat arena and keeps the moments
 * m and v only for that shard; after the update the trainer all-gathers the shards. The weight
 * decay mask comes from the table (lrsa_kind_decays), element ranges intersected with the shard. */
#ifndef LRSA_TRAIN_OPTIM_H
#define LRSA_TRAIN_OPTIM_H

#include <stdint.h>

#include "autograd/tensor_table.h"
#include "train/config.h"

typedef struct lrsa_decay_range {
    int64_t lo, hi; /* element range (absolute arena offsets) that gets weight decay */
} lrsa_decay_range;

typedef struct lrsa_adamw {
    double beta1, beta2, eps, weight_decay;
    int64_t lo, hi; /* this rank's shard of the flat arena */
    float *m, *v;   /* [hi - lo] */
    int64_t t;      /* updates taken (bias correction) */
    lrsa_decay_range *decay;
    int n_decay;
} lrsa_adamw;

void lrsa_adamw_init(lrsa_adamw *o, const lrsa_tensor_table *t, int rank, int world, double beta1,
                     double beta2, double eps, double weight_decay);
void lrsa_adamw_free(lrsa_adamw *o);
/* One update of param[lo, hi) from grad[lo, hi) * grad_scale (the clipping factor). */
void lrsa_adamw_step(lrsa_adamw *o, float *param, const float *grad, double lr, double grad_scale);

/* Learning rate for 1-based step `step`: linear warmup over warmup_steps, then cosine or
 * linear decay from lr to min_lr_ratio*lr at max_steps (or constant). */
double lrsa_schedule_lr(const lrsa_train_config *c, int64_t step);

/* sqrt(sum g^2) in double over n elements. */
double lrsa_grad_norm(const float *g, int64_t n);
/* The factor that scales a gradient of norm `norm` to at most max_norm (1 when max_norm <= 0). */
double lrsa_clip_scale(double norm, double max_norm);

#endif
