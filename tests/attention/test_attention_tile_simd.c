/* The AVX2 paths of the attention tile engine against the portable ones:
 * - lrsa_attn_scores_avx2 / lrsa_attn_nn_avx2 (the forward's P V) equal, bit for bit, a scalar
 *   model of the summation order they claim (fmaf chains chosen by lrsa_attn_blas_two_chain),
 *   on odd shapes; and equal cblas_sgemm bit for bit where OpenBLAS runs its Haswell/Zen kernel
 *   (close elsewhere);
 * - the backward's accumulating products, lrsa_attn_nn_avx2 (dQ += scale dS K) and
 *   lrsa_attn_tn_avx2 (dV += P^T dout, dK += scale dS^T Q, A read transposed), likewise over
 *   rows, keys, D, alpha and strides, including K past OpenBLAS's 320-term blocks;
 * - whole blocks (causal diagonal tiles, nk < BK, a gathered unmasked segment, rows not a
 *   multiple of the register block, D = 64 and 128, a D the products do not take, the training
 *   callers' one-head 64-position blocks, 384 stacked rows) through scratch.avx2 = 1 and = 0:
 *   forward outputs and logsumexps, backward dq/dk/dv (every backward product AVX2 or cblas).
 * Without AVX2+FMA the AVX2 halves are skipped (printed), the portable path still runs. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention/attention_tile.h"
#include "kernels/attention/attention_tile_simd.h"
#include "test_util.h"

/* 1 when cblas_sgemm runs the kernel whose order the AVX2 products reproduce. */
static int blas_is_haswell_kernel(void) {
    const char *core = openblas_get_corename();
    return core && (!strcmp(core, "Zen") || !strcmp(core, "Haswell"));
}

/* sum_k a[k*as] b[k*bs] in the order lrsa_attn_blas_two_chain names (two == 1: even/odd). */
static float model_dot(const float *a, int64_t as, const float *b, int64_t bs, int K, int two) {
    float e = 0.0f, o = 0.0f;
    int k = 0;
    if (two)
        for (; k < 8 * (K / 8); k += 2) {
            e = fmaf(a[k * as], b[k * bs], e);
            o = fmaf(a[(k + 1) * as], b[(k + 1) * bs], o);
        }
    for (; k < K; k++) e = fmaf(a[k * as], b[k * bs], e);
    return two ? e + o : e;
}

static int bits_equal(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

static void test_products_match_model(void **state) {
    (void)state;
    if (!lrsa_attn_simd_available()) {
        printf("no AVX2+FMA (or LRSA_ATTN_PORTABLE set): products not tested\n");
        return;
    }
    openblas_set_num_threads(1); /* the threaded driver splits calls differently */
    const int Ms[] = {1, 5, 6, 7, 12, 13, 18, 47, 132, 192};
    const int nks[] = {1, 7, 8, 9, 17, 100, 127, 128};
    const int Ds[] = {8, 64, 128};
    const int BK = LRSA_ATTN_BK, exact_blas = blas_is_haswell_kernel();
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 11);
    long checked = 0;
    for (size_t di = 0; di < sizeof Ds / sizeof *Ds; di++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
            for (size_t ki = 0; ki < sizeof nks / sizeof *nks; ki++) {
                const int D = Ds[di], M = Ms[mi], nk = nks[ki];
                const int64_t ld = 3 * D + 8; /* a fused-K/V-like stride */
                float *q = malloc(sizeof(float) * (size_t)(M * D));
                float *k = malloc(sizeof(float) * (size_t)(nk * ld));
                float *v = malloc(sizeof(float) * (size_t)(nk * ld));
                float *kt = malloc(sizeof(float) * (size_t)(D * BK));
                float *s = malloc(sizeof(float) * (size_t)(M * BK));
                float *s_ref = malloc(sizeof(float) * (size_t)(M * BK));
                float *acc = malloc(sizeof(float) * (size_t)(M * D));
                float *acc_ref = malloc(sizeof(float) * (size_t)(M * D));
                float *acc_blas = malloc(sizeof(float) * (size_t)(M * D));
                tu_fill_normal(q, (int64_t)M * D, 1.0f, &rng);
                tu_fill_normal(k, (int64_t)nk * ld, 1.0f, &rng);
                tu_fill_normal(v, (int64_t)nk * ld, 1.0f, &rng);
                tu_fill_normal(acc, (int64_t)M * D, 3.0f, &rng);
                memcpy(acc_ref, acc, sizeof(float) * (size_t)(M * D));
                memcpy(acc_blas, acc, sizeof(float) * (size_t)(M * D));
                const float scale = 0.137f;
                /* with the forward's prefetch requests (V while scoring, K while adding P V): they
                 * must change no value */
                const lrsa_attn_pf pf_v = {v, ld, nk, D}, pf_k = {k, ld, nk, D};
                lrsa_attn_scores_avx2(q, M, D, k, ld, nk, scale, s, BK, kt, pf_v);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < nk; j++) {
                        float d = model_dot(q + (int64_t)i * D, 1, k + j * ld, 1, D,
                                            lrsa_attn_blas_two_chain(j, i, nk, M));
                        s_ref[i * BK + j] = fmaf(scale, d, 0.0f);
                    }
                for (int i = 0; i < M; i++)
                    if (!bits_equal(s + i * BK, s_ref + i * BK, nk))
                        fail_msg("scores M %d nk %d D %d row %d differ", M, nk, D, i);
                /* the probabilities of the PV product: the scores, masked like a causal tile */
                for (int i = 0; i < M; i++)
                    for (int j = (i % nk) + 1; j < nk; j++) s[i * BK + j] = 0.0f;
                lrsa_attn_nn_avx2(s, BK, M, nk, v, ld, D, 1.0f, acc, D, pf_k);
                for (int i = 0; i < M; i++)
                    for (int c = 0; c < D; c++)
                        acc_ref[i * D + c] += model_dot(s + i * BK, 1, v + c, ld, nk,
                                                        lrsa_attn_blas_two_chain(c, i, D, M));
                if (!bits_equal(acc, acc_ref, (int64_t)M * D))
                    fail_msg("pv M %d nk %d D %d differs from the model", M, nk, D);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, D, nk, 1.0f, s, BK, v,
                            (int)ld, 1.0f, acc_blas, D);
                if (exact_blas) {
                    if (!bits_equal(acc, acc_blas, (int64_t)M * D))
                        fail_msg("pv M %d nk %d D %d differs from cblas_sgemm", M, nk, D);
                } else {
                    TU_ASSERT_CLOSE(acc, acc_blas, (int64_t)M * D, 1e-5, "pv vs cblas");
                }
                checked++;
                free(q), free(k), free(v), free(kt), free(s), free(s_ref);
                free(acc), free(acc_ref), free(acc_blas);
            }
    printf("%ld shapes; products %s cblas_sgemm bit for bit (OpenBLAS core %s)\n", checked,
           exact_blas ? "equal" : "close to", openblas_get_corename());
}

/* The model of the accumulating products: per block of K terms (the driver's split, restated
 * here: 320 while 640 or more remain, two halves, the first rounded up to 8, for 321..639),
 * c = fmaf(alpha, sum, c) with the sum in the order lrsa_attn_blas_two_chain names. A(i, k) is
 * a[i * ai + k * ak]. */
static void model_acc(const float *a, int64_t ai, int64_t ak, int n, int K, const float *b,
                      int64_t ldb, int D, float alpha, float *c, int64_t ldc) {
    for (int k0 = 0; k0 < K;) {
        const int rest = K - k0;
        const int kb = rest >= 640 ? 320 : rest > 320 ? (rest / 2 + 7) / 8 * 8 : rest;
        for (int i = 0; i < n; i++)
            for (int col = 0; col < D; col++) {
                float d = model_dot(a + i * ai + k0 * ak, ak, b + (int64_t)k0 * ldb + col, ldb, kb,
                                    lrsa_attn_blas_two_chain(col, i, D, n));
                c[i * ldc + col] = fmaf(alpha, d, c[i * ldc + col]);
            }
        k0 += kb;
    }
}

/* lrsa_attn_nn_avx2 and lrsa_attn_tn_avx2 against the model and cblas_sgemm: n output rows (the
 * tile's keys for tn, the block's rows for nn), K summed terms, D channels, both alphas the
 * backward uses, B and C at a packed and a fused-buffer stride. */
static void test_backward_products_match_model(void **state) {
    (void)state;
    if (!lrsa_attn_simd_available()) {
        printf("no AVX2+FMA (or LRSA_ATTN_PORTABLE set): products not tested\n");
        return;
    }
    openblas_set_num_threads(1);
    const int ns[] = {1, 5, 6, 7, 12, 13, 18, 47, 100, 127, 128, 200};
    const int Ks[] = {1, 7, 8, 9, 17, 64, 192, 320, 321, 500, 700};
    const int Ds[] = {8, 64, 128, 256};
    const float alphas[] = {1.0f, 0.125f, 0.0883883476f};
    const int exact_blas = blas_is_haswell_kernel();
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 13);
    long checked = 0;
    for (int tn = 0; tn < 2; tn++)
        for (size_t di = 0; di < sizeof Ds / sizeof *Ds; di++)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
                for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
                    const int D = Ds[di], n = ns[ni], K = Ks[ki];
                    if ((int64_t)n * K * D > 1500000) continue; /* (the test's time) */
                    const float alpha = alphas[(ni + ki) % 3];
                    const int wide = (ni + ki + di) % 2; /* fused strides of B and C */
                    /* A: [n x K] (nn) or [K x n] (tn), a tile-like stride past the used part */
                    const int lda = (tn ? n : K) + 5;
                    const int64_t arows = tn ? K : n, ldb = wide ? 3 * D + 8 : D;
                    const int64_t ldc = wide ? 2 * D + 8 : D;
                    float *a = malloc(sizeof(float) * (size_t)(arows * lda));
                    float *b = malloc(sizeof(float) * (size_t)(K * ldb));
                    float *c = malloc(sizeof(float) * (size_t)(n * ldc));
                    float *c_ref = malloc(sizeof(float) * (size_t)(n * ldc));
                    float *c_blas = malloc(sizeof(float) * (size_t)(n * ldc));
                    tu_fill_normal(a, arows * lda, 1.0f, &rng);
                    /* zeros where a causal tile masks, as the backward's P and dS have */
                    for (int64_t x = 0; x < arows * lda; x += 7) a[x] = 0.0f;
                    tu_fill_normal(b, K * ldb, 1.0f, &rng);
                    tu_fill_normal(c, n * ldc, 2.0f, &rng);
                    memcpy(c_ref, c, sizeof(float) * (size_t)(n * ldc));
                    memcpy(c_blas, c, sizeof(float) * (size_t)(n * ldc));
                    if (tn) {
                        lrsa_attn_tn_avx2(a, lda, n, K, b, ldb, D, alpha, c, ldc);
                        model_acc(a, 1, lda, n, K, b, ldb, D, alpha, c_ref, ldc);
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, D, K, alpha, a, lda,
                                    b, (int)ldb, 1.0f, c_blas, (int)ldc);
                    } else {
                        lrsa_attn_nn_avx2(a, lda, n, K, b, ldb, D, alpha, c, ldc,
                                          (lrsa_attn_pf){0});
                        model_acc(a, lda, 1, n, K, b, ldb, D, alpha, c_ref, ldc);
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, D, K, alpha, a,
                                    lda, b, (int)ldb, 1.0f, c_blas, (int)ldc);
                    }
                    const char *form = tn ? "tn" : "nn";
                    if (!bits_equal(c, c_ref, n * ldc))
                        fail_msg("%s n %d K %d D %d alpha %g differs from the model", form, n, K, D,
                                 (double)alpha);
                    if (exact_blas) {
                        if (!bits_equal(c, c_blas, n * ldc))
                            fail_msg("%s n %d K %d D %d alpha %g differs from cblas_sgemm", form, n,
                                     K, D, (double)alpha);
                    } else {
                        TU_ASSERT_CLOSE(c, c_blas, n * ldc, 1e-4, "backward product vs cblas");
                    }
                    checked++;
                    free(a), free(b), free(c), free(c_ref), free(c_blas);
                }
    printf("%ld shapes; backward products %s cblas_sgemm bit for bit (OpenBLAS core %s)\n", checked,
           exact_blas ? "equal" : "close to", openblas_get_corename());
}

/* One block of nq positions of G heads over a gathered unmasked segment of n0 rows and a
 * causal band of n1 rows (the LRSA shape; n0 = 0 is dense causal attention), forward then
 * backward, through the AVX2 (simd = 1) or portable (0) code. */
typedef struct {
    float *out, *lse, *dq, *dk, *dv;
} block_result;

static void run_block(int simd, int G, int nq, int D, int n0, int n1, const float *q,
                      const float *k, const float *v, const float *dout, block_result *r) {
    const int64_t q_ld = (int64_t)G * D, nkv = n0 + n1;
    lrsa_attn_scratch w;
    lrsa_attn_scratch_init(&w, G * nq, D);
    if (!simd) w.avx2 = 0;
    lrsa_attn_seg segs[2] = {
        {.k = k, .v = v, .ld = D, .dk = r->dk, .dv = r->dv, .dld = D, .n = n0, .causal = 0},
        {.k = k + (int64_t)n0 * D,
         .v = v + (int64_t)n0 * D,
         .ld = D,
         .dk = r->dk + (int64_t)n0 * D,
         .dv = r->dv + (int64_t)n0 * D,
         .dld = D,
         .n = n1,
         .causal = 1,
         .pos0 = 0},
    };
    lrsa_attn_qblock qb = {.q = q,
                           .q_ld = q_ld,
                           .out = r->out,
                           .o_ld = q_ld,
                           .lse = r->lse,
                           .lse_hs = nq,
                           .nq = nq,
                           .G = G,
                           .qpos0 = n1 - nq}; /* the last nq positions of the band */
    const float scale = 1.0f / sqrtf((float)D);
    lrsa_attn_seg *first = n0 > 0 ? segs : segs + 1;
    const int nseg = n0 > 0 ? 2 : 1;
    lrsa_attn_tile_forward(&w, &qb, first, nseg, D, scale);
    memset(r->dk, 0, sizeof(float) * (size_t)(nkv * D));
    memset(r->dv, 0, sizeof(float) * (size_t)(nkv * D));
    lrsa_attn_tile_backward(&w, &qb, dout, q_ld, r->dq, q_ld, first, nseg, D, scale);
    lrsa_attn_scratch_free(&w);
}

static void test_blocks_avx2_equal_portable(void **state) {
    (void)state;
    if (!lrsa_attn_simd_available()) {
        printf("no AVX2+FMA (or LRSA_ATTN_PORTABLE set): only the portable path ran\n");
        return;
    }
    openblas_set_num_threads(1);
    const int exact_blas = blas_is_haswell_kernel();
    /* G, nq, D, gathered rows, band rows */
    const int shapes[][5] = {{3, 64, 64, 0, 64},
                             {3, 64, 64, 0, 300},
                             {3, 37, 64, 0, 37},
                             {3, 13, 128, 0, 200},
                             {2, 5, 64, 50, 77},
                             {1, 1, 64, 0, 1},
                             {4, 21, 128, 9, 130},
                             {3, 64, 20, 0, 150},
                             {9, 7, 64, 130, 7},
                             {3, 64, 64, 17, 255},
                             {1, 64, 128, 0, 129},
                             {3, 2, 8, 0, 3},
                             /* the training callers' blocks (one head, 64 positions): dense
                              * and LRSA; and 384 stacked rows, past OpenBLAS's 320-term K
                              * blocks of dV and dK */
                             {1, 64, 64, 0, 700},
                             {1, 64, 64, 300, 200},
                             {1, 11, 64, 0, 523},
                             {6, 64, 64, 0, 100}};
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 12);
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int G = shapes[si][0], nq = shapes[si][1], D = shapes[si][2];
        const int n0 = shapes[si][3], n1 = shapes[si][4], nkv = n0 + n1;
        const int64_t nqd = (int64_t)nq * G * D;
        float *q = malloc(sizeof(float) * (size_t)nqd), *dout = malloc(sizeof(float) * nqd);
        float *k = malloc(sizeof(float) * (size_t)(nkv * D));
        float *v = malloc(sizeof(float) * (size_t)(nkv * D));
        tu_fill_normal(q, nqd, 2.0f, &rng);
        tu_fill_normal(dout, nqd, 1.0f, &rng);
        tu_fill_normal(k, (int64_t)nkv * D, 2.0f, &rng);
        tu_fill_normal(v, (int64_t)nkv * D, 1.0f, &rng);
        block_result res[2];
        for (int p = 0; p < 2; p++) {
            res[p].out = malloc(sizeof(float) * (size_t)nqd);
            res[p].dq = malloc(sizeof(float) * (size_t)nqd);
            res[p].lse = malloc(sizeof(float) * (size_t)(G * nq));
            res[p].dk = malloc(sizeof(float) * (size_t)(nkv * D));
            res[p].dv = malloc(sizeof(float) * (size_t)(nkv * D));
            run_block(p, G, nq, D, n0, n1, q, k, v, dout, &res[p]);
        }
        /* The softmax rows are bit-exact on every AVX2 CPU; the forward products only
         * where cblas_sgemm runs OpenBLAS's Haswell/Zen kernel (D % 8 == 0). */
        const int exact = exact_blas || D % 8 != 0;
        const float *pairs[][2] = {{res[0].out, res[1].out},
                                   {res[0].lse, res[1].lse},
                                   {res[0].dq, res[1].dq},
                                   {res[0].dk, res[1].dk},
                                   {res[0].dv, res[1].dv}};
        const int64_t lens[] = {nqd, (int64_t)G * nq, nqd, (int64_t)nkv * D, (int64_t)nkv * D};
        const char *names[] = {"out", "lse", "dq", "dk", "dv"};
        for (int t = 0; t < 5; t++) {
            if (exact) {
                if (!bits_equal(pairs[t][1], pairs[t][0], lens[t]))
                    fail_msg("shape %zu: %s differs between the AVX2 and portable paths", si,
                             names[t]);
            } else {
                TU_ASSERT_CLOSE(pairs[t][1], pairs[t][0], lens[t], 1e-5, names[t]);
            }
        }
        for (int p = 0; p < 2; p++)
            free(res[p].out), free(res[p].dq), free(res[p].lse), free(res[p].dk), free(res[p].dv);
        free(q), free(dout), free(k), free(v);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_products_match_model),
        cmocka_unit_test(test_backward_products_match_model),
        cmocka_unit_test(test_blocks_avx2_equal_portable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
