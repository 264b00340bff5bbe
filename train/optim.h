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

#ifdef LRSA_HAVE_CUDA
/* CUDA twins of the update and the norm (optim_cuda.cu), over device arenas: fp32 master
 * weights, fp32 gradients, fp32 moments, plus the bf16 copy of the weights the forward reads. */
#include <cuda_runtime_api.h>

#include "kernels/device/device_buffer.h"

typedef struct lrsa_adamw_cuda {
    double beta1, beta2, eps, weight_decay;
    int64_t lo, hi;          /* the shard, as the host optimizer's */
    float *m, *v;            /* device [hi - lo] */
    lrsa_decay_range *decay; /* device, sorted by lo */
    int n_decay;
    int64_t t;
} lrsa_adamw_cuda;

/* Device state mirroring `host` (hyperparameters, shard, decay ranges, step count and the current
 * moments, so a resumed optimizer carries over). */
void lrsa_adamw_cuda_init(lrsa_adamw_cuda *o, const lrsa_adamw *host);
void lrsa_adamw_cuda_free(lrsa_adamw_cuda *o);
/* lrsa_adamw_step on the device, fused: decay, moments, update of param[lo, hi), and
 * param_bf16[lo, hi) = bf16(new param) when param_bf16 is not NULL. grad_scale is a device float
 * (the clipping factor lrsa_grad_norm_clip_cuda wrote) or NULL for 1, so no host sync is needed. */
void lrsa_adamw_step_cuda(lrsa_adamw_cuda *o, float *param, const float *grad,
                          lrsa_bf16 *param_bf16, double lr, const float *grad_scale,
                          cudaStream_t stream);

/* Device workspace bytes lrsa_grad_norm_clip_cuda needs (a constant; allocate once). */
size_t lrsa_grad_norm_workspace_cuda(void);
/* norm[0] = sqrt(sum g^2) (double accumulation, as lrsa_grad_norm) and, when scale is not NULL,
 * scale[0] = (float)lrsa_clip_scale(norm, max_norm); both device pointers. Two passes with a
 * fixed grid (partials per block, then one block sums them in a fixed order): deterministic and
 * the same bits on every device. */
void lrsa_grad_norm_clip_cuda(double *norm, float *scale, const float *g, int64_t n,
                              double max_norm, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream);
/* The last stage of lrsa_grad_norm_clip_cuda on caller-made partial sums of squares (e.g.
 * all-reduced over ranks): norm[0] = sqrt(sum of partials[0 .. nparts) in a fixed order), and
 * scale[0] the clip factor (when not NULL). */
void lrsa_norm_from_partials_cuda(double *norm, float *scale, const double *partials, int nparts,
                                  double max_norm, cudaStream_t stream);
#endif
#endif
