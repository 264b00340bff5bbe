/* The GPU side of a training run (device: cuda): the model's memory plan on the device, made
 * once before step 1 from the host state (the tensor table's fp32 weights and the optimizer's
 * moments, fresh or read from a checkpoint):
 *   fp32 master weights, their bf16 copy (what the forward reads), fp32 gradients, the AdamW
 *   moments, and the workspace of the op table (activations, per-layer recomputation buffers,
 *   kernel workspaces), sized for the longest sequence of the run.
 * A step is then: zero the gradients, forward+backward of each sample through the one model code
 * on the CUDA op table, the gradient norm and clipping factor on the device, the fused AdamW
 * update that also writes the bf16 copy. Checkpoints and evaluation download the master weights
 * and moments into the host state, so the HDF5 checkpoint is the CPU trainer's format (a GPU
 * checkpoint resumes on the CPU and the reverse). One GPU, one rank. */
#ifndef LRSA_TRAIN_TRAIN_GPU_H
#define LRSA_TRAIN_TRAIN_GPU_H
#include <stdint.h>

#include "base/error.h"
#include "model/model.h"
#include "train/optim.h"

typedef struct lrsa_train_gpu lrsa_train_gpu;

/* Builds the device state for sequences of up to max_T tokens (one at a time). NULL with the
 * reason in e when the build has no CUDA or the machine no usable device. */
lrsa_train_gpu *lrsa_train_gpu_new(lrsa_model *m, const lrsa_adamw *opt,
                                   const lrsa_attn_config *attn, int max_T, int recompute,
                                   lrsa_err *e);
void lrsa_train_gpu_free(lrsa_train_gpu *g);
/* The workspace to pass to lrsa_model_forward_backward (gradients accumulate on the device). */
lrsa_workspace *lrsa_train_gpu_workspace(lrsa_train_gpu *g);
void lrsa_train_gpu_zero_grad(lrsa_train_gpu *g);
/* Test hook of the trainer: makes gradient element 0 NaN. */
void lrsa_train_gpu_poison_grad(lrsa_train_gpu *g);
/* Global gradient norm (double; the clipping factor for max_norm is kept on the device). */
double lrsa_train_gpu_grad_norm(lrsa_train_gpu *g, double max_norm);
/* AdamW with the clipping factor of the last grad_norm call, learning rate lr. */
void lrsa_train_gpu_adamw(lrsa_train_gpu *g, double lr);
/* Copies the fp32 master weights into the table's PARAM arena and the moments into opt->m/v
 * (and opt->t), for a checkpoint, an evaluation or an export. */
void lrsa_train_gpu_download(lrsa_train_gpu *g, lrsa_model *m, lrsa_adamw *opt);
#endif
