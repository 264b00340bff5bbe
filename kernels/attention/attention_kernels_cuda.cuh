// The tiled attention kernels shared by dense causal attention (attention_cuda.cu) and LRSA
// attention (kernels/lrsa_attention/lrsa_attention_cuda.cu). Device code; not a C header.
//
// Forward and backward run on tensor cores (attention_mma_cuda.cuh, attention_mma_bwd_cuda.cuh);
// the fp32 kernels below remain behind LRSA_ATTN_FP32_FORWARD=1 / LRSA_ATTN_FP32_BACKWARD=1,
// with the tiling and visibility helpers both use. fp32 kernels: tiles are staged in
// shared memory as fp32; each block owns a tile of query rows and walks key tiles with one online
// softmax. A block's query rows are (query head of the group, position) pairs, so all query heads
// of a GQA group share the K/V tile loads. Keys come from two segments: the gathered LRSA prefix C
// (unmasked up to the row's prefix length) and the original K/V (the causal band from the row's
// band start). Dense attention is the band alone, starting at 0. The backward is: delta =
// rowsum(dout*out); dQ per query tile; dK/dV per key tile walking every head of the group. No
// atomics anywhere (runs are deterministic) and no [T, T] buffer.
#ifndef LRSA_KERNELS_ATTENTION_KERNELS_CUDA_CUH
#define LRSA_KERNELS_ATTENTION_KERNELS_CUDA_CUH
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/device/cuda_check.h"

namespace lrsa_attn_cuda {

typedef __nv_bfloat16 bf16;
constexpr int kThreads = 256; // threads per block, every kernel
constexpr int kRows = 64;     // query rows per block (forward and dQ): heads x positions

// Key tile: 64 keys at D = 64, 32 at D = 128 (keeps shared memory near 100 KiB).
template <int D> struct Tiles {
    static constexpr int BK = D <= 64 ? 64 : 32;  // keys per tile (forward, dQ)
    static constexpr int NRG = kThreads / D;      // row groups: thread = (row group, channel)
    static constexpr int BKV = D <= 64 ? 64 : 32; // keys per block (dK/dV)
    static constexpr int BQ = 64;                 // queries per step (dK/dV)
};

// The LRSA visibility rule (../shared/docs/lagkv-lrsa.md section 5); on = 0 is dense causal.
struct Vis {
    int on, S, L, kk, nc; // sink, lag, kept per partition, rows of C per (sequence, KV head)
    // Query at position p sees C[0, np) and original keys [b0, p].
    __host__ __device__ void row(int p, int &np, int &b0) const {
        int64_t first = (int64_t)S + 2 * (int64_t)L;
        if (!on || p < first) {
            np = 0, b0 = 0;
            return;
        }
        int c = 2 + (int)((p - first) / L);
        np = S + kk * (c - 1);
        b0 = S + (c - 1) * L;
    }
    // Last query position whose band contains original key kp (before capping at T-1).
    __host__ __device__ int64_t band_last_query(int kp, int T) const {
        if (!on) return T - 1;
        if (kp < S + (int64_t)L) return S + 2 * (int64_t)L - 1;
        return S + (2 + (int64_t)(kp - S) / L) * L - 1;
    }
    // First query position whose prefix contains C row ci.
    __host__ __device__ int64_t prefix_first_query(int ci) const {
        int64_t part = ci < S ? 0 : (ci - S) / kk;
        return S + (2 + part) * (int64_t)L;
    }
};

__device__ inline float bf(const bf16 *p) {
    return __bfloat162float(*p);
}

// The query rows of a block: row r is query head g*G + r/bqp at position i0 + r%bqp.
struct RowTile {
    int bqp, nrows, i0;
    __device__ int pos(int r) const { return i0 + r % bqp; }
    __device__ int head(int g, int G, int r) const { return g * G + r / bqp; }
};

__device__ inline RowTile row_tile(int G, int T) {
    int bqp = kRows / G; // the host guarantees G <= kRows
    int ntiles = (T + bqp - 1) / bqp;
    int tile = ntiles - 1 - (int)blockIdx.x; // longest (last) tiles first
    return RowTile{bqp, bqp * G, tile * bqp};
}

// Key range of the row tile in each segment: C[0, npmax) and original [b0min, kend).
struct TileKeys {
    int npmax, b0min, kend;
};
__device__ inline TileKeys tile_keys(const RowTile &rt, const Vis &vis, int T) {
    TileKeys tk{0, 1 << 30, min(T, rt.i0 + rt.bqp)};
    for (int i = 0; i < rt.bqp && rt.i0 + i < T; i++) {
        int np, b0;
        vis.row(rt.i0 + i, np, b0);
        tk.npmax = max(tk.npmax, np);
        tk.b0min = min(tk.b0min, b0);
    }
    return tk;
}

// One key segment of a (sequence, KV head) as a query tile walks it: 0 is the gathered prefix C
// (rows [0, npmax)), 1 the original K/V (positions [b0min, kend)).
struct KeySeg {
    const bf16 *k, *v;
    int64_t stride;
    int beg, end;
};
__device__ inline KeySeg key_seg(int seg, const bf16 *k, const bf16 *v, const bf16 *ck,
                                 const bf16 *cv, const lrsa_attn_dims &d, const Vis &vis,
                                 const TileKeys &tk, int b, int g) {
    if (seg == 0) {
        const int64_t cbase = ((int64_t)b * d.Hkv + g) * vis.nc * d.D;
        return KeySeg{ck + cbase, cv + cbase, d.D, 0, tk.npmax};
    }
    const int64_t off = (int64_t)b * d.T * d.kv_stride + (int64_t)g * d.D;
    return KeySeg{k + off, v + off, d.kv_stride, tk.b0min, tk.kend};
}

// Loads rows [k0, k0+n) (row stride `stride`) into a shared fp32 tile with row stride ld; rows
// at or past `limit` become zeros.
template <int D>
__device__ void load_kv_tile(float *dst, int ld, const bf16 *src, int64_t stride, int k0, int n,
                             int limit) {
    for (int idx = threadIdx.x; idx < n * D; idx += kThreads) {
        int j = idx / D, c = idx % D;
        dst[j * ld + c] = k0 + j < limit ? bf(src + (int64_t)(k0 + j) * stride + c) : 0.0f;
    }
}

// Whether the row at position p sees key j of segment seg (0: C row j; 1: original position j).
__device__ inline bool visible(const Vis &vis, int seg, int p, int j) {
    int np, b0;
    vis.row(p, np, b0);
    return seg == 0 ? j < np : (j >= b0 && j <= p);
}

// ck/cv: the gathered C rows, [(b*Hkv + g)*nc + i][D] (unused when vis.on == 0).
template <int D>
__global__ void __launch_bounds__(kThreads)
    attn_fwd_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                    const bf16 *ck, const bf16 *cv, lrsa_attn_dims d, Vis vis) {
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
    const TileKeys tk = tile_keys(rt, vis, T);

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
    for (int seg = 0; seg < 2; seg++) {
        const KeySeg ks = key_seg(seg, k, v, ck, cv, d, vis, tk, b, g);
        const int kend = ks.end;
        for (int k0 = ks.beg; k0 < kend; k0 += BK) {
            __syncthreads();
            load_kv_tile<D>(Ks, D + 1, ks.k, ks.stride, k0, BK, kend);
            load_kv_tile<D>(Vs, D, ks.v, ks.stride, k0, BK, kend);
            __syncthreads();
            for (int idx = threadIdx.x; idx < kRows * BK; idx += kThreads) {
                int r = idx / BK, j = idx % BK, p = rt.pos(r);
                float s = -INFINITY;
                if (r < rt.nrows && p < T && k0 + j < kend && visible(vis, seg, p, k0 + j)) {
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
                if (mx == -INFINITY) { // nothing visible yet (padding rows, empty prefix)
                    alpha[r] = 1.0f;
                    for (int j = 0; j < BK; j++) sr[j] = 0.0f;
                    continue;
                }
                float a = expf(m[r] - mx), sum = 0.0f;
                for (int j = 0; j < BK; j++) {
                    float pj = expf(sr[j] - mx);
                    sr[j] = pj;
                    sum += pj;
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
// (static: this header is compiled into more than one .cu)
static __global__ void attn_delta_kernel(float *delta, const bf16 *dout, const bf16 *out,
                                         lrsa_attn_dims d) {
    int64_t row = (int64_t)blockIdx.x * (kThreads / 32) + threadIdx.x / 32;
    int64_t nrows = (int64_t)d.B * d.Hq * d.T;
    if (row >= nrows) return;
    int t = (int)(row % d.T), h = (int)(row / d.T % d.Hq), b = (int)(row / d.T / d.Hq);
    int64_t tok = (int64_t)b * d.T + t;
    const bf16 *o = out + tok * d.o_stride + (int64_t)h * d.D;
    const bf16 *dof = dout + tok * d.o_stride + (int64_t)h * d.D;
    float s = 0.0f;
    for (int c = threadIdx.x % 32; c < d.D; c += 32) s += bf(o + c) * bf(dof + c);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (threadIdx.x % 32 == 0) delta[row] = s;
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dq_kernel(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                       const bf16 *ck, const bf16 *cv, const float *lse, const float *delta,
                       lrsa_attn_dims d, Vis vis) {
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
    const TileKeys tk = tile_keys(rt, vis, T);
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
    for (int seg = 0; seg < 2; seg++) {
        const KeySeg ks = key_seg(seg, k, v, ck, cv, d, vis, tk, b, g);
        const int kend = ks.end;
        for (int k0 = ks.beg; k0 < kend; k0 += BK) {
            __syncthreads();
            load_kv_tile<D>(Ks, D + 1, ks.k, ks.stride, k0, BK, kend);
            load_kv_tile<D>(Vs, D + 1, ks.v, ks.stride, k0, BK, kend);
            __syncthreads();
            for (int idx = threadIdx.x; idx < kRows * BK; idx += kThreads) {
                int r = idx / BK, j = idx % BK, p = rt.pos(r);
                float ds = 0.0f;
                if (r < rt.nrows && p < T && k0 + j < kend && visible(vis, seg, p, k0 + j)) {
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
    }
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int r = rg + NRG * i, p = rt.pos(r);
        if (r >= rt.nrows || p >= T) continue;
        dq[((int64_t)b * T + p) * d.q_stride + (int64_t)rt.head(g, G, r) * D + c] =
            __float2bfloat16(acc[i] * d.scale);
    }
}

// Where a key tile's gradients go: C rows of (b, g) at cbase (x D), original rows at kvoff.
struct KeyTileOut {
    int64_t cbase, kvoff;
    int b, g;
};
__device__ inline KeyTileOut key_tile_out(const lrsa_attn_dims &d, const Vis &vis, int b, int g) {
    return KeyTileOut{((int64_t)b * d.Hkv + g) * vis.nc * d.D,
                      (int64_t)b * d.T * d.kv_stride + (int64_t)g * d.D, b, g};
}

// The queries [qbeg, qend) that can see a key of the tile [k0, klast] of segment seg.
__device__ inline void tile_queries(const Vis &vis, int seg, int k0, int klast, int T, int &qbeg,
                                    int &qend) {
    if (seg) {
        int64_t last = vis.band_last_query(klast, T);
        qbeg = k0;
        qend = (int)(last + 1 < T ? last + 1 : T);
    } else {
        int64_t first = vis.prefix_first_query(k0);
        qbeg = (int)(first < T ? first : T);
        qend = T;
    }
}

// Stores the finished dK (a) and dV (bsum) of key kp, channel c: fp32 into dck/dcv for a C row
// (seg 0); for an original position (seg 1) bf16 into dk/dv (either may be NULL), plus the same
// token's gradient through the prefix when inv maps it into C (each position occurs once in C).
__device__ inline void store_dkdv(bf16 *dk, bf16 *dv, float *dck, float *dcv, const int32_t *inv,
                                  const KeyTileOut &ko, const lrsa_attn_dims &d, int seg, int kp,
                                  int c, float a, float bsum) {
    if (!seg) {
        int64_t o = ko.cbase + (int64_t)kp * d.D + c;
        dck[o] = a;
        dcv[o] = bsum;
        return;
    }
    if (inv) {
        int32_t ci = inv[((int64_t)ko.b * d.Hkv + ko.g) * d.T + kp];
        if (ci >= 0) {
            a += dck[ko.cbase + (int64_t)ci * d.D + c];
            bsum += dcv[ko.cbase + (int64_t)ci * d.D + c];
        }
    }
    int64_t o = ko.kvoff + (int64_t)kp * d.kv_stride + c;
    if (dk) dk[o] = __float2bfloat16(a);
    if (dv) dv[o] = __float2bfloat16(bsum);
}

// dK/dV of one key tile, summed over every query head of the group.
// seg 1 (band): keys are original positions; results go to dk/dv (bf16, strides of k/v), plus
//   the C-row gradient dck/dcv[inv[kp]] when inv (may be NULL) maps the position into C.
// seg 0 (prefix): keys are C rows; fp32 results go to dck/dcv [(b*Hkv + g)*nc + i][D].
template <int D>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dkdv_kernel(bf16 *dk, bf16 *dv, float *dck, float *dcv, const int32_t *inv,
                         const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                         const bf16 *ck, const bf16 *cv, const float *lse, const float *delta,
                         lrsa_attn_dims d, Vis vis, int seg) {
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
    const int nkeys = seg ? T : vis.nc;
    const int nkt = (nkeys + BKV - 1) / BKV, k0 = (nkt - 1 - (int)blockIdx.x) * BKV;
    const KeyTileOut ko = key_tile_out(d, vis, b, g);
    const bf16 *ks = seg ? k + ko.kvoff : ck + ko.cbase, *vs = seg ? v + ko.kvoff : cv + ko.cbase;
    const int64_t st = seg ? d.kv_stride : D;
    load_kv_tile<D>(Ks, D + 1, ks, st, k0, BKV, nkeys);
    load_kv_tile<D>(Vs, D + 1, vs, st, k0, BKV, nkeys);
    int qbeg, qend; // queries that can see a key of this tile
    tile_queries(vis, seg, k0, min(nkeys, k0 + BKV) - 1, T, qbeg, qend);
    const int c = threadIdx.x % D, rg = threadIdx.x / D;
    float dka[PER], dva[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) dka[i] = dva[i] = 0.0f;
    for (int h = g * G; h < (g + 1) * G; h++)
        for (int q0 = qbeg; q0 < qend; q0 += BQ) {
            __syncthreads();
            for (int idx = threadIdx.x; idx < BQ * D; idx += kThreads) {
                int i = idx / D, cc = idx % D;
                float x = 0.0f, y = 0.0f;
                if (q0 + i < qend) {
                    int64_t tok = (int64_t)b * T + q0 + i, hd = (int64_t)h * D + cc;
                    x = bf(q + tok * d.q_stride + hd) * d.scale;
                    y = bf(dout + tok * d.o_stride + hd);
                }
                Qs[i * (D + 1) + cc] = x;
                dOs[i * (D + 1) + cc] = y;
            }
            for (int i = threadIdx.x; i < BQ; i += kThreads) {
                int64_t row = ((int64_t)b * d.Hq + h) * T + q0 + i;
                lr[i] = q0 + i < qend ? lse[row] : 0.0f;
                dr[i] = q0 + i < qend ? delta[row] : 0.0f;
            }
            __syncthreads();
            for (int idx = threadIdx.x; idx < BQ * BKV; idx += kThreads) {
                int i = idx / BKV, j = idx % BKV, qp = q0 + i, kp = k0 + j;
                float p = 0.0f, ds = 0.0f;
                if (qp < qend && kp < nkeys && visible(vis, seg, qp, kp)) {
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
        if (kp < nkeys) store_dkdv(dk, dv, dck, dcv, inv, ko, d, seg, kp, c, dka[jj], dva[jj]);
    }
}

} // namespace lrsa_attn_cuda
#include "kernels/attention/attention_mma_cuda.cuh"
#include "kernels/attention/attention_mma_bwd_cuda.cuh"
namespace lrsa_attn_cuda {

// Checks the shapes the kernels support; aborts naming the bad one (a caller bug, never input).
inline void check_dims(const lrsa_attn_dims *d) {
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

// Whether the environment variable `name` is "1" (read once per process by each caller).
inline bool env_is_one(const char *name) {
    const char *e = getenv(name);
    return e && e[0] == '1';
}

// Forward and backward run on tensor cores (attention_mma_cuda.cuh, attention_mma_bwd_cuda.cuh);
// LRSA_ATTN_FP32_FORWARD=1 / LRSA_ATTN_FP32_BACKWARD=1 in the environment select the fp32
// CUDA-core kernels above instead (a cross-check on a first GPU).
inline bool fp32_forward() {
    static const bool v = env_is_one("LRSA_ATTN_FP32_FORWARD");
    return v;
}
inline bool fp32_backward() {
    static const bool v = env_is_one("LRSA_ATTN_FP32_BACKWARD");
    return v;
}

template <int D>
void forward_launch(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                    const bf16 *ck, const bf16 *cv, const lrsa_attn_dims &d, const Vis &vis,
                    cudaStream_t st) {
    if (!fp32_forward()) {
        size_t smem = MmaSmem<D>::bytes;
        allow_smem(attn_fwd_mma_kernel<D>, smem, "attention forward (tensor cores)");
        int bqp = kRows / (d.Hq / d.Hkv);
        dim3 grid((unsigned)((d.T + bqp - 1) / bqp), (unsigned)d.Hkv, (unsigned)d.B);
        attn_fwd_mma_kernel<D><<<grid, kMmaThreads, smem, st>>>(out, lse, q, k, v, ck, cv, d, vis);
        CUDA_CHECK(cudaGetLastError());
        return;
    }
    using TL = Tiles<D>;
    size_t smem = sizeof(float) * ((size_t)kRows * D + TL::BK * (D + 1) + TL::BK * D +
                                   kRows * (TL::BK + 1) + 3 * kRows);
    allow_smem(attn_fwd_kernel<D>, smem, "attention forward");
    int bqp = kRows / (d.Hq / d.Hkv);
    dim3 grid((unsigned)((d.T + bqp - 1) / bqp), (unsigned)d.Hkv, (unsigned)d.B);
    attn_fwd_kernel<D><<<grid, kThreads, smem, st>>>(out, lse, q, k, v, ck, cv, d, vis);
    CUDA_CHECK(cudaGetLastError());
}

// The whole backward after the caller gathered C (when vis.on): delta, dQ, then (vis.on) the
// prefix dK/dV into dck/dcv and the band dK/dV adding them through inv.
template <int D>
void backward_launch(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                     const bf16 *v, const bf16 *out, const float *lse, float *delta, const bf16 *ck,
                     const bf16 *cv, float *dck, float *dcv, const int32_t *inv,
                     const lrsa_attn_dims &d, const Vis &vis, cudaStream_t st) {
    using TL = Tiles<D>;
    int64_t rows = (int64_t)d.B * d.Hq * d.T;
    int64_t blocks = (rows + kThreads / 32 - 1) / (kThreads / 32);
    LRSA_CHECK(blocks < 2147483647LL, "(attention backward: too many rows)");
    attn_delta_kernel<<<(unsigned)blocks, kThreads, 0, st>>>(delta, dout, out, d);
    CUDA_CHECK(cudaGetLastError());
    // The tensor-core kernels or (LRSA_ATTN_FP32_BACKWARD=1) the fp32 ones: same arguments.
    const bool mma = !fp32_backward();
    const int threads = mma ? kMmaThreads : kThreads, bkv = mma ? kMmaKeys : TL::BKV;
    if (dq) {
        auto kernel = mma ? attn_bwd_dq_mma_kernel<D> : attn_bwd_dq_kernel<D>;
        size_t smem = mma ? MmaBwd<D>::dq_bytes
                          : sizeof(float) * ((size_t)2 * kRows * D + 2 * TL::BK * (D + 1) +
                                             kRows * (TL::BK + 1) + 2 * kRows);
        allow_smem(kernel, smem, "attention backward (dQ)");
        int bqp = kRows / (d.Hq / d.Hkv);
        dim3 grid((unsigned)((d.T + bqp - 1) / bqp), (unsigned)d.Hkv, (unsigned)d.B);
        kernel<<<grid, threads, smem, st>>>(dq, dout, q, k, v, ck, cv, lse, delta, d, vis);
        CUDA_CHECK(cudaGetLastError());
    }
    if (!dk && !dv) return;
    auto kernel = mma ? attn_bwd_dkdv_mma_kernel<D> : attn_bwd_dkdv_kernel<D>;
    size_t smem = mma ? MmaBwd<D>::dkdv_bytes
                      : sizeof(float) * ((size_t)2 * TL::BKV * (D + 1) + 2 * TL::BQ * (D + 1) +
                                         2 * TL::BQ * (TL::BKV + 1) + 2 * TL::BQ);
    allow_smem(kernel, smem, "attention backward (dK, dV)");
    if (vis.on && vis.nc > 0) {
        dim3 grid((unsigned)((vis.nc + bkv - 1) / bkv), (unsigned)d.Hkv, (unsigned)d.B);
        kernel<<<grid, threads, smem, st>>>(NULL, NULL, dck, dcv, NULL, dout, q, k, v, ck, cv, lse,
                                            delta, d, vis, 0);
        CUDA_CHECK(cudaGetLastError());
    }
    dim3 grid((unsigned)((d.T + bkv - 1) / bkv), (unsigned)d.Hkv, (unsigned)d.B);
    kernel<<<grid, threads, smem, st>>>(dk, dv, dck, dcv, vis.on ? inv : NULL, dout, q, k, v, ck,
                                        cv, lse, delta, d, vis, 1);
    CUDA_CHECK(cudaGetLastError());
}

} // namespace lrsa_attn_cuda
#endif
