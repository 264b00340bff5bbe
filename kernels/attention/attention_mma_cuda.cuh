// The attention forward on tensor cores (sm_80+: bf16 mma.sync m16n8k16, fp32 accumulators),
// for dense causal and LRSA attention alike (the two key segments and the visibility rule of
// attention_kernels_cuda.cuh's Vis). Device code; included by attention_kernels_cuda.cuh.
//
// A block is 4 warps and owns the same 64 query rows as the fp32 kernel (the heads of one GQA
// group at 64/G positions, so the group shares every K/V tile); warp w owns rows 16w..16w+15.
// Q, and each 64-key tile of K and V, are staged in shared memory as bf16 rows padded by 8
// elements (16-byte aligned rows for ldmatrix, and a 16-byte shift per row against bank
// conflicts). Per key tile a warp computes S = Q K^T (ldmatrix of K rows gives the B fragment
// directly), masks it, runs the online softmax on the accumulators (a row lives in the 4 lanes
// of a quad: max and sum by two xor-shuffles), packs P as bf16 A fragments straight from the
// accumulators, and adds P V (V through ldmatrix.trans). The staging and warp-product helpers
// below serve the backward too (attention_mma_bwd_cuda.cuh). Fragment layouts: kernels/device/
// mma_cuda.cuh. The emulated tests check these layouts; the GPU has never run this code.
#ifndef LRSA_KERNELS_ATTENTION_MMA_CUDA_CUH
#define LRSA_KERNELS_ATTENTION_MMA_CUDA_CUH
#include "kernels/device/mma_cuda.cuh"

namespace lrsa_attn_cuda {

constexpr int kMmaThreads = 128; // 4 warps x 16 query rows = kRows
constexpr int kMmaKeys = 64;     // keys per tile

template <int D> struct MmaSmem {
    static constexpr int LD = D + 8; // bf16 elements per staged row
    static constexpr size_t bytes = sizeof(bf16) * (size_t)3 * kRows * LD;
};

// Copies rows [k0, k0 + N) of a K or V segment (or of one head's Q or dO) into a staged tile
// (zeros past limit).
template <int D, int N = kMmaKeys>
__device__ void stage_rows(bf16 *dst, const bf16 *src, int64_t stride, int k0, int limit) {
    constexpr int LD = MmaSmem<D>::LD;
    for (int idx = threadIdx.x; idx < N * D; idx += kMmaThreads) {
        int j = idx / D, c = idx % D;
        dst[j * LD + c] =
            k0 + j < limit ? src[(int64_t)(k0 + j) * stride + c] : __float2bfloat16(0.0f);
    }
}

// Stages the block's kRows query rows of a [B*T][stride] tensor laid out like q (row r: head
// rt.head(g, G, r) at position rt.pos(r) of sequence b; zeros for padding rows).
template <int D>
__device__ void stage_query_rows(bf16 *dst, const bf16 *src, int64_t stride, const RowTile &rt,
                                 int g, int G, int b, int T) {
    constexpr int LD = MmaSmem<D>::LD;
    for (int idx = threadIdx.x; idx < kRows * D; idx += kMmaThreads) {
        int r = idx / D, c = idx % D, p = rt.pos(r);
        bf16 x = __float2bfloat16(0.0f);
        if (r < rt.nrows && p < T)
            x = src[((int64_t)b * T + p) * stride + (int64_t)rt.head(g, G, r) * D + c];
        dst[r * LD + c] = x;
    }
}

// A lane's two query rows of its warp's 16 (quad row l / 4 and l / 4 + 8): position, query head,
// whether it is a real row, and what it sees (prefix length np, band start b0).
struct LaneRows {
    int p[2], head[2], np[2], b0[2];
    bool live[2];
};
__device__ inline LaneRows lane_rows(const RowTile &rt, const Vis &vis, int g, int G, int T) {
    LaneRows lr;
    for (int i = 0; i < 2; i++) {
        int r = 16 * (threadIdx.x >> 5) + (threadIdx.x & 31) / 4 + 8 * i;
        lr.p[i] = rt.pos(r);
        lr.head[i] = rt.head(g, G, r);
        lr.live[i] = r < rt.nrows && lr.p[i] < T;
        vis.row(lr.p[i], lr.np[i], lr.b0[i]);
    }
    return lr;
}

// Whether a query row (position p, prefix length np, band start b0) sees key j < kend of seg.
__device__ inline bool row_sees(int seg, int j, int kend, int p, int np, int b0) {
    return j < kend && (seg == 0 ? j < np : (j >= b0 && j <= p));
}

// Warp product acc[nb] = A B^T over D for NB blocks of 8 columns: A is 16 staged rows at a, B
// the 8 * NB staged rows at bm (both row-major with D columns, so ldmatrix without .trans gives
// the A and B fragments: Q K^T, dO V^T, K Q^T, V dO^T).
template <int D, int NB>
__device__ inline void mma_rows_abt(float (&acc)[NB][4], const bf16 *a, const bf16 *bm) {
    constexpr int LD = MmaSmem<D>::LD;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int nb = 0; nb < NB; nb++) acc[nb][0] = acc[nb][1] = acc[nb][2] = acc[nb][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t af[4];
        lrsa_ldmatrix<4, false>(af, &a[(lane % 16) * LD + 16 * kk + 8 * (lane / 16)]);
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            uint32_t bfr[2];
            lrsa_ldmatrix<2, false>(
                bfr, &bm[(8 * nb + (lane % 8)) * LD + 16 * kk + 8 * ((lane / 8) % 2)]);
            lrsa_mma_bf16_16816(acc[nb], af, bfr, acc[nb]);
        }
    }
}

// Warp product acc += P X: P is 16 x 8 NB in accumulator form (blocks 2kk, 2kk + 1 are the A
// fragment of k-step kk once rounded to bf16), X the 8 * NB staged rows at x with D columns
// (through ldmatrix.trans: P V, dS K, P^T dO, dS^T Q).
template <int D, int NB>
__device__ inline void mma_acc_px(float (&acc)[D / 8][4], const float (&p)[NB][4], const bf16 *x) {
    constexpr int LD = MmaSmem<D>::LD;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kk = 0; kk < NB / 2; kk++) {
        uint32_t pa[4] = {lrsa_pack_bf16x2(p[2 * kk][0], p[2 * kk][1]),
                          lrsa_pack_bf16x2(p[2 * kk][2], p[2 * kk][3]),
                          lrsa_pack_bf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                          lrsa_pack_bf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
        for (int nd = 0; nd < D / 8; nd++) {
            uint32_t xb[2];
            lrsa_ldmatrix<2, true>(xb, &x[(16 * kk + (lane % 16)) * LD + 8 * nd]);
            lrsa_mma_bf16_16816(acc[nd], pa, xb, acc[nd]);
        }
    }
}

template <int D>
__global__ void __launch_bounds__(kMmaThreads)
    attn_fwd_mma_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                        const bf16 *ck, const bf16 *cv, lrsa_attn_dims d, Vis vis) {
    constexpr int LD = MmaSmem<D>::LD, KS = D / 16, ND = D / 8, NB = kMmaKeys / 8;
    extern __shared__ __align__(16) unsigned char mma_smem[];
    bf16 *Qs = (bf16 *)mma_smem, *Ks = Qs + kRows * LD, *Vs = Ks + kMmaKeys * LD;
    const int T = d.T, G = d.Hq / d.Hkv, g = blockIdx.y, b = blockIdx.z;
    const RowTile rt = row_tile(G, T);
    const TileKeys tk = tile_keys(rt, vis, T);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, qt = lane & 3;

    stage_query_rows<D>(Qs, q, d.q_stride, rt, g, G, b, T);
    __syncthreads();
    const LaneRows lr = lane_rows(rt, vis, g, G, T);
    uint32_t qa[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; kk++)
        lrsa_ldmatrix<4, false>(qa[kk],
                                &Qs[(16 * warp + (lane % 16)) * LD + 16 * kk + 8 * (lane / 16)]);

    float o[ND][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int nd = 0; nd < ND; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    for (int seg = 0; seg < 2; seg++) {
        const KeySeg ks = key_seg(seg, k, v, ck, cv, d, vis, tk, b, g);
        const int kend = ks.end;
        for (int k0 = ks.beg; k0 < kend; k0 += kMmaKeys) {
            __syncthreads(); // every warp is done with the previous tile
            stage_rows<D>(Ks, ks.k, ks.stride, k0, kend);
            stage_rows<D>(Vs, ks.v, ks.stride, k0, kend);
            __syncthreads();
            float s[NB][4];
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < KS; kk++) {
                    uint32_t kb[2];
                    lrsa_ldmatrix<2, false>(
                        kb, &Ks[(8 * nb + (lane % 8)) * LD + 16 * kk + 8 * ((lane / 8) % 2)]);
                    lrsa_mma_bf16_16816(s[nb], qa[kk], kb, s[nb]);
                }
            }
            // scale, mask, and the new running maxima of the lane's two rows
            float mt[2] = {m[0], m[1]};
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int i = e / 2, j = k0 + 8 * nb + 2 * qt + (e & 1);
                    bool ok = lr.live[i] && row_sees(seg, j, kend, lr.p[i], lr.np[i], lr.b0[i]);
                    s[nb][e] = ok ? s[nb][e] * d.scale : -INFINITY;
                    mt[i] = fmaxf(mt[i], s[nb][e]);
                }
            float alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
            for (int i = 0; i < 2; i++) {
                mt[i] = fmaxf(mt[i], __shfl_xor_sync(0xffffffffu, mt[i], 1));
                mt[i] = fmaxf(mt[i], __shfl_xor_sync(0xffffffffu, mt[i], 2));
                alpha[i] = mt[i] == -INFINITY ? 1.0f : expf(m[i] - mt[i]);
            }
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int i = e / 2;
                    float pe = mt[i] == -INFINITY ? 0.0f : expf(s[nb][e] - mt[i]);
                    s[nb][e] = pe;
                    sum[i] += pe;
                }
#pragma unroll
            for (int i = 0; i < 2; i++) {
                sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 1);
                sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 2);
                l[i] = l[i] * alpha[i] + sum[i];
                m[i] = mt[i];
            }
#pragma unroll
            for (int nd = 0; nd < ND; nd++) {
                o[nd][0] *= alpha[0], o[nd][1] *= alpha[0];
                o[nd][2] *= alpha[1], o[nd][3] *= alpha[1];
            }
            mma_acc_px<D, NB>(o, s, Vs); // O += P V
        }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (!lr.live[i]) continue;
        const int h = lr.head[i];
        bf16 *orow = out + ((int64_t)b * T + lr.p[i]) * d.o_stride + (int64_t)h * D;
        float inv = 1.0f / l[i];
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            orow[8 * nd + 2 * qt] = __float2bfloat16_rn(o[nd][2 * i] * inv);
            orow[8 * nd + 2 * qt + 1] = __float2bfloat16_rn(o[nd][2 * i + 1] * inv);
        }
        if (qt == 0) lse[((int64_t)b * d.Hq + h) * T + lr.p[i]] = m[i] + logf(l[i]);
    }
}

} // namespace lrsa_attn_cuda
#endif
