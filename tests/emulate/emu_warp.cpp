// The warp-level operations of the emulation, as warp collectives (emu_scheduler.cpp gathers the
// lanes): shuffles, ballots and __syncwarp, and the tensor-core instructions mma.sync m16n8k16
// (bf16 in, fp32 accumulate) and ldmatrix with the PTX ISA's fragment layouts.
#include <cstring>

#include "emu_internal.h"

namespace lrsa_emu {

void shfl_exchange(void **recs, unsigned mask) {
    for (unsigned l = 0; l < 32; l++) {
        if (!(mask & (1u << l))) continue;
        ShflRec *r = (ShflRec *)recs[l];
        if (!(mask & (1u << r->src)))
            fail(Site{__FILE__, __LINE__},
                 "lane %u shuffles from lane %d, which is not in the mask 0x%08x", l, r->src, mask);
        r->result = ((ShflRec *)recs[r->src])->value;
    }
}

void ballot_exchange(void **recs, unsigned mask) {
    unsigned bits = 0;
    for (unsigned l = 0; l < 32; l++)
        if ((mask & (1u << l)) && ((BallotRec *)recs[l])->pred) bits |= 1u << l;
    for (unsigned l = 0; l < 32; l++)
        if (mask & (1u << l)) ((BallotRec *)recs[l])->result = bits;
}

void syncwarp_exchange(void **recs, unsigned mask) {
    (void)recs, (void)mask;
}

namespace {

float bf16_lo(uint32_t r) {
    return __uint_as_float(r << 16);
}
float bf16_hi(uint32_t r) {
    return __uint_as_float(r & 0xffff0000u);
}

struct MmaRec {
    float *d;
    const uint32_t *a, *b;
    const float *c;
};

void mma_exchange(void **recs, unsigned mask) {
    if (mask != 0xffffffffu)
        fail(Site{__FILE__, __LINE__}, "mma.sync needs the whole warp (mask 0x%08x)", mask);
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; l++) {
        const MmaRec *r = (const MmaRec *)recs[l];
        int g = l / 4, t = l % 4;
        for (int h = 0; h < 2; h++) { // columns 2t (h 0) .. 2t+8 (h 1) of A, rows of B
            int k = 2 * t + 8 * h;
            A[g][k] = bf16_lo(r->a[2 * h]);
            A[g][k + 1] = bf16_hi(r->a[2 * h]);
            A[g + 8][k] = bf16_lo(r->a[2 * h + 1]);
            A[g + 8][k + 1] = bf16_hi(r->a[2 * h + 1]);
            B[k][g] = bf16_lo(r->b[h]);
            B[k + 1][g] = bf16_hi(r->b[h]);
        }
        C[g][2 * t] = r->c[0];
        C[g][2 * t + 1] = r->c[1];
        C[g + 8][2 * t] = r->c[2];
        C[g + 8][2 * t + 1] = r->c[3];
    }
    float D[16][8];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            float s = 0.0f;
            for (int k = 0; k < 16; k++) s += A[i][k] * B[k][j];
            D[i][j] = s + C[i][j];
        }
    for (int l = 0; l < 32; l++) {
        const MmaRec *r = (const MmaRec *)recs[l];
        int g = l / 4, t = l % 4;
        r->d[0] = D[g][2 * t];
        r->d[1] = D[g][2 * t + 1];
        r->d[2] = D[g + 8][2 * t];
        r->d[3] = D[g + 8][2 * t + 1];
    }
}

struct LdmRec {
    int nmat;
    bool trans;
    uint32_t *r;
    const void *addr;
};

void ldmatrix_exchange(void **recs, unsigned mask) {
    if (mask != 0xffffffffu)
        fail(Site{__FILE__, __LINE__}, "ldmatrix needs the whole warp (mask 0x%08x)", mask);
    const LdmRec *r0 = (const LdmRec *)recs[0];
    int nmat = r0->nmat;
    for (int l = 1; l < 32; l++) {
        const LdmRec *r = (const LdmRec *)recs[l];
        if (r->nmat != nmat || r->trans != r0->trans)
            fail(Site{__FILE__, __LINE__}, "ldmatrix shape differs between lanes");
    }
    uint16_t M[4][8][8];
    for (int i = 0; i < nmat; i++)
        for (int row = 0; row < 8; row++) {
            const void *a = ((const LdmRec *)recs[8 * i + row])->addr;
            if ((uintptr_t)a % 16)
                fail(Site{__FILE__, __LINE__},
                     "ldmatrix row address %p (lane %d) is not 16-byte aligned", a, 8 * i + row);
            std::memcpy(M[i][row], a, 16);
        }
    for (int l = 0; l < 32; l++) {
        const LdmRec *r = (const LdmRec *)recs[l];
        int q = l / 4, c = 2 * (l % 4);
        for (int i = 0; i < nmat; i++) {
            uint16_t lo = r0->trans ? M[i][c][q] : M[i][q][c];
            uint16_t hi = r0->trans ? M[i][c + 1][q] : M[i][q][c + 1];
            r->r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
        }
    }
}

} // namespace

void mma_m16n8k16_bf16(const Site &s, float d[4], const uint32_t a[4], const uint32_t b[2],
                       const float c[4]) {
    float out[4];
    MmaRec r{out, a, b, c};
    warp_collective(s, 0xffffffffu, &r, mma_exchange);
    for (int i = 0; i < 4; i++) d[i] = out[i];
}

void ldmatrix(const Site &s, int nmat, bool trans, uint32_t *r, const void *row_addr) {
    if (nmat != 1 && nmat != 2 && nmat != 4) fail(s, "ldmatrix .x%d does not exist", nmat);
    LdmRec rec{nmat, trans, r, row_addr};
    warp_collective(s, 0xffffffffu, &rec, ldmatrix_exchange);
}

} // namespace lrsa_emu
