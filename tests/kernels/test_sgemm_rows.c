/* The few-row products of kernels/cpu/sgemm_rows.h (decode steps): the AVX2 and the plain path
 * give the bits of a scalar FMA chain in the documented block order, on odd shapes (outputs not
 * a multiple of 8 or 16, one output, inner lengths 3 to 1536 across the block boundaries,
 * strided rows, beta 0 and 1, alpha != 1); the threaded product gives the same bits for 1, 2
 * and 3 threads; against cblas_sgemm they are the same bits where OpenBLAS's kernel sums that
 * way (the 2-core VM of docs/BENCHMARKS.md) and within rounding elsewhere (printed). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/sgemm_rows.h"
#include "test_util.h"

/* Inner-index blocks written out independently of the kernel: 320 while 640 or more remain,
 * then half the rest rounded up to 16 when over 320, then the rest. */
static int ref_block(int rest) {
    return rest >= 640 ? 320 : rest > 320 ? (rest / 2 + 15) / 16 * 16 : rest;
}

/* C = (beta1 ? C : 0) + alpha A B^T (nt) or C += A B (nn), element by element. */
static void ref_product(float *c, int64_t ldc, const float *a, int64_t lda, int rows,
                        const float *b, int64_t ldb, int n, int K, float alpha, int beta1, int nn) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) {
            float x = beta1 || nn ? c[r * ldc + j] : 0.0f;
            for (int k0 = 0, kb; k0 < K; k0 += kb) {
                kb = ref_block(K - k0);
                float t = 0.0f;
                for (int k = k0; k < k0 + kb; k++)
                    t = fmaf(a[r * lda + k], nn ? b[k * ldb + j] : b[j * ldb + k], t);
                x = nn ? t + x : fmaf(alpha, t, x);
            }
            c[r * ldc + j] = x;
        }
}

static int bit_diffs(const float *a, const float *b, int rows, int n, int64_t ld) {
    int d = 0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n; j++) d += memcmp(a + r * ld + j, b + r * ld + j, sizeof(float)) != 0;
    return d;
}

typedef struct {
    int rows, n, K, beta1, nn;
    float alpha;
} shape;

/* One product by the reference, both paths, the threaded product (nt) and cblas_sgemm; adds
 * the elements where cblas differs to *blas_diff. */
static void check_shape(const shape *s, uint64_t seed, int *blas_diff, int *elems) {
    const int rows = s->rows, n = s->n, K = s->K;
    const int64_t lda = K + 3, ldb = (s->nn ? n : K) + 5, ldc = n + 2;
    const int64_t b_rows = s->nn ? K : n;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    float *a = malloc(sizeof(float) * (size_t)(rows * lda));
    float *b = malloc(sizeof(float) * (size_t)(b_rows * ldb));
    const size_t cb = sizeof(float) * (size_t)(rows * ldc);
    float *c0 = malloc(cb), *ref = malloc(cb), *got = malloc(cb), *blas = malloc(cb);
    tu_fill_normal(a, rows * lda, 1.0f, &rng);
    tu_fill_normal(b, b_rows * ldb, 1.0f, &rng);
    tu_fill_normal(c0, rows * ldc, 2.0f, &rng);
    memcpy(ref, c0, cb);
    ref_product(ref, ldc, a, lda, rows, b, ldb, n, K, s->alpha, s->beta1, s->nn);
    const lrsa_sgemm_rows_impl impls[2] = {LRSA_SGEMM_ROWS_AUTO, LRSA_SGEMM_ROWS_PLAIN};
    for (int i = 0; i < 3; i++) {
        memcpy(got, c0, cb);
        if (s->nn && i == 2) break;
        if (s->nn)
            lrsa_sgemm_rows_nn(got, ldc, a, lda, rows, b, ldb, n, K, impls[i]);
        else if (i < 2)
            lrsa_sgemm_rows_nt(got, ldc, a, lda, rows, b, ldb, n, K, s->alpha, s->beta1, impls[i]);
        else
            lrsa_sgemm_rows_nt_threaded(got, ldc, a, lda, rows, b, ldb, n, K, s->alpha, s->beta1);
        if (bit_diffs(got, ref, rows, n, ldc))
            fail_msg("%s rows %d n %d K %d beta %d (%s): %d elements not the chain's bits",
                     s->nn ? "nn" : "nt", rows, n, K, s->beta1,
                     i == 0   ? "auto"
                     : i == 1 ? "plain"
                              : "threaded",
                     bit_diffs(got, ref, rows, n, ldc));
    }
    memcpy(blas, c0, cb);
    if (s->nn)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, K, 1.0f, a, (int)lda, b,
                    (int)ldb, 1.0f, blas, (int)ldc);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, K, s->alpha, a, (int)lda, b,
                    (int)ldb, s->beta1 ? 1.0f : 0.0f, blas, (int)ldc);
    *blas_diff += bit_diffs(blas, ref, rows, n, ldc);
    *elems += rows * n;
    for (int r = 0; r < rows; r++)
        TU_ASSERT_CLOSE(blas + r * ldc, ref + r * ldc, n, 1e-5, "reference vs cblas_sgemm");
    free(a), free(b), free(c0), free(ref), free(got), free(blas);
}

static void test_products(void **state) {
    (void)state;
    const int ns[] = {1, 7, 8, 9, 16, 23, 64, 128, 300};
    const int Ks[] = {1, 3, 20, 64, 128, 319, 321, 576, 700, 1536};
    int blas_diff = 0, elems = 0;
    uint64_t seed = 1;
    for (int rows = 1; rows <= LRSA_SGEMM_ROWS_MAX; rows++)
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t j = 0; j < sizeof Ks / sizeof Ks[0]; j++) {
                shape s = {rows, ns[i], Ks[j], (int)(seed % 2), 0, 0.125f + (float)(seed % 3)};
                check_shape(&s, seed++, &blas_diff, &elems);
                shape t = {rows, ns[i], Ks[j], 1, 1, 1.0f};
                check_shape(&t, seed++, &blas_diff, &elems);
            }
    /* Informational: whether this machine's OpenBLAS sums like the direct path (then decoding
     * gives the bits it gave before the direct path). */
    printf("few-row products vs cblas_sgemm: %d of %d elements differ in their bits (%s)\n",
           blas_diff, elems, blas_diff ? "OpenBLAS sums in another order here" : "same bits");
}

/* The threaded product over many outputs (an LM head's shape, smaller): 1, 2, 3 threads. */
static void test_threaded_bits(void **state) {
    (void)state;
    const int saved = lrsa_cpu_threads();
    const int rows = 2, n = 5000 + 3, K = 576;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 9);
    float *a = malloc(sizeof(float) * rows * K), *b = malloc(sizeof(float) * (size_t)n * K);
    float *c[3];
    tu_fill_normal(a, rows * K, 1.0f, &rng);
    tu_fill_normal(b, (int64_t)n * K, 1.0f, &rng);
    for (int th = 1; th <= 3; th++) {
        lrsa_cpu_set_threads(th);
        c[th - 1] = calloc((size_t)rows * n, sizeof(float));
        lrsa_sgemm_rows_nt_threaded(c[th - 1], n, a, K, rows, b, K, n, K, 1.0f, 0);
    }
    for (int th = 2; th <= 3; th++)
        if (memcmp(c[0], c[th - 1], sizeof(float) * (size_t)rows * n))
            fail_msg("%d threads differ from 1", th);
    lrsa_cpu_set_threads(saved);
    free(a), free(b);
    for (int i = 0; i < 3; i++) free(c[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_products),
        cmocka_unit_test(test_threaded_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
