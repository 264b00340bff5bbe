// Tensor-core building blocks for sm_80 and later (device code; not a C header): the warp-wide
// bf16 matrix product mma.sync m16n8k16 with fp32 accumulators, and ldmatrix loads of 8x8 tiles
// of 16-bit elements from shared memory into the fragment layout that product expects. Fragment
// layouts (lane l, g = l / 4, t = l % 4):
//   A 16x16 (row-major): a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..2t+1], a[2] = A[g][2t+8..2t+9],
//                        a[3] = A[g+8][2t+8..2t+9]
//   B 16x8 (k x n):      b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
//   C, D 16x8 (fp32):    c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
// (two bf16 per 32-bit register, the lower index in the low half). Under the host emulation
// (tests/emulate, LRSA_CUDA_EMULATION) the same calls run as warp collectives that implement
// these layouts, so a lane/register mix-up fails the emulated tests as it would on the GPU.
#ifndef LRSA_KERNELS_DEVICE_MMA_CUDA_CUH
#define LRSA_KERNELS_DEVICE_MMA_CUDA_CUH
#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>

// d = a b + c (d may alias c).
__device__ inline void lrsa_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2],
                                           const float c[4]) {
#ifdef LRSA_CUDA_EMULATION
    lrsa_emu::mma_m16n8k16_bf16(LRSA_EMU_SITE, d, a, b, c);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
                   "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// Lanes 8i..8i+7 pass the shared-memory address of row 0..7 of 8x8 tile i (16-byte aligned);
// r[i] receives the lane's two elements of tile i (row l/4, columns 2(l%4), 2(l%4)+1), or with
// trans those of the transposed tile (rows 2(l%4), 2(l%4)+1 of column l/4).
template <int N, bool TRANS> __device__ inline void lrsa_ldmatrix(uint32_t *r, const void *row) {
    static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 tiles");
#ifdef LRSA_CUDA_EMULATION
    lrsa_emu::ldmatrix(LRSA_EMU_SITE, N, TRANS, r, row);
#else
    unsigned a = (unsigned)__cvta_generic_to_shared(row);
    if (N == 4 && !TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
    else if (N == 4)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
    else if (N == 2 && !TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1])
                     : "r"(a));
    else if (N == 2)
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                     : "=r"(r[0]), "=r"(r[1])
                     : "r"(a));
    else if (!TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                     : "=r"(r[0])
                     : "r"(a));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                     : "=r"(r[0])
                     : "r"(a));
#endif
}

// Two floats rounded to bf16 in one register, lo in the low half (the A/B fragment element order).
__device__ inline uint32_t lrsa_pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}
#endif
