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
// accumulators, and adds P V (V through ldmatrix.trans). Fragment layouts: kernels/device/
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

// Copies rows [k0, k0 + kMmaKeys) of a K or V segment into a staged tile (zeros past limit).
template <int D>
__device__ void stage_rows(bf16 *dst, const bf16 *src, int64_t stride, int k0, int limit) {
    constexpr int LD = MmaSmem<D>::LD;
    for (int idx = threadIdx.x; idx < kMmaKeys * D; idx += kMmaThreads) {
        int j = idx / D, c = idx % D;
        dst[j * LD + c] =
            k0 + j < limit ? src[(int64_t)(k0 + j) * stride + c] : __float2bfloat16(0.0f);
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
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, qg = lane >> 2, qt = lane & 3;

    for (int idx = threadIdx.x; idx < kRows * D; idx += kMmaThreads) {
        int r = idx / D, c = idx % D, p = rt.pos(r);
        bf16 x = __float2bfloat16(0.0f);
        if (r < rt.nrows && p < T)
            x = q[((int64_t)b * T + p) * d.q_stride + (int64_t)rt.head(g, G, r) * D + c];
        Qs[r * LD + c] = x;
    }
    __syncthreads();
    // This lane's two rows (quad row qg and qg + 8 of the warp's 16): position, validity and
    // what they see.
    int prow[2], np[2], b0[2];
    bool live[2];
    for (int i = 0; i < 2; i++) {
        int r = 16 * warp + qg + 8 * i;
        prow[i] = rt.pos(r);
        live[i] = r < rt.nrows && prow[i] < T;
        vis.row(prow[i], np[i], b0[i]);
    }
    uint32_t qa[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; kk++)
        lrsa_ldmatrix<4, false>(qa[kk],
                                &Qs[(16 * warp + (lane % 16)) * LD + 16 * kk + 8 * (lane / 16)]);

    float o[ND][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int nd = 0; nd < ND; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    for (int seg = 0; seg < 2; seg++) {
        const int64_t cbase = ((int64_t)b * d.Hkv + g) * vis.nc * D;
        const bf16 *ks = seg ? k + (int64_t)b * T * d.kv_stride + (int64_t)g * D : ck + cbase;
        const bf16 *vs = seg ? v + (int64_t)b * T * d.kv_stride + (int64_t)g * D : cv + cbase;
        const int64_t st = seg ? d.kv_stride : D;
        const int kbeg = seg ? tk.b0min : 0, kend = seg ? tk.kend : tk.npmax;
        for (int k0 = kbeg; k0 < kend; k0 += kMmaKeys) {
            __syncthreads(); // every warp is done with the previous tile
            stage_rows<D>(Ks, ks, st, k0, kend);
            stage_rows<D>(Vs, vs, st, k0, kend);
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
                    bool ok = live[i] && j < kend &&
                              (seg == 0 ? j < np[i] : (j >= b0[i] && j <= prow[i]));
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
            // O += P V: P's accumulators of key blocks 2kk, 2kk+1 are the A fragment of k-step kk
#pragma unroll
            for (int kk = 0; kk < NB / 2; kk++) {
                uint32_t pa[4] = {lrsa_pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),
                                  lrsa_pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                  lrsa_pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                  lrsa_pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int nd = 0; nd < ND; nd++) {
                    uint32_t vb[2];
                    lrsa_ldmatrix<2, true>(vb, &Vs[(16 * kk + (lane % 16)) * LD + 8 * nd]);
                    lrsa_mma_bf16_16816(o[nd], pa, vb, o[nd]);
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (!live[i]) continue;
        int r = 16 * warp + qg + 8 * i, h = rt.head(g, G, r);
        bf16 *orow = out + ((int64_t)b * T + prow[i]) * d.o_stride + (int64_t)h * D;
        float inv = 1.0f / l[i];
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            orow[8 * nd + 2 * qt] = __float2bfloat16_rn(o[nd][2 * i] * inv);
            orow[8 * nd + 2 * qt + 1] = __float2bfloat16_rn(o[nd][2 * i + 1] * inv);
        }
        if (qt == 0) lse[((int64_t)b * d.Hq + h) * T + prow[i]] = m[i] + logf(l[i]);
    }
}

} // namespace lrsa_attn_cuda
#endif
