// Dense causal grouped-query attention on the GPU, FlashAttention-style: the twin of
// attention_cpu.c (same layouts, attention.h). bf16 storage, fp32 arithmetic, fp32 logsumexp.
//
// A plain tiled kernel, fp32 math on CUDA cores (no tensor cores yet): tiles are staged in shared
// memory as fp32, each thread block owns a tile of query rows and walks the causal key tiles
// with one online softmax. A block's query rows are (query head of the group, position) pairs, so
// every query head of a GQA group uses the same K/V tile loads. The backward is three launches:
// delta = rowsum(dout*out); dQ per query tile (walking key tiles); dK/dV per key tile (walking
// the query tiles of every head of the group). Neither needs atomics, so runs are deterministic,
// and no [T, T] buffer exists anywhere.
#define _Noreturn [[noreturn]] // autograd/error.h is C11; .cu files are C++
extern "C" {
#include "autograd/error.h"
#include "kernels/attention/attention.h"
}
#undef _Noreturn
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "kernels/device/cuda_check.h"

namespace {

constexpr int kThreads = 256; // threads per block, every kernel
constexpr int kRows = 64;     // query rows per block (forward and dQ): heads x positions

// Key tile: 64 keys at D = 64, 32 at D = 128 (keeps shared memory near 100 KiB).
template <int D> struct Tiles {
    static constexpr int BK = D <= 64 ? 64 : 32;  // keys per tile (forward, dQ)
    static constexpr int NRG = kThreads / D;      // row groups: thread = (row group, channel)
    static constexpr int BKV = D <= 64 ? 64 : 32; // keys per block (dK/dV)
    static constexpr int BQ = 64;                 // queries per step (dK/dV)
};

__device__ inline float bf(const __nv_bfloat16 *p) {
    return __bfloat162float(*p);
}

// The query rows of a block: row r is query head g*G + r/bqp at position i0 + r%bqp.
struct RowTile {
    int bqp, nrows, i0;
    __device__ int pos(int r) const { return i0 + r % bqp; }
    __device__ int head(int g, int G, int r) const { return g * G + r / bqp; }
};

__device__ inline RowTile row_tile(int G, int T) {
    int bqp = kRows / G; // host guarantees G <= kRows
    int ntiles = (T + bqp - 1) / bqp;
    int tile = ntiles - 1 - (int)blockIdx.x; // longest (last) tiles first
    return RowTile{bqp, bqp * G, tile * bqp};
}

// Loads rows [k0, k0+n) of one KV head into a shared fp32 tile with row stride ld; rows past T
// become zeros.
template <int D>
__device__ void load_kv_tile(float *dst, int ld, const __nv_bfloat16 *src, int64_t stride, int k0,
                             int n, int T) {
    for (int idx = threadIdx.x; idx < n * D; idx += kThreads) {
        int j = idx / D, c = idx % D;
        dst[j * ld + c] = k0 + j < T ? bf(src + (int64_t)(k0 + j) * stride + c) : 0.0f;
    }
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    attn_fwd_kernel(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                    const __nv_bfloat16 *v, lrsa_attn_dims d) {
    using TL = Tiles<D>;
    constexpr int BK = TL::BK, NRG = TL::NRG, PER = kRows / NRG;
    extern __shared__ float sm[];
    float *Qs = sm;                   // [kRows][D], pre-scaled
    float *Ks = Qs + kRows * D;       // [BK][D+1]
    float *Vs = Ks + BK * (D + 1);    // [BK][D]
    float *Ss = Vs + BK * D;          // [kRows][BK+1]: scores, then probabilities
    float *m = Ss + kRows * (BK + 1); // running max per row
    float *l = m + kRows;             // running sum per row
    float *alpha = l + kRows;         // rescale factor of this key tile
    const int T = d.T, G = d.Hq / d.Hkv, g = blockIdx.y, b = blockIdx.z;
    const RowTile rt = row_tile(G, T);
    const __nv_bfloat16 *kb = k + (int64_t)b * T * d.kv_stride + (int64_t)g * D;
    const __nv_bfloat16 *vb = v + (int64_t)b * T * d.kv_stride + (int64_t)g * D;

    for (int idx = threadIdx.x; idx < kRows * D; idx += kThreads) {
        int r = idx / D, c = idx % D, p = rt.pos(r);
        float x = 0.0f;
        if (r < rt.nrows && p < T)
            x = bf(q + ((int64_t)b * T + p) * d.q_stride + (int64_t)rt.head(g, G, r) * D + c) *
                d.scale;
        Qs[idx] = x;
    }
    for (int r = threadIdx.x; r < kRows; r += kThreads) m[r] = -INFINITY, l[r] = 0.0f;
    const int c = threadIdx.x % D, rg = threadIdx.x / D;
    float acc[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) acc[i] = 0.0f;
    const int kend = min(T, rt.i0 + rt.bqp); // keys past the last query position are masked
    for (int k0 = 0; k0 < kend; k0 += BK) {
        __syncthreads();
        load_kv_tile<D>(Ks, D + 1, kb, d.kv_stride, k0, BK, T);
        load_kv_tile<D>(Vs, D, vb, d.kv_stride, k0, BK, T);
        __syncthreads();
        for (int idx = threadIdx.x; idx < kRows * BK; idx += kThreads) {
            int r = idx / BK, j = idx % BK, p = rt.pos(r);
            float s = -INFINITY;
            if (r < rt.nrows && p < T && k0 + j <= p) {
                const float *qr = Qs + r * D, *kr = Ks + j * (D + 1);
                s = 0.0f;
#pragma unroll 16
                for (int cc = 0; cc < D; cc++) s += qr[cc] * kr[cc];
            }
            Ss[r * (BK + 1) + j] = s;
        }
        __syncthreads();
        for (int r = threadIdx.x; r < kRows; r += kThreads) {
            float *sr = Ss + r * (BK + 1);
            float mx = m[r];
            for (int j = 0; j < BK; j++) mx = fmaxf(mx, sr[j]);
            if (mx == -INFINITY) { // nothing visible yet (padding rows)
                alpha[r] = 1.0f;
                for (int j = 0; j < BK; j++) sr[j] = 0.0f;
                continue;
            }
            float a = expf(m[r] - mx), sum = 0.0f;
            for (int j = 0; j < BK; j++) {
                float p = expf(sr[j] - mx);
                sr[j] = p;
                sum += p;
            }
            alpha[r] = a;
            l[r] = l[r] * a + sum;
            m[r] = mx;
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int r = rg + NRG * i;
            const float *pr = Ss + r * (BK + 1);
            float s = acc[i] * alpha[r];
            for (int j = 0; j < BK; j++) s += pr[j] * Vs[j * D + c];
            acc[i] = s;
        }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int r = rg + NRG * i, p = rt.pos(r);
        if (r >= rt.nrows || p >= T) continue;
        int h = rt.head(g, G, r);
        out[((int64_t)b * T + p) * d.o_stride + (int64_t)h * D + c] =
            __float2bfloat16(acc[i] / l[r]);
        if (c == 0) lse[((int64_t)b * d.Hq + h) * T + p] = m[r] + logf(l[r]);
    }
}

// delta[(b*Hq + h)*T + t] = sum_c dout*out: one warp per row.
__global__ void attn_delta_kernel(float *delta, const __nv_bfloat16 *dout, const __nv_bfloat16 *out,
                                  lrsa_attn_dims d) {
    int64_t row = (int64_t)blockIdx.x * (kThreads / 32) + threadIdx.x / 32;
    int64_t nrows = (int64_t)d.B * d.Hq * d.T;
    if (row >= nrows) return;
    int t = (int)(row % d.T), h = (int)(row / d.T % d.Hq), b = (int)(row / d.T / d.Hq);
    int64_t tok = (int64_t)b * d.T + t;
    const __nv_bfloat16 *o = out + tok * d.o_stride + (int64_t)h * d.D;
    const __nv_bfloat16 *dof = dout + tok * d.o_stride + (int64_t)h * d.D;
    float s = 0.0f;
    for (int c = threadIdx.x % 32; c < d.D; c += 32) s += bf(o + c) * bf(dof + c);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (threadIdx.x % 32 == 0) delta[row] = s;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dq_kernel(__nv_bfloat16 *dq, const __nv_bfloat16 *dout, const __nv_bfloat16 *q,
                       const __nv_bfloat16 *k, const __nv_bfloat16 *v, const float *lse,
                       const float *delta, lrsa_attn_dims d) {
    using TL = Tiles<D>;
    constexpr int BK = TL::BK, NRG = TL::NRG, PER = kRows / NRG;
    extern __shared__ float sm[];
    float *Qs = sm;                    // [kRows][D], pre-scaled
    float *dOs = Qs + kRows * D;       // [kRows][D]
    float *Ks = dOs + kRows * D;       // [BK][D+1]
    float *Vs = Ks + BK * (D + 1);     // [BK][D+1]
    float *Ss = Vs + BK * (D + 1);     // [kRows][BK+1]: dS
    float *lr = Ss + kRows * (BK + 1); // lse per row
    float *dr = lr + kRows;            // delta per row
    const int T = d.T, G = d.Hq / d.Hkv, g = blockIdx.y, b = blockIdx.z;
    const RowTile rt = row_tile(G, T);
    const __nv_bfloat16 *kb = k + (int64_t)b * T * d.kv_stride + (int64_t)g * D;
    const __nv_bfloat16 *vb = v + (int64_t)b * T * d.kv_stride + (int64_t)g * D;
    for (int idx = threadIdx.x; idx < kRows * D; idx += kThreads) {
        int r = idx / D, c = idx % D, p = rt.pos(r);
        float x = 0.0f, y = 0.0f;
        if (r < rt.nrows && p < T) {
            int64_t tok = (int64_t)b * T + p, hd = (int64_t)rt.head(g, G, r) * D + c;
            x = bf(q + tok * d.q_stride + hd) * d.scale;
            y = bf(dout + tok * d.o_stride + hd);
        }
        Qs[idx] = x;
        dOs[idx] = y;
    }
    for (int r = threadIdx.x; r < kRows; r += kThreads) {
        int p = rt.pos(r);
        bool ok = r < rt.nrows && p < T;
        int64_t row = ((int64_t)b * d.Hq + rt.head(g, G, r)) * T + p;
        lr[r] = ok ? lse[row] : 0.0f;
        dr[r] = ok ? delta[row] : 0.0f;
    }
    const int c = threadIdx.x % D, rg = threadIdx.x / D;
    float acc[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) acc[i] = 0.0f;
    const int kend = min(T, rt.i0 + rt.bqp);
    for (int k0 = 0; k0 < kend; k0 += BK) {
        __syncthreads();
        load_kv_tile<D>(Ks, D + 1, kb, d.kv_stride, k0, BK, T);
        load_kv_tile<D>(Vs, D + 1, vb, d.kv_stride, k0, BK, T);
        __syncthreads();
        for (int idx = threadIdx.x; idx < kRows * BK; idx += kThreads) {
            int r = idx / BK, j = idx % BK, p = rt.pos(r);
            float ds = 0.0f;
            if (r < rt.nrows && p < T && k0 + j <= p) {
                const float *qr = Qs + r * D, *kr = Ks + j * (D + 1);
                const float *gr = dOs + r * D, *vr = Vs + j * (D + 1);
                float s = 0.0f, dp = 0.0f;
#pragma unroll 16
                for (int cc = 0; cc < D; cc++) {
                    s += qr[cc] * kr[cc];
                    dp += gr[cc] * vr[cc];
                }
                ds = expf(s - lr[r]) * (dp - dr[r]);
            }
            Ss[r * (BK + 1) + j] = ds;
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int r = rg + NRG * i;
            const float *sr = Ss + r * (BK + 1);
            float s = acc[i];
            for (int j = 0; j < BK; j++) s += sr[j] * Ks[j * (D + 1) + c];
            acc[i] = s;
        }
    }
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int r = rg + NRG * i, p = rt.pos(r);
        if (r >= rt.nrows || p >= T) continue;
        dq[((int64_t)b * T + p) * d.q_stride + (int64_t)rt.head(g, G, r) * D + c] =
            __float2bfloat16(acc[i] * d.scale);
    }
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dkdv_kernel(__nv_bfloat16 *dk, __nv_bfloat16 *dv, const __nv_bfloat16 *dout,
                         const __nv_bfloat16 *q, const __nv_bfloat16 *k, const __nv_bfloat16 *v,
                         const float *lse, const float *delta, lrsa_attn_dims d) {
    using TL = Tiles<D>;
    constexpr int BKV = TL::BKV, BQ = TL::BQ, NRG = TL::NRG, PER = BKV / NRG;
    extern __shared__ float sm[];
    float *Ks = sm;                   // [BKV][D+1]
    float *Vs = Ks + BKV * (D + 1);   // [BKV][D+1]
    float *Qs = Vs + BKV * (D + 1);   // [BQ][D+1], pre-scaled
    float *dOs = Qs + BQ * (D + 1);   // [BQ][D+1]
    float *Ps = dOs + BQ * (D + 1);   // [BQ][BKV+1]
    float *dSs = Ps + BQ * (BKV + 1); // [BQ][BKV+1]
    float *lr = dSs + BQ * (BKV + 1); // [BQ]
    float *dr = lr + BQ;              // [BQ]
    const int T = d.T, G = d.Hq / d.Hkv, g = blockIdx.y, b = blockIdx.z;
    const int nkt = (T + BKV - 1) / BKV, k0 = (nkt - 1 - (int)blockIdx.x) * BKV;
    const int64_t kvoff = (int64_t)b * T * d.kv_stride + (int64_t)g * D;
    load_kv_tile<D>(Ks, D + 1, k + kvoff, d.kv_stride, k0, BKV, T);
    load_kv_tile<D>(Vs, D + 1, v + kvoff, d.kv_stride, k0, BKV, T);
    const int c = threadIdx.x % D, rg = threadIdx.x / D;
    float dka[PER], dva[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) dka[i] = dva[i] = 0.0f;
    for (int h = g * G; h < (g + 1) * G; h++)
        for (int q0 = k0; q0 < T; q0 += BQ) { // only queries at or after the keys see them
            __syncthreads();
            for (int idx = threadIdx.x; idx < BQ * D; idx += kThreads) {
                int i = idx / D, cc = idx % D;
                float x = 0.0f, y = 0.0f;
                if (q0 + i < T) {
                    int64_t tok = (int64_t)b * T + q0 + i, hd = (int64_t)h * D + cc;
                    x = bf(q + tok * d.q_stride + hd) * d.scale;
                    y = bf(dout + tok * d.o_stride + hd);
                }
                Qs[i * (D + 1) + cc] = x;
                dOs[i * (D + 1) + cc] = y;
            }
            for (int i = threadIdx.x; i < BQ; i += kThreads) {
                int64_t row = ((int64_t)b * d.Hq + h) * T + q0 + i;
                lr[i] = q0 + i < T ? lse[row] : 0.0f;
                dr[i] = q0 + i < T ? delta[row] : 0.0f;
            }
            __syncthreads();
            for (int idx = threadIdx.x; idx < BQ * BKV; idx += kThreads) {
                int i = idx / BKV, j = idx % BKV, qp = q0 + i, kp = k0 + j;
                float p = 0.0f, ds = 0.0f;
                if (qp < T && kp <= qp) {
                    const float *qr = Qs + i * (D + 1), *kr = Ks + j * (D + 1);
                    const float *gr = dOs + i * (D + 1), *vr = Vs + j * (D + 1);
                    float s = 0.0f, dp = 0.0f;
#pragma unroll 16
                    for (int cc = 0; cc < D; cc++) {
                        s += qr[cc] * kr[cc];
                        dp += gr[cc] * vr[cc];
                    }
                    p = expf(s - lr[i]);
                    ds = p * (dp - dr[i]);
                }
                Ps[i * (BKV + 1) + j] = p;
                dSs[i * (BKV + 1) + j] = ds;
            }
            __syncthreads();
#pragma unroll
            for (int jj = 0; jj < PER; jj++) {
                int j = rg + NRG * jj;
                float a = dka[jj], bsum = dva[jj];
                for (int i = 0; i < BQ; i++) {
                    a += dSs[i * (BKV + 1) + j] * Qs[i * (D + 1) + c];
                    bsum += Ps[i * (BKV + 1) + j] * dOs[i * (D + 1) + c];
                }
                dka[jj] = a;
                dva[jj] = bsum;
            }
        }
#pragma unroll
    for (int jj = 0; jj < PER; jj++) {
        int kp = k0 + rg + NRG * jj;
        if (kp >= T) continue;
        int64_t o = (int64_t)b * T * d.kv_stride + (int64_t)kp * d.kv_stride + (int64_t)g * D + c;
        if (dk) dk[o] = __float2bfloat16(dka[jj]);
        if (dv) dv[o] = __float2bfloat16(dva[jj]);
    }
}

// Checks the shapes the kernels support; aborts naming the bad one (a caller bug, never input).
void check_cuda_dims(const lrsa_attn_dims *d) {
    int grouped = d->Hkv > 0 && d->Hq >= d->Hkv && d->Hq / d->Hkv * d->Hkv == d->Hq;
    LRSA_CHECK(d->B >= 0 && d->T >= 0 && grouped, "(attention dims: Hq must be a multiple of Hkv)");
    if (d->D != 64 && d->D != 128)
        lrsa_fatal(__FILE__, __LINE__,
                   "CUDA attention supports head dims 64 and 128, not %d (use the CPU path)", d->D);
    if (d->Hq / d->Hkv > kRows)
        lrsa_fatal(__FILE__, __LINE__,
                   "CUDA attention supports at most %d query heads per KV head, not %d", kRows,
                   d->Hq / d->Hkv);
}

// Opts the kernel into `bytes` of dynamic shared memory after checking the device allows it.
template <typename K> void allow_smem(K kernel, size_t bytes, const char *what) {
    int dev = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (bytes > (size_t)optin)
        lrsa_fatal(__FILE__, __LINE__,
                   "%s needs %zu bytes of shared memory per block; this device allows %d", what,
                   bytes, optin);
    CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int D>
void forward_launch(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                    const __nv_bfloat16 *v, const lrsa_attn_dims &d, cudaStream_t st) {
    using TL = Tiles<D>;
    size_t smem = sizeof(float) * ((size_t)kRows * D + TL::BK * (D + 1) + TL::BK * D +
                                   kRows * (TL::BK + 1) + 3 * kRows);
    allow_smem(attn_fwd_kernel<D>, smem, "attention forward");
    int bqp = kRows / (d.Hq / d.Hkv);
    dim3 grid((unsigned)((d.T + bqp - 1) / bqp), (unsigned)d.Hkv, (unsigned)d.B);
    attn_fwd_kernel<D><<<grid, kThreads, smem, st>>>(out, lse, q, k, v, d);
    CUDA_CHECK(cudaGetLastError());
}

template <int D>
void backward_launch(__nv_bfloat16 *dq, __nv_bfloat16 *dk, __nv_bfloat16 *dv,
                     const __nv_bfloat16 *dout, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                     const __nv_bfloat16 *v, const float *lse, const float *delta,
                     const lrsa_attn_dims &d, cudaStream_t st) {
    using TL = Tiles<D>;
    if (dq) {
        size_t smem = sizeof(float) * ((size_t)2 * kRows * D + 2 * TL::BK * (D + 1) +
                                       kRows * (TL::BK + 1) + 2 * kRows);
        allow_smem(attn_bwd_dq_kernel<D>, smem, "attention backward (dQ)");
        int bqp = kRows / (d.Hq / d.Hkv);
        dim3 grid((unsigned)((d.T + bqp - 1) / bqp), (unsigned)d.Hkv, (unsigned)d.B);
        attn_bwd_dq_kernel<D><<<grid, kThreads, smem, st>>>(dq, dout, q, k, v, lse, delta, d);
        CUDA_CHECK(cudaGetLastError());
    }
    if (dk || dv) {
        size_t smem = sizeof(float) * ((size_t)2 * TL::BKV * (D + 1) + 2 * TL::BQ * (D + 1) +
                                       2 * TL::BQ * (TL::BKV + 1) + 2 * TL::BQ);
        allow_smem(attn_bwd_dkdv_kernel<D>, smem, "attention backward (dK, dV)");
        dim3 grid((unsigned)((d.T + TL::BKV - 1) / TL::BKV), (unsigned)d.Hkv, (unsigned)d.B);
        attn_bwd_dkdv_kernel<D><<<grid, kThreads, smem, st>>>(dk, dv, dout, q, k, v, lse, delta, d);
        CUDA_CHECK(cudaGetLastError());
    }
}

} // namespace

extern "C" void lrsa_attention_forward_cuda(uint16_t *out, float *lse, const uint16_t *q,
                                            const uint16_t *k, const uint16_t *v,
                                            const lrsa_attn_dims *d, void *stream) {
    check_cuda_dims(d);
    if (d->B == 0 || d->T == 0) return;
    auto *o = (__nv_bfloat16 *)out;
    auto *qq = (const __nv_bfloat16 *)q, *kk = (const __nv_bfloat16 *)k,
         *vv = (const __nv_bfloat16 *)v;
    if (d->D == 64)
        forward_launch<64>(o, lse, qq, kk, vv, *d, (cudaStream_t)stream);
    else
        forward_launch<128>(o, lse, qq, kk, vv, *d, (cudaStream_t)stream);
}

extern "C" void lrsa_attention_backward_cuda(uint16_t *dq, uint16_t *dk, uint16_t *dv,
                                             const uint16_t *dout, const uint16_t *q,
                                             const uint16_t *k, const uint16_t *v,
                                             const uint16_t *out, const float *lse, float *delta,
                                             const lrsa_attn_dims *d, void *stream) {
    check_cuda_dims(d);
    if (d->B == 0 || d->T == 0) return;
    cudaStream_t st = (cudaStream_t)stream;
    int64_t rows = (int64_t)d->B * d->Hq * d->T;
    int64_t blocks = (rows + kThreads / 32 - 1) / (kThreads / 32);
    LRSA_CHECK(blocks < 2147483647LL, "(attention backward: too many rows)");
    attn_delta_kernel<<<(unsigned)blocks, kThreads, 0, st>>>(delta, (const __nv_bfloat16 *)dout,
                                                             (const __nv_bfloat16 *)out, *d);
    CUDA_CHECK(cudaGetLastError());
    auto *gq = (__nv_bfloat16 *)dq, *gk = (__nv_bfloat16 *)dk, *gv = (__nv_bfloat16 *)dv;
    auto *go = (const __nv_bfloat16 *)dout, *qq = (const __nv_bfloat16 *)q,
         *kk = (const __nv_bfloat16 *)k, *vv = (const __nv_bfloat16 *)v;
    if (d->D == 64)
        backward_launch<64>(gq, gk, gv, go, qq, kk, vv, lse, delta, *d, st);
    else
        backward_launch<128>(gq, gk, gv, go, qq, kk, vv, lse, delta, *d, st);
}
