/* ZeRO-1 data parallelism on GPUs, over the communication interface (comm.h, NCCL backend) and
 * the bucket layout (zero_layout.h). Per rank:
 *   - the whole bf16 weights (what the forward reads) and the whole fp32 gradient arena, both
 *     `padded` elements long, owned by the caller (the GPU trainer's device state);
 *   - its shard of the fp32 master weights and AdamW moments (layout.shard elements each).
 * A step: the backward's readiness callback (lrsa_workspace_on_grads_ready) records an event
 * on the compute stream per finished bucket; a separate communication stream waits for it and
 * reduce-scatters the bucket (fp32, or bf16 through a conversion buffer), so communication runs
 * behind the rest of the backward. Then the gradient norm over the shards (partial sums of
 * squares all-reduced, fixed order), the clip factor, AdamW on the shard (writing the new bf16
 * weights of its pieces) and an all-gather of every bucket's bf16 weights, in forward order; with
 * overlap each bucket records an event and the next forward's weight-readiness callback
 * (model/weights_needed.h) makes the compute stream wait only for the buckets it is about to
 * read, so the gather of the later layers runs behind the forward of the first.
 *
 * Checkpoints: lrsa_zero_gpu_download gathers the shards into whole host arrays (PARAM, m, v)
 * in the CPU trainer's format, so a run resumes on any number of ranks, GPU or CPU.
 * Status: compiled (LRSA_HAVE_CUDA), NEVER RUN ON A GPU. */
#ifndef LRSA_TRAIN_ZERO_GPU_H
#define LRSA_TRAIN_ZERO_GPU_H

#include <stdint.h>

#include "train/comm.h"
#include "train/optim.h"
#include "train/zero_layout.h"

typedef struct lrsa_zero_gpu_opts {
    int reduce_bf16; /* reduce-scatter the gradients in bf16 (comm.reduce_dtype: bf16) */
    int overlap;     /* start buckets from the readiness callback (comm.overlap) */
} lrsa_zero_gpu_opts;

#ifdef LRSA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "kernels/device/device_buffer.h"

typedef struct lrsa_zero_gpu lrsa_zero_gpu;

/* Makes the engine. grad and param_bf16: device arenas of L->padded elements (padding zero).
 * param_full: the host fp32 weights (numel), m_full/v_full: whole host moments (NULL: zeros);
 * opt: the host optimizer (hyperparameters, decay ranges, step count t). The layout must
 * outlive the engine. Device errors abort (cuda_check.h); NCCL errors are returned. */
lrsa_zero_gpu *lrsa_zero_gpu_new(const lrsa_comm *c, const lrsa_zero_layout *L,
                                 const lrsa_adamw *opt, const float *param_full,
                                 const float *m_full, const float *v_full, float *grad,
                                 lrsa_bf16 *param_bf16, cudaStream_t compute,
                                 const lrsa_zero_gpu_opts *o, lrsa_err *e);
void lrsa_zero_gpu_free(lrsa_zero_gpu *z);

/* The readiness callback (ctx = the engine): register with lrsa_workspace_on_grads_ready. */
void lrsa_zero_gpu_on_ready(void *z, int64_t offset);
/* The forward's weight-readiness callback (ctx = the engine): register with
 * lrsa_workspace_on_weights_needed when overlap is on. */
void lrsa_zero_gpu_on_weights_needed(void *z, int64_t end);
/* The next backward is this rank's last of the step: its callbacks start the buckets. */
void lrsa_zero_gpu_arm(lrsa_zero_gpu *z);
/* Starts the buckets not yet started (all of them without overlap) and makes the compute
 * stream wait for the reduction. Returns the first error of the step's NCCL calls. */
int lrsa_zero_gpu_reduce(lrsa_zero_gpu *z, lrsa_err *e);
/* Test hook of the trainer: the reduced gradient of this rank's first element becomes NaN. */
void lrsa_zero_gpu_poison_grad(lrsa_zero_gpu *z);
/* Global gradient norm (every rank gets the same value) and, on the device, the clip factor
 * for max_norm. Waits for the device (the step's one synchronisation), with the NCCL timeout. */
int lrsa_zero_gpu_grad_norm(lrsa_zero_gpu *z, double max_norm, double *norm, lrsa_err *e);
/* AdamW on the shard with the last clip factor, then the bf16 all-gather; the compute stream
 * waits for it before the next forward reads the weights (with overlap bucket by bucket, from
 * the weight-readiness callback; lrsa_zero_gpu_reduce waits for any bucket not waited for). */
int lrsa_zero_gpu_step(lrsa_zero_gpu *z, double lr, lrsa_err *e);
/* The AdamW step count. */
int64_t lrsa_zero_gpu_adam_t(const lrsa_zero_gpu *z);
/* Whole fp32 weights and moments on the host: on root only (root >= 0) or on every rank
 * (root = -1; e.g. for a CPU evaluation). Any of the three may be NULL (not wanted). */
int lrsa_zero_gpu_download(lrsa_zero_gpu *z, float *param_full, float *m_full, float *v_full,
                           int root, lrsa_err *e);

/* ---- The kernels behind it (zero_cuda.cu) ---------------------------------------------- */
/* One bucket's piece of this rank: shard slots [local, local + piece) are arena elements
 * [abs, abs + piece); only the first `real` are parameters (the rest is padding). */
typedef struct lrsa_zero_span {
    int64_t local, abs, real, piece;
} lrsa_zero_span;
enum { LRSA_ZERO_NORM_PARTS = 1024 };
/* partials[LRSA_ZERO_NORM_PARTS]: sums of squares of grad over the spans' real elements, in a
 * fixed grid (the same bits on every device). spans: device array. */
void lrsa_zero_sumsq_cuda(double *partials, const float *grad, const lrsa_zero_span *spans,
                          int n_spans, int64_t shard, cudaStream_t stream);
/* AdamW over the shard: master/m/v by shard slot, grad/param_bf16 by arena element; o's m/v/
 * decay/hyperparameters are used and o->t incremented. Padding slots are left alone. */
void lrsa_zero_adamw_cuda(lrsa_adamw_cuda *o, float *master, const float *grad,
                          lrsa_bf16 *param_bf16, const lrsa_zero_span *spans, int n_spans,
                          int64_t shard, double lr, const float *grad_scale, cudaStream_t stream);
#endif
#endif
