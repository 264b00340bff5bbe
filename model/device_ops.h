/* The ops of one device, as the model calls them. The model's forward and backward
 * (model_forward.c, model_ops.c) are written once against this table; the table of the device
 * where the workspace lives decides which kernels run: the CPU table (fp32 activations and
 * weights, the *_cpu kernels) or the CUDA table (bf16 activations and weight copies, fp32
 * gradients and statistics, the *_cuda kernels on one stream; device_ops_cuda.cu).
 *
 * Element types: "act" buffers hold act_bytes-sized elements (fp32 on the CPU, bf16 on CUDA):
 * activations, their gradients, and the weights the forward reads. Parameter gradients
 * (dw, db, dtable, dnorm_w, dW), rstd, lse, losses and weights are fp32; ids, positions, targets
 * and selections int32. All pointers are in the device's memory (host memory for the CPU).
 * Parameter gradients accumulate, activation gradients overwrite (kernels/README.md). */
#ifndef LRSA_MODEL_DEVICE_OPS_H
#define LRSA_MODEL_DEVICE_OPS_H
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "autograd/tensor.h"
#include "kernels/attention/attention.h"
#include "kernels/lagkv/lagkv.h"
#include "kernels/lora/lora.h"
#include "model/config.h"

typedef struct lrsa_device_ops lrsa_device_ops;
struct lrsa_device_ops {
    lrsa_device device;
    const char *name; /* "cpu", "cuda" */
    size_t act_bytes; /* 4 (fp32) or 2 (bf16) */
    void *ctx;        /* the device's state: stream, library handles, workspaces */

    /* Memory: alloc never returns NULL (a failure aborts naming the size); 0 bytes is allowed.
     * upload/download move host <-> device, copy moves within the device (may not overlap). */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *p);
    void (*upload)(void *ctx, void *dst, const void *src, size_t bytes);
    void (*download)(void *ctx, void *dst, const void *src, size_t bytes);
    void (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    void (*zero)(void *ctx, void *p, size_t bytes);

    void (*embedding_fwd)(void *ctx, void *out, const int32_t *ids, const void *table, int64_t N,
                          int C);
    void (*embedding_bwd)(void *ctx, float *dtable, const void *dout, const int32_t *ids, int64_t N,
                          int C, int V);
    void (*rmsnorm_fwd)(void *ctx, void *out, float *rstd, const void *x, const void *w, int64_t N,
                        int C, float eps);
    /* dx = dresidual + norm'(dout) (dx may alias dresidual; dresidual may be NULL). */
    void (*rmsnorm_bwd)(void *ctx, void *dx, float *dw, const void *dout, const void *dresidual,
                        const void *x, const void *w, const float *rstd, int64_t N, int C);
    void (*linear_fwd)(void *ctx, void *y, const void *x, const void *w, const void *b, int64_t N,
                       int in, int out);
    void (*linear_bwd)(void *ctx, void *dx, float *dw, float *db, const void *dy, const void *x,
                       const void *w, int64_t N, int in, int out);
    /* The linear op with LoRA adapters fused in (kernels/lora/lora.h; the base weight frozen):
     * u, t and xd act-typed (xd NULL without dropout), dA and dB fp32 (NULL: dx only). NULL in
     * a table without LoRA (the CUDA table for now: docs/CUDA.md). */
    void (*lora_linear_fwd)(void *ctx, void *y, void *u, const void *x, const void *w,
                            const void *b, const void *A, const void *B, const lrsa_lora_spec *s,
                            int64_t N, int in, int out, void *xd);
    void (*lora_linear_bwd)(void *ctx, void *dx, float *dA, float *dB, const void *dy,
                            const void *x, const void *w, const void *A, const void *B,
                            const void *u, const lrsa_lora_spec *s, int64_t N, int in, int out,
                            void *t, void *xd);
    /* In-place rotation of the first n_heads heads of each row (inv_freq: the model's host
     * table; a device may use its own precomputed form of it). */
    void (*rope_fwd)(void *ctx, void *x, const int32_t *pos, const float *inv_freq, int64_t N,
                     int n_heads, int D, int64_t stride);
    void (*rope_bwd)(void *ctx, void *dx, const int32_t *pos, const float *inv_freq, int64_t N,
                     int n_heads, int D, int64_t stride);
    /* out = a + b (out may alias a). */
    void (*add)(void *ctx, void *out, const void *a, const void *b, int64_t n);
    void (*swiglu_fwd)(void *ctx, void *out, const void *gu, int64_t N, int I);
    void (*swiglu_bwd)(void *ctx, void *dgu, const void *dout, const void *gu, int64_t N, int I);
    /* The LagKV selection of the k and v heads inside the fused qkv rows (stride d->kv_stride). */
    void (*lagkv_select)(void *ctx, int32_t *sel, const void *k, const void *v, int B, int T,
                         int Hkv, int D, int64_t kv_stride, const lrsa_lagkv_params *p);
    /* Dense causal (sel NULL) or LRSA attention over the fused qkv buffer; the backward writes
     * dq, dk, dv into the fused dqkv. */
    void (*attention_fwd)(void *ctx, void *out, float *lse, const void *qkv,
                          const lrsa_attn_dims *d, const int32_t *sel, const lrsa_lagkv_params *p);
    void (*attention_bwd)(void *ctx, void *dqkv, const void *dout, const void *qkv, const void *out,
                          const float *lse, const lrsa_attn_dims *d, const int32_t *sel,
                          const lrsa_lagkv_params *p);
    /* Final RMSNorm + LM head + weighted cross-entropy (lm_head_loss.h); dh NULL: no backward.
     * Returns the weighted loss sum. */
    double (*lm_head_loss)(void *ctx, float *nll, void *dh, float *dnorm_w, float *dW,
                           const void *h, const void *norm_w, const void *W, const int32_t *targets,
                           const float *weight, int64_t N, int C, int V, float eps);
    /* lm_head_loss without host synchronisation (NULL in the CPU table), for a step captured
     * into a CUDA graph: n_active (the rows with a nonzero weight, counted by the caller) sizes
     * the work, the loss sum is ADDED to *loss_acc (device double), and a bad target or a wrong
     * n_active is recorded in *fault (device int32, -1: none) instead of aborting
     * (lrsa_lm_head_loss_cuda_async). */
    void (*lm_head_loss_acc)(void *ctx, double *loss_acc, int32_t *fault, int64_t n_active,
                             float *nll, void *dh, float *dnorm_w, float *dW, const void *h,
                             const void *norm_w, const void *W, const int32_t *targets,
                             const float *weight, int64_t N, int C, int V, float eps);
    /* fp32 logits[N, V] = W rmsnorm(h) (the block API's last step, for evaluation). */
    void (*final_logits)(void *ctx, float *logits, const void *h, const void *norm_w, const void *W,
                         int64_t N, int C, int V, float eps);
};

/* 0 when CUDA can be used; else -1 with a message that starts with `what` (a config key or
 * flag, e.g. "device: cuda"), says whether the build has no CUDA or the machine no usable device
 * (the runtime's reason) and ends with `cpu_hint` (e.g. "set device: cpu"). */
int lrsa_cuda_usable(const char *what, const char *cpu_hint, lrsa_err *e);

/* The CPU table (a static object; ctx unused). */
const lrsa_device_ops *lrsa_device_ops_cpu(void);

/* What the CUDA table must hold without allocating again: every buffer and workspace of a step
 * with at most max_B sequences of at most max_T tokens (max_T also bounds the positions). */
typedef struct lrsa_cuda_plan {
    int max_B, max_T;
    int lrsa;                /* LRSA attention will be used (its workspace is planned) */
    lrsa_lagkv_params lagkv; /* when lrsa */
    size_t gemm_workspace;   /* cuBLASLt workspace bytes (0: 32 MiB) */
    int attn_cudnn; /* attention.impl: cudnn: dense attention through cuDNN's fused attention
                     * (its plans and workspace made here; not with lrsa) */
} lrsa_cuda_plan;

/* Creates the CUDA table on device 0 with everything in the plan allocated. Returns NULL with
 * the reason in e when this build has no CUDA ("built without CUDA") or the machine has no
 * usable CUDA device (the runtime's message), or attn_cudnn is asked of a build without cuDNN,
 * with lrsa, or cuDNN has no engine for the shape. inv_freq: the model's RoPE table [D/2]. */
lrsa_device_ops *lrsa_device_ops_cuda_new(const lrsa_model_config *c, const float *inv_freq,
                                          const lrsa_cuda_plan *plan, lrsa_err *e);
void lrsa_device_ops_cuda_free(lrsa_device_ops *ops);
/* The cudaStream_t every op of a CUDA table runs on (NULL for the CPU table). */
void *lrsa_device_ops_cuda_stream(const lrsa_device_ops *ops);
/* Waits for the table's stream (and reports any asynchronous error, aborting with file:line). */
void lrsa_device_ops_sync(const lrsa_device_ops *ops);
#endif
