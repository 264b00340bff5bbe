// The attention backward on tensor cores (sm_80+: bf16 mma.sync m16n8k16, fp32 accumulators),
// for dense causal and LRSA attention alike (both key segments, the visibility rule of Vis, the
// logsumexp of the forward and delta = rowsum(dO * O) of attn_delta_kernel). Device code;
// included by attention_kernels_cuda.cuh after the forward (attention_mma_cuda.cuh), whose
// staging and warp-product helpers it uses.
//
// FlashAttention-2's recomputation (P = exp(scale * Q K^T - lse), dP = dO V^T,
// dS = P * (dP - delta)) in two kernels, as the fp32 backward splits it, so that nothing is
// accumulated across blocks: no atomics, bitwise repeatable, correct in any block order.
// - dQ: a block of 4 warps owns the forward's 64 query rows (the heads of one GQA group at 64/G
//   positions, sharing every K/V tile); per 64-key tile each warp forms S and dP for its 16 rows,
//   then dQ += dS K (K through ldmatrix.trans).
// - dK/dV: a block of 4 warps owns 64 keys of one segment (warp w: keys 16w..16w+15) and walks
//   every query head of the group over the queries that can see the tile (BQ at a time); per step
//   each warp forms S^T = K Q^T and dP^T = V dO^T for its 16 keys, then dV += P^T dO and
//   dK += dS^T Q. The prefix (C rows) writes fp32 dck/dcv; the band adds them back at the
//   original positions through the inverse map, as the fp32 kernels do.
// S and dP are recomputed by both kernels (7 products per tile pair instead of FlashAttention-2's
// 5 with atomic dQ): the price of determinism. The emulated tests check the fragment layouts;
// the GPU has never run this code.
#ifndef LRSA_KERNELS_ATTENTION_MMA_BWD_CUDA_CUH
#define LRSA_KERNELS_ATTENTION_MMA_BWD_CUDA_CUH
#include "kernels/device/mma_cuda.cuh"

namespace lrsa_attn_cuda {

template <int D> struct MmaBwd {
    static constexpr int LD = MmaSmem<D>::LD;
    // dK/dV: queries per step; 32 at D = 128 keeps the two fp32 [16][D] accumulators and the
    // score tiles of a warp in registers.
    static constexpr int BQ = D <= 64 ? 64 : 32;
    // dQ: Q, dO (kRows rows), K, V (kMmaKeys rows), bf16.
    static constexpr size_t dq_bytes = sizeof(bf16) * (size_t)2 * (kRows + kMmaKeys) * LD;
    // dK/dV: K, V (kMmaKeys rows), Q, dO (BQ rows), bf16; then lse, delta, prefix length and
    // band start per query of the step.
    static constexpr size_t dkdv_bytes =
        sizeof(bf16) * (size_t)2 * (kMmaKeys + BQ) * LD + (size_t)BQ * 4 * sizeof(float);
};

template <int D>
__global__ void __launch_bounds__(kMmaThreads)
    attn_bwd_dq_mma_kernel(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                           const bf16 *ck, const bf16 *cv, const float *lse, const float *delta,
                           lrsa_attn_dims d, Vis vis) {
    constexpr int LD = MmaSmem<D>::LD, ND = D / 8, NB = kMmaKeys / 8;
    extern __shared__ __align__(16) unsigned char mma_smem[];
    bf16 *Qs = (bf16 *)mma_smem, *dOs = Qs + kRows * LD, *Ks = dOs + kRows * LD,
         *Vs = Ks + kMmaKeys * LD;
    const int T = d.T, G = d.Hq / d.Hkv, g = blockIdx.y, b = blockIdx.z;
    const RowTile rt = row_tile(G, T);
    const TileKeys tk = tile_keys(rt, vis, T);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, qt = lane & 3;

    stage_query_rows<D>(Qs, q, d.q_stride, rt, g, G, b, T);
    stage_query_rows<D>(dOs, dout, d.o_stride, rt, g, G, b, T);
    const LaneRows lr = lane_rows(rt, vis, g, G, T);
    float lrow[2], drow[2]; // logsumexp and delta of the lane's two rows
    for (int i = 0; i < 2; i++) {
        int64_t row = ((int64_t)b * d.Hq + lr.head[i]) * T + lr.p[i];
        lrow[i] = lr.live[i] ? lse[row] : 0.0f;
        drow[i] = lr.live[i] ? delta[row] : 0.0f;
    }
    float acc[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++) acc[nd][0] = acc[nd][1] = acc[nd][2] = acc[nd][3] = 0.0f;
    for (int seg = 0; seg < 2; seg++) {
        const KeySeg ks = key_seg(seg, k, v, ck, cv, d, vis, tk, b, g);
        const int kend = ks.end;
        for (int k0 = ks.beg; k0 < kend; k0 += kMmaKeys) {
            __syncthreads(); // every warp is done with the previous tile (and Q, dO are staged)
            stage_rows<D>(Ks, ks.k, ks.stride, k0, kend);
            stage_rows<D>(Vs, ks.v, ks.stride, k0, kend);
            __syncthreads();
            float s[NB][4], dp[NB][4];
            mma_rows_abt<D, NB>(s, Qs + 16 * warp * LD, Ks);   // S = Q K^T
            mma_rows_abt<D, NB>(dp, dOs + 16 * warp * LD, Vs); // dP = dO V^T
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int i = e / 2, j = k0 + 8 * nb + 2 * qt + (e & 1);
                    bool ok = lr.live[i] && row_sees(seg, j, kend, lr.p[i], lr.np[i], lr.b0[i]);
                    float p = ok ? expf(s[nb][e] * d.scale - lrow[i]) : 0.0f;
                    s[nb][e] = p * (dp[nb][e] - drow[i]); // dS
                }
            mma_acc_px<D, NB>(acc, s, Ks); // dQ += dS K
        }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (!lr.live[i]) continue;
        bf16 *row = dq + ((int64_t)b * T + lr.p[i]) * d.q_stride + (int64_t)lr.head[i] * D + 2 * qt;
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            row[8 * nd] = __float2bfloat16_rn(acc[nd][2 * i] * d.scale);
            row[8 * nd + 1] = __float2bfloat16_rn(acc[nd][2 * i + 1] * d.scale);
        }
    }
}

// dK/dV of one tile of kMmaKeys keys, summed over every query head of the group; seg, the
// outputs and inv as attn_bwd_dkdv_kernel (attention_kernels_cuda.cuh).
template <int D>
__global__ void __launch_bounds__(kMmaThreads)
    attn_bwd_dkdv_mma_kernel(bf16 *dk, bf16 *dv, float *dck, float *dcv, const int32_t *inv,
                             const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                             const bf16 *ck, const bf16 *cv, const float *lse, const float *delta,
                             lrsa_attn_dims d, Vis vis, int seg) {
    constexpr int LD = MmaSmem<D>::LD, BQ = MmaBwd<D>::BQ, NBQ = BQ / 8, ND = D / 8;
    extern __shared__ __align__(16) unsigned char mma_smem[];
    bf16 *Ks = (bf16 *)mma_smem, *Vs = Ks + kMmaKeys * LD, *Qs = Vs + kMmaKeys * LD,
         *dOs = Qs + BQ * LD;
    float *lq = (float *)(dOs + BQ * LD), *dlq = lq + BQ; // lse, delta per query of the step
    int *npq = (int *)(dlq + BQ), *b0q = npq + BQ;        // prefix length, band start
    const int T = d.T, G = d.Hq / d.Hkv, g = blockIdx.y, b = blockIdx.z;
    const int nkeys = seg ? T : vis.nc;
    const int k0 = ((nkeys + kMmaKeys - 1) / kMmaKeys - 1 - (int)blockIdx.x) * kMmaKeys;
    const KeyTileOut ko = key_tile_out(d, vis, b, g);
    const bf16 *ks = seg ? k + ko.kvoff : ck + ko.cbase, *vs = seg ? v + ko.kvoff : cv + ko.cbase;
    const int64_t st = seg ? d.kv_stride : D;
    stage_rows<D>(Ks, ks, st, k0, nkeys);
    stage_rows<D>(Vs, vs, st, k0, nkeys);
    int qbeg, qend;
    tile_queries(vis, seg, k0, min(nkeys, k0 + kMmaKeys) - 1, T, qbeg, qend);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, qg = lane >> 2, qt = lane & 3;
    const int kw = k0 + 16 * warp + qg; // this lane's keys: kw and kw + 8

    float dka[ND][4], dva[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++)
        for (int e = 0; e < 4; e++) dka[nd][e] = dva[nd][e] = 0.0f;
    for (int h = g * G; h < (g + 1) * G; h++)
        for (int q0 = qbeg; q0 < qend; q0 += BQ) {
            __syncthreads(); // every warp is done with the previous step
            const int64_t tok0 = (int64_t)b * T, hd = (int64_t)h * D;
            stage_rows<D, BQ>(Qs, q + tok0 * d.q_stride + hd, d.q_stride, q0, qend);
            stage_rows<D, BQ>(dOs, dout + tok0 * d.o_stride + hd, d.o_stride, q0, qend);
            for (int i = threadIdx.x; i < BQ; i += kMmaThreads) {
                int64_t row = ((int64_t)b * d.Hq + h) * T + q0 + i;
                lq[i] = q0 + i < qend ? lse[row] : 0.0f;
                dlq[i] = q0 + i < qend ? delta[row] : 0.0f;
                vis.row(q0 + i, npq[i], b0q[i]);
            }
            __syncthreads();
            float s[NBQ][4], dp[NBQ][4];
            mma_rows_abt<D, NBQ>(s, Ks + 16 * warp * LD, Qs);   // S^T = K Q^T
            mma_rows_abt<D, NBQ>(dp, Vs + 16 * warp * LD, dOs); // dP^T = V dO^T
#pragma unroll
            for (int nb = 0; nb < NBQ; nb++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int i = 8 * nb + 2 * qt + (e & 1), qp = q0 + i, kp = kw + 8 * (e / 2);
                    bool ok = qp < qend && row_sees(seg, kp, nkeys, qp, npq[i], b0q[i]);
                    float p = ok ? expf(s[nb][e] * d.scale - lq[i]) : 0.0f;
                    s[nb][e] = p;                         // P^T
                    dp[nb][e] = p * (dp[nb][e] - dlq[i]); // dS^T
                }
            mma_acc_px<D, NBQ>(dva, s, dOs); // dV += P^T dO
            mma_acc_px<D, NBQ>(dka, dp, Qs); // dK += dS^T Q
        }
#pragma unroll
    for (int nd = 0; nd < ND; nd++)
        for (int e = 0; e < 4; e++) {
            int kp = kw + 8 * (e / 2), c = 8 * nd + 2 * qt + (e & 1);
            if (kp < nkeys)
                store_dkdv(dk, dv, dck, dcv, inv, ko, d, seg, kp, c, dka[nd][e] * d.scale,
                           dva[nd][e]);
        }
}

} // namespace lrsa_attn_cuda
#endif
