/* LRSA visibility from a LagKV selection (lagkv_visible.h). */
#include "kernels/lagkv/lagkv_visible.h"

int lrsa_lrsa_key_visible(const int32_t *sel_head, int T, const lrsa_lagkv_params *p, int64_t q,
                          int64_t t) {
    const int64_t S = p->sink, L = p->lag;
    if (t < 0 || t > q || q >= T) return 0;
    if (q < S + 2 * L || t < S) return 1;
    const int64_t c = (q - S) / L; /* q's partition (the leftover is partition n) */
    if (t >= S + (c - 1) * L) return 1;
    /* t lies in P_j, j <= c - 2 < n_scored: visible iff selected (ascending positions) */
    const int k = lrsa_lagkv_k(p);
    const int32_t *s = sel_head + ((t - S) / L) * k;
    int lo = 0, hi = k;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < k && s[lo] == t;
}

int64_t lrsa_lrsa_spans_visible(const int32_t *sel, int T, int Hkv, const lrsa_lagkv_params *p,
                                int64_t q, const int64_t *rows, int64_t n_spans) {
    const int64_t per_head = (int64_t)lrsa_lagkv_num_scored(T, p) * lrsa_lagkv_k(p);
    int64_t kept = 0;
    for (int g = 0; g < Hkv; g++)
        for (int64_t i = 0; i < n_spans; i++) {
            int any = 0;
            for (int64_t t = rows[3 * i + 1]; t < rows[3 * i + 2] && !any; t++)
                any = lrsa_lrsa_key_visible(sel + g * per_head, T, p, q, t);
            kept += any;
        }
    return kept;
}
