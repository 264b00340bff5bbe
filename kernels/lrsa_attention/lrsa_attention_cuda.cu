// LRSA attention on the GPU as gather + dense: the twin of lrsa_attention_cpu.c
// (../shared/docs/lagkv-lrsa.md section 5). Per (sequence, KV head) the sink and the selected
// rows are gathered into C = [sink | Sel(P_0) | Sel(P_1) | ...] (bf16, contiguous); the shared
// tiled kernels (kernels/attention/attention_kernels_cuda.cuh) then let each query row attend
// to C[0 : S + k(c-1)] and to its causal band [start(P_{c-1}), i] with one online softmax. The
// backward computes the C rows' dK/dV into fp32 buffers, and the band kernel adds them to the
// original positions through an inverse map (each position occurs at most once in C): no
// atomics, deterministic.
#define _Noreturn [[noreturn]] // base/error.h is C11; .cu files are C++
extern "C" {
#include "base/error.h"
#include "kernels/lrsa_attention/lrsa_attention.h"
}
#undef _Noreturn
#include "kernels/attention/attention_kernels_cuda.cuh"

using namespace lrsa_attn_cuda;

namespace {

// The pieces of the caller's workspace, each 256-byte aligned.
struct Work {
    bf16 *ck, *cv;    // [B*Hkv*nc][D]
    float *dck, *dcv; // [B*Hkv*nc][D]
    int32_t *inv;     // [B*Hkv*T]: index in C of each position, -1 if none
    float *delta;     // [B*Hq*T]
    size_t bytes;
};

size_t align256(size_t x) {
    return (x + 255) / 256 * 256;
}

Work carve(void *base, const lrsa_attn_dims *d, int nc) {
    size_t rows = (size_t)d->B * d->Hkv * nc, off = 0;
    Work w;
    char *p = (char *)base;
    w.ck = (bf16 *)(p + off), off += align256(rows * d->D * sizeof(bf16));
    w.cv = (bf16 *)(p + off), off += align256(rows * d->D * sizeof(bf16));
    w.dck = (float *)(p + off), off += align256(rows * d->D * sizeof(float));
    w.dcv = (float *)(p + off), off += align256(rows * d->D * sizeof(float));
    w.inv = (int32_t *)(p + off), off += align256((size_t)d->B * d->Hkv * d->T * sizeof(int32_t));
    w.delta = (float *)(p + off), off += align256((size_t)d->B * d->Hq * d->T * sizeof(float));
    w.bytes = off;
    return w;
}

// The visibility of this call; off (plain causal) when no query reaches S + 2L.
Vis make_vis(const lrsa_attn_dims *d, const lrsa_lagkv_params *p) {
    LRSA_CHECK(p->lag > 0 && p->sink >= 0 && p->keep > 0.0f && p->keep <= 1.0f,
               "(LagKV parameters must pass lrsa_lagkv_validate first)");
    Vis v = {0, p->sink, p->lag, lrsa_lagkv_k(p), 0};
    if (d->T > p->sink + 2 * (int64_t)p->lag) {
        v.on = 1;
        v.nc = p->sink + v.kk * lrsa_lagkv_num_scored(d->T, p);
    }
    return v;
}

// Block (i, g, b) copies C row i of (b, g) and records it in the inverse map.
__global__ void lrsa_gather_kernel(bf16 *ck, bf16 *cv, int32_t *inv, const bf16 *k, const bf16 *v,
                                   const int32_t *sel, lrsa_attn_dims d, Vis vis) {
    int ci = blockIdx.x, g = blockIdx.y, b = blockIdx.z;
    int64_t bg = (int64_t)b * d.Hkv + g;
    int ns = vis.kk > 0 ? (vis.nc - vis.S) / vis.kk : 0;
    int pos = ci;
    if (ci >= vis.S) {
        int j = (ci - vis.S) / vis.kk, lo = vis.S + j * vis.L;
        pos = sel[bg * ns * vis.kk + (ci - vis.S)];
        if (pos < lo || pos >= lo + vis.L) __trap(); // sel is not from this T, S, L: fail loudly
    }
    int64_t src = ((int64_t)b * d.T + pos) * d.kv_stride + (int64_t)g * d.D;
    int64_t dst = (bg * vis.nc + ci) * d.D;
    for (int c = threadIdx.x; c < d.D; c += blockDim.x) {
        ck[dst + c] = k[src + c];
        cv[dst + c] = v[src + c];
    }
    if (threadIdx.x == 0 && inv) inv[bg * d.T + pos] = ci;
}

void gather(const Work &w, const bf16 *k, const bf16 *v, const int32_t *sel,
            const lrsa_attn_dims *d, const Vis &vis, bool with_inv, cudaStream_t st) {
    if (!vis.on || vis.nc == 0) return;
    if (with_inv)
        CUDA_CHECK(
            cudaMemsetAsync(w.inv, 0xFF, sizeof(int32_t) * (size_t)d->B * d->Hkv * d->T, st));
    dim3 grid((unsigned)vis.nc, (unsigned)d->Hkv, (unsigned)d->B);
    lrsa_gather_kernel<<<grid, d->D, 0, st>>>(w.ck, w.cv, with_inv ? w.inv : NULL, k, v, sel, *d,
                                              vis);
    CUDA_CHECK(cudaGetLastError());
}

} // namespace

extern "C" size_t lrsa_lrsa_attention_cuda_workspace(const lrsa_attn_dims *d,
                                                     const lrsa_lagkv_params *p) {
    Vis vis = make_vis(d, p);
    return carve(NULL, d, vis.nc).bytes;
}

extern "C" void lrsa_lrsa_attention_forward_cuda(uint16_t *out, float *lse, const uint16_t *q,
                                                 const uint16_t *k, const uint16_t *v,
                                                 const int32_t *sel, void *workspace,
                                                 const lrsa_attn_dims *d,
                                                 const lrsa_lagkv_params *p, void *stream) {
    check_dims(d);
    if (d->B == 0 || d->T == 0) return;
    cudaStream_t st = (cudaStream_t)stream;
    Vis vis = make_vis(d, p);
    Work w = carve(workspace, d, vis.nc);
    auto *kk = (const bf16 *)k, *vv = (const bf16 *)v, *qq = (const bf16 *)q;
    gather(w, kk, vv, sel, d, vis, false, st);
    if (d->D == 64)
        forward_launch<64>((bf16 *)out, lse, qq, kk, vv, w.ck, w.cv, *d, vis, st);
    else
        forward_launch<128>((bf16 *)out, lse, qq, kk, vv, w.ck, w.cv, *d, vis, st);
}

extern "C" void lrsa_lrsa_attention_backward_cuda(
    uint16_t *dq, uint16_t *dk, uint16_t *dv, const uint16_t *dout, const uint16_t *q,
    const uint16_t *k, const uint16_t *v, const uint16_t *out, const float *lse, const int32_t *sel,
    void *workspace, const lrsa_attn_dims *d, const lrsa_lagkv_params *p, void *stream) {
    check_dims(d);
    if (d->B == 0 || d->T == 0) return;
    cudaStream_t st = (cudaStream_t)stream;
    Vis vis = make_vis(d, p);
    Work w = carve(workspace, d, vis.nc);
    auto *kk = (const bf16 *)k, *vv = (const bf16 *)v, *qq = (const bf16 *)q;
    auto *go = (const bf16 *)dout, *oo = (const bf16 *)out;
    gather(w, kk, vv, sel, d, vis, true, st);
    if (d->D == 64)
        backward_launch<64>((bf16 *)dq, (bf16 *)dk, (bf16 *)dv, go, qq, kk, vv, oo, lse, w.delta,
                            w.ck, w.cv, w.dck, w.dcv, w.inv, *d, vis, st);
    else
        backward_launch<128>((bf16 *)dq, (bf16 *)dk, (bf16 *)dv, go, qq, kk, vv, oo, lse, w.delta,
                             w.ck, w.cv, w.dck, w.dcv, w.inv, *d, vis, st);
}
