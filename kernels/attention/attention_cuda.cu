// Dense causal grouped-query attention on the GPU, FlashAttention-style: the twin of
// attention_cpu.c (same layouts, attention.h); bf16 storage, fp32 arithmetic, fp32 logsumexp.
// The kernels (shared with LRSA attention) and how they tile: attention_kernels_cuda.cuh.
#define _Noreturn [[noreturn]] // base/error.h is C11; .cu files are C++
extern "C" {
#include "base/error.h"
#include "kernels/attention/attention.h"
}
#undef _Noreturn
#include "kernels/attention/attention_kernels_cuda.cuh"

using namespace lrsa_attn_cuda;

static const Vis kDense = {0, 0, 1, 0, 0};

extern "C" void lrsa_attention_forward_cuda(uint16_t *out, float *lse, const uint16_t *q,
                                            const uint16_t *k, const uint16_t *v,
                                            const lrsa_attn_dims *d, void *stream) {
    check_dims(d);
    if (d->B == 0 || d->T == 0) return;
    auto *o = (bf16 *)out;
    auto *qq = (const bf16 *)q, *kk = (const bf16 *)k, *vv = (const bf16 *)v;
    cudaStream_t st = (cudaStream_t)stream;
    if (d->D == 64)
        forward_launch<64>(o, lse, qq, kk, vv, NULL, NULL, *d, kDense, st);
    else
        forward_launch<128>(o, lse, qq, kk, vv, NULL, NULL, *d, kDense, st);
}

extern "C" void lrsa_attention_backward_cuda(uint16_t *dq, uint16_t *dk, uint16_t *dv,
                                             const uint16_t *dout, const uint16_t *q,
                                             const uint16_t *k, const uint16_t *v,
                                             const uint16_t *out, const float *lse, float *delta,
                                             const lrsa_attn_dims *d, void *stream) {
    check_dims(d);
    if (d->B == 0 || d->T == 0) return;
    cudaStream_t st = (cudaStream_t)stream;
    auto *gq = (bf16 *)dq, *gk = (bf16 *)dk, *gv = (bf16 *)dv;
    auto *go = (const bf16 *)dout, *qq = (const bf16 *)q, *kk = (const bf16 *)k,
         *vv = (const bf16 *)v, *oo = (const bf16 *)out;
    if (d->D == 64)
        backward_launch<64>(gq, gk, gv, go, qq, kk, vv, oo, lse, delta, NULL, NULL, NULL, NULL,
                            NULL, *d, kDense, st);
    else
        backward_launch<128>(gq, gk, gv, go, qq, kk, vv, oo, lse, delta, NULL, NULL, NULL, NULL,
                             NULL, *d, kDense, st);
}
