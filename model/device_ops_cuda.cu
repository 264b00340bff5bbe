// The CUDA op table (model/device_ops.h): bf16 activations and weight copies, fp32 gradients
// and statistics, every op one of the kernels/*_cuda kernels on the table's stream. Everything a
// step needs (cuBLASLt handle and workspace, the LM-head loss buffers, the RoPE table, the
// RMSNorm / embedding / attention workspaces) is allocated here, once, from the plan; an op that
// would need more than planned aborts naming the plan instead of allocating inside a step.
// cuda_check.h first: it makes autograd/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/attention/attention.h"
#include "kernels/attention/attention_cudnn.h"
#include "kernels/device/device.h"
#include "kernels/device/device_buffer.h"
#include "kernels/embedding/embedding.h"
#include "kernels/lagkv/lagkv.h"
#include "kernels/linear/linear.h"
#include "kernels/lm_head_loss/lm_head_loss.h"
#include "kernels/lrsa_attention/lrsa_attention.h"
#include "kernels/residual/residual.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/rope/rope.h"
#include "kernels/swiglu/swiglu.h"
#include "model/device_ops.h"
}
#include <stdio.h>
#include <stdlib.h>

namespace {

typedef uint16_t bf;

struct CudaOps {
    lrsa_device_ops ops; // ops.ctx points back here
    cudaStream_t stream;
    lrsa_linear_cuda *lin;
    lrsa_lm_head_loss_ctx *lm;
    float *rope; // [max_T, D] cos | sin
    int max_T, D, Hq;
    int64_t max_N;
    void *rms_ws, *emb_ws, *lrsa_ws;
    size_t rms_bytes, emb_bytes, lrsa_bytes;
    float *delta; // [max_N * Hq]
    double *loss; // [1]: the LM-head loss sum (device)
    bf *xn;       // [max_N, C]: normalised rows for final_logits
#ifdef LRSA_HAVE_CUDNN
    lrsa_attention_cudnn *dnn; // attention.impl: cudnn (dense attention only), else NULL
    void *dnn_ws;              // its workspace, sized for the plan's largest shape
#endif
};

CudaOps *cuda_ops_of(void *ctx) {
    return (CudaOps *)ctx;
}

void *dalloc(void *ctx, size_t bytes) {
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err != cudaSuccess)
        lrsa_fatal(__FILE__, __LINE__, "cudaMalloc of %zu bytes failed: %s", bytes,
                   cudaGetErrorString(err));
    return p;
}
void dfree(void *ctx, void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}
void upload(void *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes)
        CUDA_CHECK(
            cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_ops_of(ctx)->stream));
}
void download(void *ctx, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_ops_of(ctx)->stream));
    CUDA_CHECK(cudaStreamSynchronize(cuda_ops_of(ctx)->stream));
}
void dcopy(void *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src)
        CUDA_CHECK(
            cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_ops_of(ctx)->stream));
}
void dzero(void *ctx, void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_ops_of(ctx)->stream));
}

void planned(const CudaOps *c, int64_t N, const char *what) {
    LRSA_CHECK(N <= c->max_N, "(%s: %lld tokens, the CUDA memory plan holds %lld)", what,
               (long long)N, (long long)c->max_N);
}

void embedding_fwd(void *ctx, void *out, const int32_t *ids, const void *table, int64_t N, int Cc) {
    lrsa_embedding_forward_cuda((bf *)out, ids, (const bf *)table, N, Cc, cuda_ops_of(ctx)->stream);
}
void embedding_bwd(void *ctx, float *dtable, const void *dout, const int32_t *ids, int64_t N,
                   int Cc, int V) {
    CudaOps *c = cuda_ops_of(ctx);
    planned(c, N, "embedding backward");
    lrsa_embedding_backward_cuda(dtable, (const bf *)dout, ids, N, Cc, V, c->emb_ws, c->emb_bytes,
                                 c->stream);
}
void rmsnorm_fwd(void *ctx, void *out, float *rstd, const void *x, const void *w, int64_t N, int Cc,
                 float eps) {
    lrsa_rmsnorm_forward_cuda((bf *)out, rstd, NULL, (const bf *)x, NULL, (const bf *)w, N, Cc, eps,
                              cuda_ops_of(ctx)->stream);
}
void rmsnorm_bwd(void *ctx, void *dx, float *dw, const void *dout, const void *dres, const void *x,
                 const void *w, const float *rstd, int64_t N, int Cc) {
    CudaOps *c = cuda_ops_of(ctx);
    lrsa_rmsnorm_backward_cuda((bf *)dx, dw, (const bf *)dout, (const bf *)dres, (const bf *)x,
                               (const bf *)w, rstd, N, Cc, c->rms_ws, c->rms_bytes, c->stream);
}
void linear_fwd(void *ctx, void *y, const void *x, const void *w, const void *b, int64_t N, int in,
                int out) {
    lrsa_linear_forward_cuda(cuda_ops_of(ctx)->lin, (bf *)y, (const bf *)x, (const bf *)w,
                             (const bf *)b, N, in, out);
}
void linear_bwd(void *ctx, void *dx, float *dw, float *db, const void *dy, const void *x,
                const void *w, int64_t N, int in, int out) {
    lrsa_linear_backward_cuda(cuda_ops_of(ctx)->lin, (bf *)dx, dw, db, (const bf *)dy,
                              (const bf *)x, (const bf *)w, N, in, out);
}
void rope_fwd(void *ctx, void *x, const int32_t *pos, const float *inv_freq, int64_t N, int nh,
              int D, int64_t stride) {
    CudaOps *c = cuda_ops_of(ctx);
    LRSA_CHECK(D == c->D, "(RoPE head dim %d, the table was built for %d)", D, c->D);
    lrsa_rope_forward_cuda((bf *)x, pos, c->rope, N, nh, D, stride, c->stream);
}
void rope_bwd(void *ctx, void *dx, const int32_t *pos, const float *inv_freq, int64_t N, int nh,
              int D, int64_t stride) {
    CudaOps *c = cuda_ops_of(ctx);
    LRSA_CHECK(D == c->D, "(RoPE head dim %d, the table was built for %d)", D, c->D);
    lrsa_rope_backward_cuda((bf *)dx, pos, c->rope, N, nh, D, stride, c->stream);
}
void residual_add(void *ctx, void *out, const void *a, const void *b, int64_t n) {
    lrsa_residual_forward_cuda((bf *)out, (const bf *)a, (const bf *)b, n,
                               cuda_ops_of(ctx)->stream);
}
void swiglu_fwd(void *ctx, void *out, const void *gu, int64_t N, int I) {
    lrsa_swiglu_forward_cuda((bf *)out, (const bf *)gu, N, I, cuda_ops_of(ctx)->stream);
}
void swiglu_bwd(void *ctx, void *dgu, const void *dout, const void *gu, int64_t N, int I) {
    lrsa_swiglu_backward_cuda((bf *)dgu, (const bf *)dout, (const bf *)gu, N, I,
                              cuda_ops_of(ctx)->stream);
}
void lagkv_select(void *ctx, int32_t *sel, const void *k, const void *v, int B, int T, int Hkv,
                  int D, int64_t kv_stride, const lrsa_lagkv_params *p) {
    lrsa_lagkv_select_cuda_bf16(sel, NULL, (const bf *)k, (const bf *)v, B, T, Hkv, D, kv_stride, p,
                                cuda_ops_of(ctx)->stream);
}

// The LRSA workspace of this call, checked against the plan.
void *lrsa_workspace(CudaOps *c, const lrsa_attn_dims *d, const lrsa_lagkv_params *p) {
    size_t need = lrsa_lrsa_attention_cuda_workspace(d, p);
    LRSA_CHECK(need <= c->lrsa_bytes,
               "(LRSA attention needs %zu bytes of workspace, the CUDA memory plan holds %zu: "
               "plan with lrsa = 1 and the largest B, T)",
               need, c->lrsa_bytes);
    return c->lrsa_ws;
}

void attention_fwd(void *ctx, void *out, float *lse, const void *qkv, const lrsa_attn_dims *d,
                   const int32_t *sel, const lrsa_lagkv_params *p) {
    CudaOps *c = cuda_ops_of(ctx);
    const bf *q = (const bf *)qkv, *k = q + (int64_t)d->Hq * d->D, *v = k + (int64_t)d->Hkv * d->D;
#ifdef LRSA_HAVE_CUDNN
    if (c->dnn) {
        LRSA_CHECK(!sel, "(attention.impl: cudnn is dense only; the config refuses lrsa)");
        lrsa_attention_forward_cudnn(c->dnn, (bf *)out, lse, q, k, v, d);
        return;
    }
#endif
    if (sel)
        lrsa_lrsa_attention_forward_cuda((bf *)out, lse, q, k, v, sel, lrsa_workspace(c, d, p), d,
                                         p, c->stream);
    else
        lrsa_attention_forward_cuda((bf *)out, lse, q, k, v, d, c->stream);
}

void attention_bwd(void *ctx, void *dqkv, const void *dout, const void *qkv, const void *out,
                   const float *lse, const lrsa_attn_dims *d, const int32_t *sel,
                   const lrsa_lagkv_params *p) {
    CudaOps *c = cuda_ops_of(ctx);
    const int64_t qd = (int64_t)d->Hq * d->D, kd = (int64_t)d->Hkv * d->D;
    const bf *q = (const bf *)qkv, *k = q + qd, *v = q + qd + kd;
    bf *dq = (bf *)dqkv, *dk = dq + qd, *dv = dq + qd + kd;
#ifdef LRSA_HAVE_CUDNN
    if (c->dnn) {
        LRSA_CHECK(!sel, "(attention.impl: cudnn is dense only; the config refuses lrsa)");
        LRSA_CHECK((int64_t)d->B * d->T * d->Hq <= c->max_N * c->Hq, "(attention backward: delta)");
        lrsa_attention_backward_cudnn(c->dnn, dq, dk, dv, (const bf *)dout, q, k, v,
                                      (const bf *)out, lse, c->delta, d);
        return;
    }
#endif
    if (sel) {
        lrsa_lrsa_attention_backward_cuda(dq, dk, dv, (const bf *)dout, q, k, v, (const bf *)out,
                                          lse, sel, lrsa_workspace(c, d, p), d, p, c->stream);
        return;
    }
    LRSA_CHECK((int64_t)d->B * d->T * d->Hq <= c->max_N * c->Hq, "(attention backward: delta)");
    lrsa_attention_backward_cuda(dq, dk, dv, (const bf *)dout, q, k, v, (const bf *)out, lse,
                                 c->delta, d, c->stream);
}

double lm_head_loss(void *ctx, float *nll, void *dh, float *dnorm_w, float *dW, const void *h,
                    const void *norm_w, const void *W, const int32_t *targets, const float *weight,
                    int64_t N, int Cc, int V, float eps) {
    CudaOps *c = cuda_ops_of(ctx);
    planned(c, N, "LM head loss");
    double loss = 0.0;
    lrsa_lm_head_loss_cuda(c->lm, c->loss, nll, (bf *)dh, dnorm_w, dW, (const bf *)h,
                           (const bf *)norm_w, (const bf *)W, targets, weight, N, eps);
    download(ctx, &loss, c->loss, sizeof loss);
    return loss;
}

void lm_head_loss_acc(void *ctx, double *loss_acc, int32_t *fault, int64_t n_active, float *nll,
                      void *dh, float *dnorm_w, float *dW, const void *h, const void *norm_w,
                      const void *W, const int32_t *targets, const float *weight, int64_t N, int Cc,
                      int V, float eps) {
    CudaOps *c = cuda_ops_of(ctx);
    planned(c, N, "LM head loss");
    lrsa_lm_head_loss_cuda_async(c->lm, loss_acc, fault, n_active, nll, (bf *)dh, dnorm_w, dW,
                                 (const bf *)h, (const bf *)norm_w, (const bf *)W, targets, weight,
                                 N, eps);
}

void final_logits(void *ctx, float *logits, const void *h, const void *norm_w, const void *W,
                  int64_t N, int Cc, int V, float eps) {
    CudaOps *c = cuda_ops_of(ctx);
    planned(c, N, "final logits");
    lrsa_rmsnorm_forward_cuda(c->xn, NULL, NULL, (const bf *)h, NULL, (const bf *)norm_w, N, Cc,
                              eps, c->stream);
    lrsa_gemm_bf16_cuda(c->lin, 0, 1, N, V, Cc, 1.0f, c->xn, Cc, (const bf *)W, Cc, 0.0f, logits, V,
                        1, NULL);
}

#ifdef LRSA_HAVE_CUDNN
// attention.impl: cudnn: the handle on the table's stream, the plans of the largest step (the
// fused qkv rows of max_B x max_T tokens) and their workspace, allocated now with the rest of the
// plan. Smaller shapes get their plans on first use and must fit this workspace.
int cudnn_attention(CudaOps *c, const lrsa_cuda_plan *plan, int Hq, int Hkv, int D, lrsa_err *e) {
    c->dnn = lrsa_attention_cudnn_create((void *)c->stream, e);
    if (!c->dnn) return -1;
    const int64_t row = (int64_t)(Hq + 2 * Hkv) * D;
    lrsa_attn_dims d = {plan->max_B, plan->max_T, Hq, Hkv, D, row, row, (int64_t)Hq * D, 1.0f};
    size_t bytes = 0;
    if (lrsa_attention_cudnn_prepare(c->dnn, &d, &bytes, e)) return -1;
    c->dnn_ws = dalloc(c, bytes);
    lrsa_attention_cudnn_set_workspace(c->dnn, c->dnn_ws, bytes);
    return 0;
}
#endif

} // namespace

extern "C" lrsa_device_ops *lrsa_device_ops_cuda_new(const lrsa_model_config *cfg,
                                                     const float *inv_freq,
                                                     const lrsa_cuda_plan *plan, lrsa_err *e) {
    if (lrsa_cuda_device_count() == 0) {
        char why[256];
        lrsa_cuda_describe(why, sizeof why);
        lrsa_errorf(e, "device: cuda: %s; set device: cpu to run on the CPU", why);
        return NULL;
    }
    const int D = cfg->head_dim, Hq = cfg->num_attention_heads, Hkv = cfg->num_key_value_heads;
    if (D != 64 && D != 128) {
        lrsa_errorf(e,
                    "device: cuda: the CUDA attention kernels support head_dim 64 and 128; this "
                    "model has %d (set device: cpu)",
                    D);
        return NULL;
    }
#ifndef LRSA_HAVE_CUDNN
    if (plan->attn_cudnn) {
        lrsa_errorf(e, "attention.impl: cudnn: this lrsa was built without cuDNN (configure with "
                       "LRSA_CUDNN_ROOT or a cuDNN wheel, docs/CUDA.md), or set attention.impl: "
                       "native");
        return NULL;
    }
#endif
    if (plan->attn_cudnn && plan->lrsa) {
        lrsa_errorf(e, "attention.impl: cudnn runs dense causal attention only (cuDNN cannot "
                       "express the gathered LRSA prefix): set attention.mode: dense or "
                       "attention.impl: native");
        return NULL;
    }
    if (plan->max_B < 1 || plan->max_T < 1) {
        lrsa_errorf(e, "device: cuda: empty memory plan (max_B %d, max_T %d)", plan->max_B,
                    plan->max_T);
        return NULL;
    }
    CudaOps *c = (CudaOps *)lrsa_calloc(1, sizeof *c);
    c->max_T = plan->max_T;
    c->D = D;
    c->Hq = Hq;
    c->max_N = (int64_t)plan->max_B * plan->max_T;
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    c->lin = lrsa_linear_cuda_create((void *)c->stream, plan->gemm_workspace);
    c->lm = lrsa_lm_head_loss_cuda_create(c->lin, c->max_N, cfg->hidden_size, cfg->vocab_size, 0);
    float *table = (float *)lrsa_malloc(sizeof(float) * (size_t)plan->max_T * (size_t)D);
    lrsa_rope_cos_sin_table(table, inv_freq, plan->max_T, D);
    c->rope = (float *)dalloc(c, sizeof(float) * (size_t)plan->max_T * (size_t)D);
    CUDA_CHECK(cudaMemcpy(c->rope, table, sizeof(float) * (size_t)plan->max_T * (size_t)D,
                          cudaMemcpyHostToDevice));
    free(table);
    c->rms_bytes = lrsa_rmsnorm_backward_workspace_cuda(cfg->hidden_size);
    c->rms_ws = dalloc(c, c->rms_bytes);
    c->emb_bytes = lrsa_embedding_backward_workspace_cuda(c->max_N);
    c->emb_ws = dalloc(c, c->emb_bytes);
    c->delta = (float *)dalloc(c, sizeof(float) * (size_t)c->max_N * (size_t)Hq);
    c->loss = (double *)dalloc(c, sizeof(double));
    c->xn = (bf *)dalloc(c, sizeof(bf) * (size_t)c->max_N * (size_t)cfg->hidden_size);
    if (plan->lrsa) {
        lrsa_attn_dims d = {
            plan->max_B,        plan->max_T, Hq,  Hkv, D, (int64_t)(Hq + 2 * Hkv) * D,
            (Hq + 2 * Hkv) * D, Hq * D,      1.0f};
        c->lrsa_bytes = lrsa_lrsa_attention_cuda_workspace(&d, &plan->lagkv);
        c->lrsa_ws = dalloc(c, c->lrsa_bytes);
    }
    lrsa_device_ops *o = &c->ops;
    o->device = LRSA_CUDA;
    o->name = "cuda";
    o->act_bytes = sizeof(uint16_t);
    o->ctx = c;
    o->alloc = dalloc;
    o->free = dfree;
    o->upload = upload;
    o->download = download;
    o->copy = dcopy;
    o->zero = dzero;
    o->embedding_fwd = embedding_fwd;
    o->embedding_bwd = embedding_bwd;
    o->rmsnorm_fwd = rmsnorm_fwd;
    o->rmsnorm_bwd = rmsnorm_bwd;
    o->linear_fwd = linear_fwd;
    o->linear_bwd = linear_bwd;
    o->rope_fwd = rope_fwd;
    o->rope_bwd = rope_bwd;
    o->add = residual_add;
    o->swiglu_fwd = swiglu_fwd;
    o->swiglu_bwd = swiglu_bwd;
    o->lagkv_select = lagkv_select;
    o->attention_fwd = attention_fwd;
    o->attention_bwd = attention_bwd;
    o->lm_head_loss = lm_head_loss;
    o->lm_head_loss_acc = lm_head_loss_acc;
    o->final_logits = final_logits;
#ifdef LRSA_HAVE_CUDNN
    if (plan->attn_cudnn && cudnn_attention(c, plan, Hq, Hkv, D, e)) {
        lrsa_device_ops_cuda_free(o);
        return NULL;
    }
#endif
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return o;
}

extern "C" void lrsa_device_ops_cuda_free(lrsa_device_ops *ops) {
    if (!ops) return;
    CudaOps *c = cuda_ops_of(ops->ctx);
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
#ifdef LRSA_HAVE_CUDNN
    lrsa_attention_cudnn_free(c->dnn);
    dfree(c, c->dnn_ws);
#endif
    lrsa_lm_head_loss_cuda_destroy(c->lm);
    lrsa_linear_cuda_destroy(c->lin);
    void *bufs[] = {c->rope, c->rms_ws, c->emb_ws, c->delta, c->lrsa_ws, c->loss, c->xn};
    for (void *b : bufs) dfree(c, b);
    CUDA_CHECK(cudaStreamDestroy(c->stream));
    free(c);
}

extern "C" void lrsa_device_ops_sync(const lrsa_device_ops *ops) {
    if (!ops || ops->device != LRSA_CUDA) return;
    CUDA_CHECK(cudaStreamSynchronize(cuda_ops_of(ops->ctx)->stream));
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void *lrsa_device_ops_cuda_stream(const lrsa_device_ops *ops) {
    return ops && ops->device == LRSA_CUDA ? (void *)cuda_ops_of(ops->ctx)->stream : NULL;
}
