/* The GPU side of a training run (device: cuda): the model's memory plan on the device, made
 * once before step 1 from the host state (the tensor table's fp32 weights and the optimizer's
 * moments, fresh or read from a checkpoint):
 *   the bf16 weights (what the forward reads), fp32 gradients, the workspace of the op table
 *   (activations, per-layer recomputation buffers, kernel workspaces), sized for the longest
 *   sequence of the run, and the fp32 master weights and AdamW moments: whole on one GPU, or
 *   this rank's ZeRO-1 shard of them in data parallel (zero_gpu.h).
 * A step is then: zero the gradients, forward+backward of each local sample through the one
 * model code on the CUDA op table (in data parallel the last backward's readiness callbacks
 * start the gradient buckets' reduce-scatter on a separate stream), the gradient norm and
 * clipping factor on the device, the fused AdamW update that also writes the bf16 copy (and in
 * data parallel the all-gather of the bf16 weights). Checkpoints and evaluation download the
 * master weights and moments into the host state (gathering the shards), so the HDF5 checkpoint
 * is the CPU trainer's format: a GPU checkpoint resumes on the CPU, on one GPU or on any number
 * of ranks, and the reverse. Work runs on the current CUDA device (in data parallel the one
 * lrsa_nccl_init chose by local rank).
 * CUDA graphs (one GPU): each sample's forward and backward is staged (its ids, targets and
 * weights copied into the workspace's fixed buffers), then run as a CUDA graph keyed by its shape
 * (step_graphs.h: direct the first time a shape comes, captured the second, launched after);
 * the loss is summed on the device and read back with the gradient norm, the step's one
 * synchronisation. docs/CUDA.md says what is captured and why. Status: compiled, never run on a
 * GPU. */
#ifndef LRSA_TRAIN_TRAIN_GPU_H
#define LRSA_TRAIN_TRAIN_GPU_H
#include <stdint.h>

#include "base/error.h"
#include "model/model.h"
#include "train/comm.h"
#include "train/optim.h"

typedef struct lrsa_train_gpu lrsa_train_gpu;

/* Data parallel over an lrsa_comm with an NCCL communicator (lrsa_nccl_init): ZeRO-1. */
typedef struct lrsa_train_gpu_dp {
    const lrsa_comm *comm;
    int64_t bucket_elems; /* at least this many gradients per reduce-scatter bucket */
    int reduce_bf16;      /* comm.reduce_dtype: bf16 */
    int overlap;          /* comm.overlap: buckets start during the last backward */
} lrsa_train_gpu_dp;

/* Builds the device state for sequences of up to max_T tokens (one at a time). opt is the host
 * optimizer over the whole arena (lo = 0, hi = numel: its moments are whole, also in data
 * parallel, where each rank keeps its shard of them on the device). dp NULL: one GPU. NULL with
 * the reason in e when the build has no CUDA or the machine no usable device, or (data
 * parallel) the engine cannot be made. */
lrsa_train_gpu *lrsa_train_gpu_new(lrsa_model *m, const lrsa_adamw *opt,
                                   const lrsa_attn_config *attn, int max_T, int recompute,
                                   const lrsa_train_gpu_dp *dp, lrsa_err *e);
void lrsa_train_gpu_free(lrsa_train_gpu *g);
/* The workspace to pass to lrsa_model_forward_backward (gradients accumulate on the device). */
lrsa_workspace *lrsa_train_gpu_workspace(lrsa_train_gpu *g);
/* Zeroes the gradients and the step's device loss sum. */
void lrsa_train_gpu_zero_grad(lrsa_train_gpu *g);
/* CUDA graphs for the samples' forward and backward: on by default on one GPU; off when on is 0
 * or the environment has LRSA_CUDA_GRAPHS=0. Data parallel never uses them (the gradient buckets'
 * NCCL calls start from inside the backward). */
void lrsa_train_gpu_set_graphs(lrsa_train_gpu *g, int on);
/* One sequence of T tokens (B = 1): forward and backward of the model's CUDA op table, the
 * gradients added on the device and its weighted loss to the step's device loss sum (read back
 * by lrsa_train_gpu_grad_norm). Enqueues only: no synchronisation. attn and recompute as for
 * lrsa_model_forward_backward. */
void lrsa_train_gpu_sample(lrsa_train_gpu *g, lrsa_model *m, const int32_t *ids,
                           const float *loss_weight, int T, const lrsa_attn_config *attn,
                           int recompute);
/* How the samples ran so far: direct launches, graphs captured, graph launches. */
typedef struct lrsa_train_gpu_graph_stats {
    int64_t direct, captured, launched;
} lrsa_train_gpu_graph_stats;
lrsa_train_gpu_graph_stats lrsa_train_gpu_graphs(const lrsa_train_gpu *g);
/* Data parallel: the next backward is this rank's last of the step (its readiness callbacks
 * start the gradient buckets). No-op on one GPU. */
void lrsa_train_gpu_arm(lrsa_train_gpu *g);
/* Data parallel: reduce-scatters the buckets not yet started and makes the compute stream wait
 * for the reduction. Every rank calls it once per step. No-op on one GPU. */
int lrsa_train_gpu_reduce(lrsa_train_gpu *g, lrsa_err *e);
/* Test hook of the trainer: makes gradient element 0 (data parallel: this rank's first reduced
 * element) NaN. */
void lrsa_train_gpu_poison_grad(lrsa_train_gpu *g);
/* Global gradient norm into *norm (the clipping factor for max_norm is kept on the device) and
 * this rank's loss sum of the samples since lrsa_train_gpu_zero_grad into *loss: one
 * synchronisation. -1 with the reason in e when a sample had a target outside the vocabulary. */
int lrsa_train_gpu_grad_norm(lrsa_train_gpu *g, double max_norm, double *norm, double *loss,
                             lrsa_err *e);
/* AdamW with the clipping factor of the last grad_norm call, learning rate lr (and, data
 * parallel, the all-gather of the updated bf16 weights). */
int lrsa_train_gpu_adamw(lrsa_train_gpu *g, double lr, lrsa_err *e);
/* Copies the fp32 master weights into the table's PARAM arena and, when opt is not NULL, the
 * moments into opt->m/v and the step count into opt->t, for a checkpoint, an evaluation or an
 * export. Data parallel: gathered on rank `root` only, or on every rank (root = -1); every rank
 * calls it. */
int lrsa_train_gpu_download(lrsa_train_gpu *g, lrsa_model *m, lrsa_adamw *opt, int root,
                            lrsa_err *e);
#endif
