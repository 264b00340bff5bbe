/* Row reductions written so that gcc vectorises them without reassociating anything: eight
 * interleaved lanes, combined in a fixed order at the end, so the result is the same bits
 * whatever the vector width (SSE2, AVX2) and on every run. */
#ifndef LRSA_KERNELS_CPU_VROW_H
#define LRSA_KERNELS_CPU_VROW_H
#include <math.h>
#include <stdint.h>

/* Maximum of s[0..n): NaN when any entry is NaN (a diverged model must give a NaN loss, not a
 * silently finite output), -inf when n == 0. Quiet comparisons (isgreater), so nothing traps. */
static inline float lrsa_row_max(const float *s, int64_t n) {
    float mx[8];
    int bad[8];
    for (int u = 0; u < 8; u++) mx[u] = -INFINITY, bad[u] = 0;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) {
            float x = s[j + u];
            mx[u] = isgreater(x, mx[u]) ? x : mx[u];
            bad[u] |= isunordered(x, x);
        }
    for (int u = 0; j + u < n; u++) {
        float x = s[j + u];
        mx[u] = isgreater(x, mx[u]) ? x : mx[u];
        bad[u] |= isunordered(x, x);
    }
    float m = mx[0];
    int b = bad[0];
    for (int u = 1; u < 8; u++) {
        m = isgreater(mx[u], m) ? mx[u] : m;
        b |= bad[u];
    }
    return b ? NAN : m;
}

/* Sum of s[0..n) in fp32: lane u adds s[u], s[u+8], ... in order; the lanes are added as
 * ((0+1)+(2+3))+((4+5)+(6+7)). */
static inline float lrsa_row_sum(const float *s, int64_t n) {
    float p[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) p[u] += s[j + u];
    for (int u = 0; j + u < n; u++) p[u] += s[j + u];
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}

/* The same in double (each element widened before it is added). */
static inline double lrsa_row_sum_d(const float *s, int64_t n) {
    double p[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) p[u] += (double)s[j + u];
    for (int u = 0; j + u < n; u++) p[u] += (double)s[j + u];
    return ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
}
#endif
