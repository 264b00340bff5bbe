/* Cached attention of decode steps, whose blocks of <= 3 stacked rows take the direct products
 * of kernels/cpu/sgemm_rows.h (tested there bit for bit): GQA groups of 1, 3 and 4 query heads
 * (4: SGEMM), head dims 64, 128 and 20, split and unsplit key ranges, one to three new
 * positions; against a double reference, and the same bits for 1, 2 and 3 threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention/attention_cache.h"
#include "kernels/cpu/cpu_threads.h"
#include "test_util.h"

/* Decode shapes through the cache kernel: double reference, 1 / 2 / 3 threads. */
static void test_cache_decode(void **state) {
    (void)state;
    const int saved = lrsa_cpu_threads();
    struct {
        int Hq, Hkv, D;
        int64_t N, len;
    } cases[] = {
        {9, 3, 64, 1, 1},    {9, 3, 64, 1, 1023},   {9, 3, 64, 1, 2500},  {3, 3, 128, 1, 129},
        {3, 3, 64, 3, 1030}, {4, 1, 64, 1, 777},    {8, 2, 128, 1, 2049}, {2, 1, 20, 1, 300},
        {9, 3, 64, 2, 1500}, {16, 16, 64, 1, 1200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int Hq = cases[i].Hq, Hkv = cases[i].Hkv, D = cases[i].D;
        const int64_t N = cases[i].N, len = cases[i].len, n_out = N * Hq * D;
        lrsa_rng rng;
        lrsa_rng_seed(&rng, 70 + i);
        float *k = malloc(sizeof(float) * (size_t)(Hkv * len * D));
        float *v = malloc(sizeof(float) * (size_t)(Hkv * len * D));
        float *q = malloc(sizeof(float) * (size_t)n_out), *out[3];
        tu_fill_normal(k, Hkv * len * D, 1.0f, &rng);
        tu_fill_normal(v, Hkv * len * D, 1.0f, &rng);
        tu_fill_normal(q, n_out, 1.0f, &rng);
        lrsa_attn_kv_rows *rows = malloc(sizeof *rows * (size_t)Hkv);
        for (int g = 0; g < Hkv; g++)
            rows[g] = (lrsa_attn_kv_rows){k + g * len * D, v + g * len * D, len};
        for (int th = 1; th <= 3; th++) {
            out[th - 1] = calloc((size_t)n_out, sizeof(float));
            lrsa_cpu_set_threads(th);
            lrsa_attention_cache_forward_cpu(out[th - 1], (int64_t)Hq * D, q, (int64_t)Hq * D, Hq,
                                             N, rows, Hkv, D);
        }
        for (int th = 2; th <= 3; th++)
            if (memcmp(out[0], out[th - 1], sizeof(float) * (size_t)n_out))
                fail_msg("case %zu: %d threads differ from 1", i, th);
        /* double reference: query n sees rows [0, len - N + n] of its KV head */
        double num = 0.0, den = 0.0;
        const int G = Hq / Hkv;
        double *s = malloc(sizeof(double) * (size_t)len);
        for (int64_t n = 0; n < N; n++)
            for (int h = 0; h < Hq; h++) {
                const float *kh = k + (h / G) * len * D, *vh = v + (h / G) * len * D;
                const float *qh = q + (n * Hq + h) * D;
                const int64_t vis = len - N + n + 1;
                double mx = -INFINITY, sum = 0.0;
                for (int64_t j = 0; j < vis; j++) {
                    double dot = 0.0;
                    for (int x = 0; x < D; x++) dot += (double)qh[x] * kh[j * D + x];
                    s[j] = dot / sqrt((double)D);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int64_t j = 0; j < vis; j++) sum += (s[j] = exp(s[j] - mx));
                for (int x = 0; x < D; x++) {
                    double o = 0.0;
                    for (int64_t j = 0; j < vis; j++) o += s[j] / sum * vh[j * D + x];
                    double e = out[0][(n * Hq + h) * D + x] - o;
                    num += e * e, den += o * o;
                }
            }
        if (!(sqrt(num / den) < 1e-5))
            fail_msg("case %zu: relative error %.3g", i, sqrt(num / den));
        free(s), free(k), free(v), free(q), free(rows);
        for (int th = 0; th < 3; th++) free(out[th]);
    }
    lrsa_cpu_set_threads(saved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
