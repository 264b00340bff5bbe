/* The CPU op table (device_ops.h): fp32 everywhere, each entry the *_cpu kernel itself, so the
 * model computes exactly what it computed before the table existed. */
#include <stdlib.h>
#include <string.h>

#include "kernels/device/device.h"
#include "kernels/embedding/embedding.h"
#include "kernels/lagkv/lagkv.h"
#include "kernels/linear/linear.h"
#include "kernels/lora/lora.h"
#include "kernels/lm_head_loss/lm_head_loss.h"
#include "kernels/lrsa_attention/lrsa_attention.h"
#include "kernels/residual/residual.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/rope/rope.h"
#include "kernels/swiglu/swiglu.h"
#include "model/device_ops.h"

static void *cpu_alloc(void *ctx, size_t bytes) {
    return lrsa_alloc_aligned(bytes ? bytes : 1);
}
static void cpu_free(void *ctx, void *p) {
    free(p);
}
static void cpu_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memcpy(dst, src, bytes);
}
static void cpu_zero(void *ctx, void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}

static void cpu_embedding_fwd(void *ctx, void *out, const int32_t *ids, const void *table,
                              int64_t N, int C) {
    lrsa_embedding_forward_cpu(out, ids, table, N, C);
}
static void cpu_embedding_bwd(void *ctx, float *dtable, const void *dout, const int32_t *ids,
                              int64_t N, int C, int V) {
    lrsa_embedding_backward_cpu(dtable, dout, ids, N, C);
}
static void cpu_rmsnorm_fwd(void *ctx, void *out, float *rstd, const void *x, const void *w,
                            int64_t N, int C, float eps) {
    lrsa_rmsnorm_forward_cpu(out, rstd, x, w, N, C, eps);
}
static void cpu_rmsnorm_bwd(void *ctx, void *dx, float *dw, const void *dout, const void *dres,
                            const void *x, const void *w, const float *rstd, int64_t N, int C) {
    lrsa_rmsnorm_backward_cpu(dx, dw, dout, dres, x, w, rstd, N, C);
}
static void cpu_linear_fwd(void *ctx, void *y, const void *x, const void *w, const void *b,
                           int64_t N, int in, int out) {
    lrsa_linear_forward_cpu(y, x, w, b, N, in, out);
}
static void cpu_linear_bwd(void *ctx, void *dx, float *dw, float *db, const void *dy, const void *x,
                           const void *w, int64_t N, int in, int out) {
    lrsa_linear_backward_cpu(dx, dw, db, dy, x, w, N, in, out);
}
static void cpu_rope_fwd(void *ctx, void *x, const int32_t *pos, const float *inv_freq, int64_t N,
                         int n_heads, int D, int64_t stride) {
    lrsa_rope_forward_cpu(x, pos, inv_freq, N, n_heads, D, stride);
}
static void cpu_rope_bwd(void *ctx, void *dx, const int32_t *pos, const float *inv_freq, int64_t N,
                         int n_heads, int D, int64_t stride) {
    lrsa_rope_backward_cpu(dx, pos, inv_freq, N, n_heads, D, stride);
}
static void cpu_add(void *ctx, void *out, const void *a, const void *b, int64_t n) {
    lrsa_residual_forward_cpu(out, a, b, n);
}
static void cpu_swiglu_fwd(void *ctx, void *out, const void *gu, int64_t N, int I) {
    lrsa_swiglu_forward_cpu(out, gu, N, I);
}
static void cpu_swiglu_bwd(void *ctx, void *dgu, const void *dout, const void *gu, int64_t N,
                           int I) {
    lrsa_swiglu_backward_cpu(dgu, dout, gu, N, I);
}
static void cpu_lagkv_select(void *ctx, int32_t *sel, const void *k, const void *v, int B, int T,
                             int Hkv, int D, int64_t kv_stride, const lrsa_lagkv_params *p) {
    lrsa_lagkv_select_cpu(sel, NULL, k, v, B, T, Hkv, D, kv_stride, p);
}

static void cpu_attention_fwd(void *ctx, void *out, float *lse, const void *qkv,
                              const lrsa_attn_dims *d, const int32_t *sel,
                              const lrsa_lagkv_params *p) {
    const int64_t qd = (int64_t)d->Hq * d->D, kd = (int64_t)d->Hkv * d->D;
    const float *q = qkv, *k = q + qd, *v = q + qd + kd;
    if (sel)
        lrsa_lrsa_attention_forward_cpu(out, lse, q, k, v, sel, d, p);
    else
        lrsa_attention_forward_cpu(out, lse, q, k, v, d);
}

static void cpu_attention_bwd(void *ctx, void *dqkv, const void *dout, const void *qkv,
                              const void *out, const float *lse, const lrsa_attn_dims *d,
                              const int32_t *sel, const lrsa_lagkv_params *p) {
    const int64_t qd = (int64_t)d->Hq * d->D, kd = (int64_t)d->Hkv * d->D;
    const float *q = qkv, *k = q + qd, *v = q + qd + kd;
    float *dq = dqkv, *dk = dq + qd, *dv = dq + qd + kd;
    if (sel)
        lrsa_lrsa_attention_backward_cpu(dq, dk, dv, dout, q, k, v, out, lse, sel, d, p);
    else
        lrsa_attention_backward_cpu(dq, dk, dv, dout, q, k, v, out, lse, d);
}

static double cpu_lm_head_loss(void *ctx, float *nll, void *dh, float *dnorm_w, float *dW,
                               const void *h, const void *norm_w, const void *W,
                               const int32_t *targets, const float *weight, int64_t N, int C, int V,
                               float eps) {
    return lrsa_lm_head_loss_cpu(nll, dh, dnorm_w, dW, h, norm_w, W, targets, weight, N, C, V, eps);
}

static void cpu_final_logits(void *ctx, float *logits, const void *h, const void *norm_w,
                             const void *W, int64_t N, int C, int V, float eps) {
    lrsa_lm_head_logits_cpu(logits, h, norm_w, W, N, C, V, eps);
}

static void cpu_lora_linear_fwd(void *ctx, void *y, void *u, const void *x, const void *w,
                                const void *b, const void *A, const void *B,
                                const lrsa_lora_spec *s, int64_t N, int in, int out, void *xd) {
    lrsa_lora_linear_forward_cpu(y, u, x, w, b, A, B, s, N, in, out, xd);
}
static void cpu_lora_linear_bwd(void *ctx, void *dx, float *dA, float *dB, const void *dy,
                                const void *x, const void *w, const void *A, const void *B,
                                const void *u, const lrsa_lora_spec *s, int64_t N, int in, int out,
                                void *t, void *xd) {
    lrsa_lora_linear_backward_cpu(dx, dA, dB, dy, x, w, A, B, u, s, N, in, out, t, xd);
}

static const lrsa_device_ops cpu_ops = {
    .device = LRSA_CPU,
    .name = "cpu",
    .act_bytes = sizeof(float),
    .ctx = NULL,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .linear_fwd = cpu_linear_fwd,
    .linear_bwd = cpu_linear_bwd,
    .lora_linear_fwd = cpu_lora_linear_fwd,
    .lora_linear_bwd = cpu_lora_linear_bwd,
    .rope_fwd = cpu_rope_fwd,
    .rope_bwd = cpu_rope_bwd,
    .add = cpu_add,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .lagkv_select = cpu_lagkv_select,
    .attention_fwd = cpu_attention_fwd,
    .attention_bwd = cpu_attention_bwd,
    .lm_head_loss = cpu_lm_head_loss,
    .final_logits = cpu_final_logits,
};

const lrsa_device_ops *lrsa_device_ops_cpu(void) {
    return &cpu_ops;
}

int lrsa_cuda_usable(const char *what, const char *cpu_hint, lrsa_err *e) {
    if (!lrsa_cuda_built())
        return lrsa_errorf(
            e,
            "%s: this lrsa was built without CUDA (configured with -DLRSA_CUDA=OFF or "
            "without nvcc); rebuild it with the CUDA toolkit installed, or %s",
            what, cpu_hint);
    if (lrsa_cuda_device_count() > 0) return 0;
    char why[256];
    lrsa_cuda_describe(why, sizeof why);
    return lrsa_errorf(e, "%s: %s; %s", what, why, cpu_hint);
}

#ifndef LRSA_HAVE_CUDA
/* The CUDA table of a build without CUDA (device_ops_cuda.cu defines the real ones in a CUDA
 * build; weak, so the emulated-CUDA tests can link the emulated ones over these). */
__attribute__((weak)) lrsa_device_ops *lrsa_device_ops_cuda_new(const lrsa_model_config *c,
                                                                const float *inv_freq,
                                                                const lrsa_cuda_plan *plan,
                                                                lrsa_err *e) {
    lrsa_errorf(e, "this lrsa was built without CUDA (-DLRSA_CUDA=OFF or no nvcc at configure "
                   "time): rebuild with the CUDA toolkit, or set device: cpu");
    return NULL;
}

__attribute__((weak)) void lrsa_device_ops_cuda_free(lrsa_device_ops *ops) {
    (void)ops;
}

__attribute__((weak)) void *lrsa_device_ops_cuda_stream(const lrsa_device_ops *ops) {
    (void)ops;
    return NULL;
}

__attribute__((weak)) void lrsa_device_ops_sync(const lrsa_device_ops *ops) {
    (void)ops;
}
#endif
