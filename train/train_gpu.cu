// The GPU side of a training run (train_gpu.h): the device arenas, the CUDA op table and its
// workspace, the norm/clip and AdamW kernels of optim_cuda.cu on the table's stream.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/device/device_buffer.h"
#include "model/device_ops.h"
#include "train/train_gpu.h"
}
#include <stdlib.h>

struct lrsa_train_gpu {
    lrsa_device_ops *ops;
    cudaStream_t stream;
    lrsa_workspace *ws;
    lrsa_adamw_cuda opt;
    int64_t n;        // parameters
    float *master;    // fp32 [n]
    lrsa_bf16 *param; // bf16 [n], what the forward reads
    float *grad;      // fp32 [n]
    double *norm;     // device [1]
    float *scale;     // device [1], the clipping factor
    void *norm_ws;
    size_t norm_ws_bytes;
};

extern "C" lrsa_train_gpu *lrsa_train_gpu_new(lrsa_model *m, const lrsa_adamw *opt,
                                              const lrsa_attn_config *attn, int max_T,
                                              int recompute, lrsa_err *e) {
    lrsa_cuda_plan plan = {1, max_T, attn->mode == LRSA_ATTN_LRSA, attn->lagkv, 0};
    lrsa_device_ops *ops = lrsa_device_ops_cuda_new(&m->cfg, m->inv_freq, &plan, e);
    if (!ops) return NULL;
    LRSA_CHECK(opt->lo == 0 && opt->hi == m->table.numel, "(one GPU holds the whole shard)");
    lrsa_train_gpu *g = (lrsa_train_gpu *)lrsa_calloc(1, sizeof *g);
    g->ops = ops;
    g->stream = (cudaStream_t)lrsa_device_ops_cuda_stream(ops);
    g->n = m->table.numel;
    size_t n = (size_t)(g->n > 0 ? g->n : 1);
    g->master = (float *)ops->alloc(ops->ctx, sizeof(float) * n);
    g->param = (lrsa_bf16 *)ops->alloc(ops->ctx, sizeof(lrsa_bf16) * n);
    g->grad = (float *)ops->alloc(ops->ctx, sizeof(float) * n);
    g->norm = (double *)ops->alloc(ops->ctx, sizeof(double));
    g->scale = (float *)ops->alloc(ops->ctx, sizeof(float));
    g->norm_ws_bytes = lrsa_grad_norm_workspace_cuda();
    g->norm_ws = ops->alloc(ops->ctx, g->norm_ws_bytes);
    ops->upload(ops->ctx, g->master, m->table.arena[LRSA_ROLE_PARAM], sizeof(float) * g->n);
    lrsa_bf16_from_f32_cuda(g->param, g->master, g->n, g->stream);
    lrsa_device_ops_sync(ops); // lrsa_adamw_cuda_init copies on the legacy stream
    lrsa_adamw_cuda_init(&g->opt, opt);
    g->ws = lrsa_workspace_new_on(ops);
    lrsa_workspace_bind_params(g->ws, g->param, g->grad);
    lrsa_workspace_reserve(g->ws, m, 1, max_T, attn, recompute);
    lrsa_dev_sync();
    return g;
}

extern "C" void lrsa_train_gpu_free(lrsa_train_gpu *g) {
    if (!g) return;
    lrsa_device_ops_sync(g->ops);
    lrsa_workspace_free(g->ws);
    lrsa_adamw_cuda_free(&g->opt);
    void *bufs[] = {g->master, g->param, g->grad, g->norm, g->scale, g->norm_ws};
    for (void *b : bufs) g->ops->free(g->ops->ctx, b);
    lrsa_device_ops_cuda_free(g->ops);
    free(g);
}

extern "C" lrsa_workspace *lrsa_train_gpu_workspace(lrsa_train_gpu *g) {
    return g->ws;
}

extern "C" void lrsa_train_gpu_zero_grad(lrsa_train_gpu *g) {
    g->ops->zero(g->ops->ctx, g->grad, sizeof(float) * (size_t)g->n);
}

extern "C" void lrsa_train_gpu_poison_grad(lrsa_train_gpu *g) {
    if (g->n > 0) CUDA_CHECK(cudaMemsetAsync(g->grad, 0xFF, sizeof(float), g->stream));
}

extern "C" double lrsa_train_gpu_grad_norm(lrsa_train_gpu *g, double max_norm) {
    lrsa_grad_norm_clip_cuda(g->norm, g->scale, g->grad, g->n, max_norm, g->norm_ws,
                             g->norm_ws_bytes, g->stream);
    double norm = 0.0;
    g->ops->download(g->ops->ctx, &norm, g->norm, sizeof norm); // the step's one sync
    return norm;
}

extern "C" void lrsa_train_gpu_adamw(lrsa_train_gpu *g, double lr) {
    lrsa_adamw_step_cuda(&g->opt, g->master, g->grad, g->param, lr, g->scale, g->stream);
}

extern "C" void lrsa_train_gpu_download(lrsa_train_gpu *g, lrsa_model *m, lrsa_adamw *opt) {
    size_t bytes = sizeof(float) * (size_t)g->n;
    g->ops->download(g->ops->ctx, m->table.arena[LRSA_ROLE_PARAM], g->master, bytes);
    if (g->n > 0) {
        g->ops->download(g->ops->ctx, opt->m, g->opt.m, bytes);
        g->ops->download(g->ops->ctx, opt->v, g->opt.v, bytes);
    }
    opt->t = g->opt.t;
}
