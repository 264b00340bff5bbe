// The GPU side of a training run (train_gpu.h): the device arenas, the CUDA op table and its
// workspace; on one GPU the norm/clip and AdamW kernels of optim_cuda.cu on the table's stream,
// in data parallel the ZeRO-1 engine (zero_gpu.h) over the same arenas. Compiled, never run on a
// GPU (runs in the emulated CI tests).
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/device/device_buffer.h"
#include "model/device_ops.h"
#include "model/weights_needed.h"
#include "train/train_gpu.h"
#include "train/zero_gpu.h"
}
#include <stdlib.h>

struct lrsa_train_gpu {
    lrsa_device_ops *ops;
    cudaStream_t stream;
    lrsa_workspace *ws;
    int64_t n;        // parameters
    int64_t padded;   // arena elements on the device: n, or the ZeRO layout's padded length
    lrsa_bf16 *param; // bf16 [padded], what the forward reads
    float *grad;      // fp32 [padded]
    // one GPU: the whole master copy and optimizer
    lrsa_adamw_cuda opt;
    float *master; // fp32 [n]
    double *norm;  // device [1]
    float *scale;  // device [1], the clipping factor
    void *norm_ws;
    size_t norm_ws_bytes;
    // data parallel: the shard of the master copy and moments lives in the engine
    lrsa_zero_layout layout;
    lrsa_zero_gpu *zero; // NULL on one GPU
};

// The one-GPU optimizer state: the fp32 master weights and AdamW's moments, whole.
static void one_gpu_state(lrsa_train_gpu *g, const lrsa_model *m, const lrsa_adamw *opt) {
    lrsa_device_ops *ops = g->ops;
    size_t n = (size_t)(g->n > 0 ? g->n : 1);
    g->master = (float *)ops->alloc(ops->ctx, sizeof(float) * n);
    g->norm = (double *)ops->alloc(ops->ctx, sizeof(double));
    g->scale = (float *)ops->alloc(ops->ctx, sizeof(float));
    g->norm_ws_bytes = lrsa_grad_norm_workspace_cuda();
    g->norm_ws = ops->alloc(ops->ctx, g->norm_ws_bytes);
    ops->upload(ops->ctx, g->master, m->table.arena[LRSA_ROLE_PARAM], sizeof(float) * g->n);
    lrsa_device_ops_sync(ops); // lrsa_adamw_cuda_init copies on the legacy stream
    lrsa_adamw_cuda_init(&g->opt, opt);
}

// The ZeRO-1 engine over the arenas and the layout made in lrsa_train_gpu_new. -1 with the
// reason in e.
static int data_parallel_state(lrsa_train_gpu *g, const lrsa_model *m, const lrsa_adamw *opt,
                               const lrsa_train_gpu_dp *dp, lrsa_err *e) {
    lrsa_device_ops_sync(g->ops); // the engine uploads on the legacy stream
    lrsa_zero_gpu_opts zo = {dp->reduce_bf16, dp->overlap};
    g->zero = lrsa_zero_gpu_new(dp->comm, &g->layout, opt, m->table.arena[LRSA_ROLE_PARAM], opt->m,
                                opt->v, g->grad, g->param, g->stream, &zo, e);
    return g->zero ? 0 : -1;
}

extern "C" lrsa_train_gpu *lrsa_train_gpu_new(lrsa_model *m, const lrsa_adamw *opt,
                                              const lrsa_attn_config *attn, int max_T,
                                              int recompute, const lrsa_train_gpu_dp *dp,
                                              lrsa_err *e) {
    lrsa_cuda_plan plan = {1, max_T, attn->mode == LRSA_ATTN_LRSA, attn->lagkv, 0, attn->cudnn};
    lrsa_device_ops *ops = lrsa_device_ops_cuda_new(&m->cfg, m->inv_freq, &plan, e);
    if (!ops) return NULL;
    LRSA_CHECK(opt->lo == 0 && opt->hi == m->table.numel, "(the host optimizer holds the arena)");
    lrsa_train_gpu *g = (lrsa_train_gpu *)lrsa_calloc(1, sizeof *g);
    g->ops = ops;
    g->stream = (cudaStream_t)lrsa_device_ops_cuda_stream(ops);
    g->n = g->padded = m->table.numel;
    if (dp) { // buckets at the model's readiness points; pieces of 64 elements (128 bytes of bf16)
        int64_t *ready =
            (int64_t *)lrsa_malloc(sizeof(int64_t) * (size_t)(m->cfg.num_hidden_layers + 2));
        int n_ready = lrsa_model_grad_ready_offsets(m, ready);
        lrsa_zero_layout_init(&g->layout, ready, n_ready, g->n, dp->comm->world, dp->comm->rank,
                              dp->bucket_elems > 0 ? dp->bucket_elems : 1, 64);
        free(ready);
        g->padded = g->layout.padded;
    }
    size_t P = (size_t)(g->padded > 0 ? g->padded : 1);
    g->param = (lrsa_bf16 *)ops->alloc(ops->ctx, sizeof(lrsa_bf16) * P);
    g->grad = (float *)ops->alloc(ops->ctx, sizeof(float) * P);
    // the bf16 weights from the host's fp32 ones, staged through grad; the padding stays zero
    ops->zero(ops->ctx, g->grad, sizeof(float) * P);
    ops->upload(ops->ctx, g->grad, m->table.arena[LRSA_ROLE_PARAM], sizeof(float) * g->n);
    lrsa_bf16_from_f32_cuda(g->param, g->grad, (int64_t)P, g->stream);
    if (!dp) {
        one_gpu_state(g, m, opt);
    } else if (data_parallel_state(g, m, opt, dp, e)) {
        lrsa_train_gpu_free(g);
        return NULL;
    }
    g->ws = lrsa_workspace_new_on(ops);
    lrsa_workspace_bind_params(g->ws, g->param, g->grad);
    lrsa_workspace_reserve(g->ws, m, 1, max_T, attn, recompute);
    if (g->zero && dp->overlap) { // reduce-scatter behind the backward, gather behind the forward
        lrsa_workspace_on_grads_ready(g->ws, lrsa_zero_gpu_on_ready, g->zero);
        lrsa_workspace_on_weights_needed(g->ws, lrsa_zero_gpu_on_weights_needed, g->zero);
    }
    lrsa_dev_sync();
    return g;
}

extern "C" void lrsa_train_gpu_free(lrsa_train_gpu *g) {
    if (!g) return;
    lrsa_zero_gpu_free(g->zero); // waits for its streams unless the communicator was aborted
    if (!g->zero) lrsa_device_ops_sync(g->ops);
    if (g->ws) lrsa_workspace_free(g->ws);
    if (g->master) lrsa_adamw_cuda_free(&g->opt);
    void *bufs[] = {g->master, g->param, g->grad, g->norm, g->scale, g->norm_ws};
    for (void *b : bufs)
        if (b) g->ops->free(g->ops->ctx, b);
    lrsa_zero_layout_free(&g->layout);
    lrsa_device_ops_cuda_free(g->ops);
    free(g);
}

extern "C" lrsa_workspace *lrsa_train_gpu_workspace(lrsa_train_gpu *g) {
    return g->ws;
}

extern "C" void lrsa_train_gpu_zero_grad(lrsa_train_gpu *g) {
    g->ops->zero(g->ops->ctx, g->grad, sizeof(float) * (size_t)g->padded);
}

extern "C" void lrsa_train_gpu_arm(lrsa_train_gpu *g) {
    if (g->zero) lrsa_zero_gpu_arm(g->zero);
}

extern "C" int lrsa_train_gpu_reduce(lrsa_train_gpu *g, lrsa_err *e) {
    return g->zero ? lrsa_zero_gpu_reduce(g->zero, e) : 0;
}

extern "C" void lrsa_train_gpu_poison_grad(lrsa_train_gpu *g) {
    if (g->zero)
        lrsa_zero_gpu_poison_grad(g->zero);
    else if (g->n > 0)
        CUDA_CHECK(cudaMemsetAsync(g->grad, 0xFF, sizeof(float), g->stream));
}

extern "C" int lrsa_train_gpu_grad_norm(lrsa_train_gpu *g, double max_norm, double *norm,
                                        lrsa_err *e) {
    if (g->zero) return lrsa_zero_gpu_grad_norm(g->zero, max_norm, norm, e);
    lrsa_grad_norm_clip_cuda(g->norm, g->scale, g->grad, g->n, max_norm, g->norm_ws,
                             g->norm_ws_bytes, g->stream);
    g->ops->download(g->ops->ctx, norm, g->norm, sizeof *norm); // the step's one sync
    return 0;
}

extern "C" int lrsa_train_gpu_adamw(lrsa_train_gpu *g, double lr, lrsa_err *e) {
    if (g->zero) return lrsa_zero_gpu_step(g->zero, lr, e);
    lrsa_adamw_step_cuda(&g->opt, g->master, g->grad, g->param, lr, g->scale, g->stream);
    return 0;
}

extern "C" int lrsa_train_gpu_download(lrsa_train_gpu *g, lrsa_model *m, lrsa_adamw *opt, int root,
                                       lrsa_err *e) {
    float *param = m->table.arena[LRSA_ROLE_PARAM];
    if (g->zero) {
        if (lrsa_zero_gpu_download(g->zero, param, opt ? opt->m : NULL, opt ? opt->v : NULL, root,
                                   e))
            return -1;
        if (opt) opt->t = lrsa_zero_gpu_adam_t(g->zero);
        return 0;
    }
    size_t bytes = sizeof(float) * (size_t)g->n;
    g->ops->download(g->ops->ctx, param, g->master, bytes);
    if (opt && g->n > 0) {
        g->ops->download(g->ops->ctx, opt->m, g->opt.m, bytes);
        g->ops->download(g->ops->ctx, opt->v, g->opt.v, bytes);
    }
    if (opt) opt->t = g->opt.t;
    return 0;
}
