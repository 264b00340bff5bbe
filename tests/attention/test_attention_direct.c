/* The direct tile products of attention_direct.h (decode steps, blocks of <= 3 stacked rows):
 * the AVX2 and the plain path give the same bits as a scalar FMA chain in the documented order,
 * on odd shapes (keys not a multiple of 8 or 128, one key, head dims 64, 128 and ones that are
 * not a multiple of 4 or 8, strided rows); against cblas_sgemm they are the same bits where
 * OpenBLAS's kernel sums that way (the machine of docs/BENCHMARKS.md) and within rounding
 * elsewhere; and the cached attention that uses them (decode, GQA groups of 1, 3 and 4 query
 * heads, split and unsplit key ranges) matches a double reference with the same bits for 1, 2
 * and 3 threads. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention/attention_cache.h"
#include "kernels/attention/attention_direct.h"
#include "kernels/cpu/cpu_threads.h"
#include "test_util.h"

/* A tile problem: rows x D queries, nk keys and values ld apart, score and accumulator
 * buffers. */
typedef struct {
    int rows, nk, D;
    int64_t ld;
    float *q, *k, *v, *p, *acc0;
} tile;

enum { S_LD = 131 };

static void tile_init(tile *t, int rows, int nk, int D, uint64_t seed) {
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    t->rows = rows, t->nk = nk, t->D = D, t->ld = D + 5;
    t->q = malloc(sizeof(float) * (size_t)(rows * D));
    t->k = malloc(sizeof(float) * (size_t)(nk * t->ld));
    t->v = malloc(sizeof(float) * (size_t)(nk * t->ld));
    t->p = malloc(sizeof(float) * (size_t)(rows * S_LD));
    t->acc0 = malloc(sizeof(float) * (size_t)(rows * D));
    tu_fill_normal(t->q, rows * D, 1.0f, &rng);
    tu_fill_normal(t->k, nk * t->ld, 1.0f, &rng);
    tu_fill_normal(t->v, nk * t->ld, 1.0f, &rng);
    tu_fill_uniform(t->p, rows * S_LD, 0.0f, 1.0f, &rng);
    tu_fill_normal(t->acc0, rows * D, 3.0f, &rng);
}

static void tile_free(tile *t) {
    free(t->q), free(t->k), free(t->v), free(t->p), free(t->acc0);
}

/* The documented order, one element at a time: scale * chain + 0; acc + chain. */
static void scores_ref(const tile *t, float scale, float *s) {
    for (int r = 0; r < t->rows; r++)
        for (int j = 0; j < t->nk; j++) {
            float c = 0.0f;
            for (int d = 0; d < t->D; d++) c = fmaf(t->q[r * t->D + d], t->k[j * t->ld + d], c);
            s[r * S_LD + j] = c * scale + 0.0f;
        }
}

static void pv_ref(const tile *t, float *acc) {
    for (int r = 0; r < t->rows; r++)
        for (int c = 0; c < t->D; c++) {
            float x = 0.0f;
            for (int j = 0; j < t->nk; j++) x = fmaf(t->p[r * S_LD + j], t->v[j * t->ld + c], x);
            acc[r * t->D + c] += x;
        }
}

/* Elements whose bits differ between a and b (n of them, ld apart in rows of w). */
static int bit_diffs(const float *a, const float *b, int rows, int w, int ld) {
    int n = 0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < w; j++) n += memcmp(a + r * ld + j, b + r * ld + j, sizeof(float)) != 0;
    return n;
}

/* The scores and the P.V of one tile by the reference, the AVX2 path (where the CPU has it),
 * the plain path and cblas_sgemm; adds the SGEMM mismatches to *blas_diff. */
static void check_tile(int rows, int nk, int D, uint64_t seed, int *blas_diff, int *elems) {
    tile t;
    tile_init(&t, rows, nk, D, seed);
    const float scale = 1.0f / sqrtf((float)D);
    const size_t sb = sizeof(float) * (size_t)(rows * S_LD), ab = sizeof(float) * rows * D;
    float *ref = calloc(1, sb), *got = calloc(1, sb), *blas = calloc(1, sb);
    scores_ref(&t, scale, ref);
    const lrsa_attn_direct_impl impls[2] = {LRSA_ATTN_DIRECT_AUTO, LRSA_ATTN_DIRECT_PLAIN};
    for (int i = 0; i < 2; i++) {
        memset(got, 0, sb);
        lrsa_attn_direct_scores(got, S_LD, t.q, rows, t.k, t.ld, nk, D, scale, impls[i]);
        if (bit_diffs(got, ref, rows, nk, S_LD))
            fail_msg("scores rows %d nk %d D %d (%s path): not the FMA-chain bits", rows, nk, D,
                     i ? "plain" : "auto");
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, D, scale, t.q, D, t.k, (int)t.ld,
                0.0f, blas, S_LD);
    *blas_diff += bit_diffs(blas, ref, rows, nk, S_LD);
    *elems += rows * nk;
    for (int r = 0; r < rows; r++)
        TU_ASSERT_CLOSE(blas + r * S_LD, ref + r * S_LD, nk, 1e-6, "scores vs sgemm");

    float *aref = malloc(ab), *agot = malloc(ab), *ablas = malloc(ab);
    memcpy(aref, t.acc0, ab);
    pv_ref(&t, aref);
    for (int i = 0; i < 2; i++) {
        memcpy(agot, t.acc0, ab);
        lrsa_attn_direct_pv(agot, t.p, S_LD, rows, t.v, t.ld, nk, D, impls[i]);
        if (bit_diffs(agot, aref, rows, D, D))
            fail_msg("P.V rows %d nk %d D %d (%s path): not the FMA-chain bits", rows, nk, D,
                     i ? "plain" : "auto");
    }
    memcpy(ablas, t.acc0, ab);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, nk, 1.0f, t.p, S_LD, t.v,
                (int)t.ld, 1.0f, ablas, D);
    *blas_diff += bit_diffs(ablas, aref, rows, D, D);
    *elems += rows * D;
    TU_ASSERT_CLOSE(ablas, aref, rows * D, 1e-6, "P.V vs sgemm");
    free(ref), free(got), free(blas), free(aref), free(agot), free(ablas);
    tile_free(&t);
}

static void test_direct_products(void **state) {
    (void)state;
    const int nks[] = {1, 3, 7, 8, 9, 64, 127, 128};
    const int Ds[] = {64, 128, 16, 20, 3, 37};
    int blas_diff = 0, elems = 0;
    uint64_t seed = 1;
    for (int rows = 1; rows <= LRSA_ATTN_DIRECT_MAX_ROWS; rows++)
        for (size_t a = 0; a < sizeof nks / sizeof nks[0]; a++)
            for (size_t b = 0; b < sizeof Ds / sizeof Ds[0]; b++)
                check_tile(rows, nks[a], Ds[b], seed++, &blas_diff, &elems);
    /* Informational: whether this machine's OpenBLAS kernel sums like the direct path (then
     * cached attention has the bits it had before the direct path). */
    printf("direct path vs cblas_sgemm: %d of %d elements differ in their bits (%s)\n", blas_diff,
           elems, blas_diff ? "OpenBLAS sums in another order here" : "same bits");
}

/* Cached attention with the direct path (decode: G <= 3 rows per block) and without (G = 4):
 * double reference, and the same bits for 1, 2 and 3 threads. */
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
        cmocka_unit_test(test_direct_products),
        cmocka_unit_test(test_cache_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
