// The warp-level matrix instructions the tensor-core kernels use (kernels/device/mma_cuda.cuh
// calls these under LRSA_CUDA_EMULATION instead of its inline PTX). Each is a warp collective:
// the 32 lanes' registers are gathered, the instruction's data movement or product is done with
// the fragment layouts of the PTX ISA, and each lane gets its own registers back, so a kernel
// that puts a value in the wrong lane or register gets a wrong result here too.
#ifndef LRSA_EMU_MMA_H
#define LRSA_EMU_MMA_H
#include <cstdint>

namespace lrsa_emu {
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: D[16x8] = A[16x16] B[16x8] + C.
// Lane l (g = l/4, t = l%4) holds A rows g and g+8, columns 2t, 2t+1 (a[0]: row g, a[1]: row g+8)
// and columns 2t+8, 2t+9 (a[2]: row g, a[3]: row g+8); B column g, rows 2t, 2t+1 (b[0]) and
// 2t+8, 2t+9 (b[1]); C/D rows g (c[0], c[1]) and g+8 (c[2], c[3]), columns 2t, 2t+1. Each 32-bit
// register holds two bf16, the lower column (A) or row (B) in the low half.
void mma_m16n8k16_bf16(const Site &s, float d[4], const uint32_t a[4], const uint32_t b[2],
                       const float c[4]);
// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lanes 8i..8i+7 give the addresses of
// the 8 rows (16 bytes each) of matrix i; lane l receives in r[i] the elements (row l/4, columns
// 2(l%4), 2(l%4)+1) of matrix i, or with trans (rows 2(l%4), 2(l%4)+1, column l/4).
void ldmatrix(const Site &s, int nmat, bool trans, uint32_t *r, const void *row_addr);
} // namespace lrsa_emu
#endif
