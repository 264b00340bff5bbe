// The GPU side of a training run (train_gpu.h): the device arenas, the CUDA op table and its
// workspace; on one GPU the norm/clip and AdamW kernels of optim_cuda.cu on the table's stream,
// in data parallel the ZeRO-1 engine (zero_gpu.h) over the same arenas. Compiled, never run on a
// GPU (runs in the emulated CI tests). The samples' forward and backward run as CUDA graphs on
// one GPU (step_graphs.h).
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/device/device_buffer.h"
#include "model/device_ops.h"
#include "model/weights_needed.h"
#include "train/step_graphs.h"
#include "train/train_gpu.h"
#include "train/zero_gpu.h"
}
#include <stdlib.h>
#include <string.h>

// What the step reads back at its one synchronisation (pinned host memory).
struct StepReadback {
    double norm, loss;
    int32_t fault;
};

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
    // the step's device loss sum and lm-head fault (-1: none), and their pinned readback
    double *loss;
    int32_t *fault;
    StepReadback *back;
    lrsa_step_graphs *graphs; // NULL: graphs off
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
    g->loss = (double *)ops->alloc(ops->ctx, sizeof(double));
    g->fault = (int32_t *)ops->alloc(ops->ctx, sizeof(int32_t));
    CUDA_CHECK(cudaMallocHost((void **)&g->back, sizeof *g->back));
    lrsa_train_gpu_set_graphs(g, 1);
    lrsa_train_gpu_zero_grad(g);
    lrsa_dev_sync();
    return g;
}

extern "C" void lrsa_train_gpu_free(lrsa_train_gpu *g) {
    if (!g) return;
    lrsa_zero_gpu_free(g->zero); // waits for its streams unless the communicator was aborted
    if (!g->zero) lrsa_device_ops_sync(g->ops);
    if (g->ws) lrsa_workspace_free(g->ws);
    if (g->master) lrsa_adamw_cuda_free(&g->opt);
    lrsa_step_graphs_free(g->graphs);
    if (g->back) CUDA_CHECK(cudaFreeHost(g->back));
    void *bufs[] = {g->master, g->param, g->grad, g->norm, g->scale, g->norm_ws, g->loss, g->fault};
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
    if (!g->loss) return; // still being built
    g->ops->zero(g->ops->ctx, g->loss, sizeof(double));
    CUDA_CHECK(cudaMemsetAsync(g->fault, 0xFF, sizeof(int32_t), g->stream)); // -1: no fault
}

extern "C" void lrsa_train_gpu_set_graphs(lrsa_train_gpu *g, int on) {
    const char *env = getenv("LRSA_CUDA_GRAPHS");
    on = on && !g->zero && !(env && !strcmp(env, "0"));
    if (on && !g->graphs) g->graphs = lrsa_step_graphs_new(g->stream);
    if (!on && g->graphs) {
        lrsa_device_ops_sync(g->ops); // its graphs may still be running
        lrsa_step_graphs_free(g->graphs);
        g->graphs = NULL;
    }
}

namespace {
// One staged sample's device work: what a graph captures.
struct SampleWork {
    lrsa_train_gpu *g;
    lrsa_model *m;
    int T, recompute;
    lrsa_attn_config attn;
    int64_t active;
};

void sample_work(void *arg) {
    SampleWork *w = (SampleWork *)arg;
    lrsa_model_forward_backward_staged(w->m, lrsa_train_gpu_workspace(w->g), 1, w->T, &w->attn,
                                       w->recompute, w->active, w->g->loss, w->g->fault);
}

// Everything the sample's launches depend on besides the stable buffers (bytewise compared).
struct SampleKey {
    int64_t T, active;
    int32_t recompute, mode, sink, lag;
    float keep, value_weight;
};
} // namespace

extern "C" void lrsa_train_gpu_sample(lrsa_train_gpu *g, lrsa_model *m, const int32_t *ids,
                                      const float *loss_weight, int T, const lrsa_attn_config *attn,
                                      int recompute) {
    SampleWork w = {g, m, T, recompute, *attn, 0};
    w.active = lrsa_model_stage(m, g->ws, ids, loss_weight, 1, T, recompute);
    if (!g->graphs) {
        sample_work(&w);
        return;
    }
    SampleKey key;
    memset(&key, 0, sizeof key);
    key.T = T;
    key.active = w.active;
    key.recompute = recompute;
    key.mode = (int32_t)attn->mode;
    if (attn->mode == LRSA_ATTN_LRSA) { // dense attention ignores the LagKV parameters
        key.sink = attn->lagkv.sink;
        key.lag = attn->lagkv.lag;
        key.keep = attn->lagkv.keep;
        key.value_weight = attn->lagkv.value_weight;
    }
    lrsa_step_graphs_run(g->graphs, &key, sizeof key, sample_work, &w);
}

extern "C" lrsa_train_gpu_graph_stats lrsa_train_gpu_graphs(const lrsa_train_gpu *g) {
    lrsa_step_graph_stats s =
        g->graphs ? lrsa_step_graphs_stats(g->graphs) : lrsa_step_graph_stats{0, 0, 0};
    return lrsa_train_gpu_graph_stats{s.direct, s.captured, s.launched};
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
                                        double *loss, lrsa_err *e) {
    StepReadback *b = g->back;
    if (g->zero) {
        if (lrsa_zero_gpu_grad_norm(g->zero, max_norm, norm, e)) return -1;
    } else {
        lrsa_grad_norm_clip_cuda(g->norm, g->scale, g->grad, g->n, max_norm, g->norm_ws,
                                 g->norm_ws_bytes, g->stream);
        CUDA_CHECK(
            cudaMemcpyAsync(&b->norm, g->norm, sizeof b->norm, cudaMemcpyDeviceToHost, g->stream));
    }
    CUDA_CHECK(
        cudaMemcpyAsync(&b->loss, g->loss, sizeof b->loss, cudaMemcpyDeviceToHost, g->stream));
    CUDA_CHECK(
        cudaMemcpyAsync(&b->fault, g->fault, sizeof b->fault, cudaMemcpyDeviceToHost, g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream)); // the step's one synchronisation
    if (!g->zero) *norm = b->norm;
    *loss = b->loss;
    if (b->fault == -2)
        return lrsa_errorf(e, "the LM-head loss counted a different number of weighted rows on "
                              "the device than on the host (a bug)");
    if (b->fault >= 0)
        return lrsa_errorf(e,
                           "a sample of this step has a target token outside the model's "
                           "vocabulary (row %d): check the dataset's tokenizer against the model",
                           (int)b->fault);
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
