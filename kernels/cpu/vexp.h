/* e^x in fp32 without a libm call, written so that gcc vectorises loops over it (SSE2 at the
 * default -march, no FMA, no -ffast-math): the softmax of attention and of the LM head, and
 * SwiGLU's sigmoid.
 *
 * Method: n = round(x / ln 2) with the 1.5 * 2^23 shifter (its low mantissa bits are n), the
 * Cody-Waite reduction r = x - n ln2_hi - n ln2_lo (ln2_hi has 9 significant bits, so n ln2_hi
 * is exact), e^r = 1 + r + r^2 P(r) with P the degree-5 minimax polynomial of Cephes' expf
 * (S. L. Moshier; the coefficients are its published values), then 2^n applied as two exact
 * power-of-two factors so that subnormal results are rounded once.
 *
 * Accuracy (tests/kernels/test_vexp.c, and bench_vexp for the sweep of every float): at most
 * LRSA_VEXP_MAX_ULP ulps from the correctly rounded e^x for normal results; subnormal results
 * within one unit of the smallest subnormal; e^x = +inf for x > 88.7228394 (where fp32
 * overflows), 0 for x < -103.972084, e^(-inf) = 0, e^(+inf) = +inf, NaN in gives NaN out.
 * Every operation is an IEEE fp32 add or multiply without contraction (the project builds with
 * -std=c11, so -ffp-contract=off), so the result is the same bit pattern on every x86-64 CPU
 * whatever the vector width. */
#ifndef LRSA_KERNELS_CPU_VEXP_H
#define LRSA_KERNELS_CPU_VEXP_H
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { LRSA_VEXP_MAX_ULP = 1 };

static inline float lrsa_vexp_from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline uint32_t lrsa_vexp_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* Branch-free: inputs outside [lo, hi] and NaN compute garbage in their lane, which the masks
 * at the end replace (integer work is unsigned, so no lane has undefined behaviour). The
 * comparisons are the quiet ones (isless & co. raise no FE_INVALID), so gcc may evaluate every
 * selection unconditionally and vectorise without -fno-trapping-math. */
static inline float lrsa_vexpf(float x) {
    const float hi = 88.7228394f, lo = -103.972084f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504f + shifter;
    float n = t - shifter;
    int32_t ni = (int32_t)(lrsa_vexp_bits(t) - lrsa_vexp_bits(shifter)); /* n, in [-150, 128] */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = (p * (r * r) + r) + 1.0f;
    /* 2^n as 2^n1 * 2^n2, both normal for n in [-150, 128] */
    int32_t n1 = ni / 2, n2 = ni - n1;
    y = y * lrsa_vexp_from_bits((uint32_t)(n1 + 127) << 23);
    y = y * lrsa_vexp_from_bits((uint32_t)(n2 + 127) << 23);
    uint32_t yb = lrsa_vexp_bits(y);
    uint32_t under = 0u - (uint32_t)isless(x, lo), over = 0u - (uint32_t)isgreater(x, hi);
    uint32_t nan = 0u - (uint32_t)isunordered(x, x);
    yb &= ~under;
    yb = (yb & ~over) | (0x7f800000u & over);
    yb = (yb & ~nan) | (lrsa_vexp_bits(x) & nan);
    return lrsa_vexp_from_bits(yb);
}
#endif
