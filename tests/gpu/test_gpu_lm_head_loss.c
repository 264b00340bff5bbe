/* The fused final-norm + LM head + cross-entropy on the GPU against lrsa_lm_head_loss_cpu on the
 * same (bf16-valued) inputs: loss, per-row nll, d(hidden) (poisoned first; masked rows must be
 * exactly zero), d(norm weight) and d(LM head) accumulated onto random values. Cases: several
 * chunks plus a remainder, the SmolLM2 vocabulary with the default chunk, the forward alone, and
 * a batch with every row masked. Two identical calls must give identical bits. Skips (77)
 * without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skip: built without CUDA\n");
    return 77;
}
#else
#include "gpu_compare.h"
#include "kernels/lm_head_loss/lm_head_loss.h"

typedef struct lm_case {
    int64_t N;
    int C, V, chunk_rows; /* chunk_rows 0: the context's default */
    float active_frac;    /* share of rows with a loss weight */
    int backward;
} lm_case;

typedef struct lm_outputs {
    double loss;
    int64_t count;
    float *nll, *dh, *dnw, *dW; /* host copies */
} lm_outputs;

static void free_outputs(lm_outputs *o) {
    free(o->nll);
    free(o->dh);
    free(o->dnw);
    free(o->dW);
}

/* One GPU call with freshly poisoned outputs and the accumulators reset to dnw0 / dW0. */
static lm_outputs run_gpu(lrsa_lm_head_loss_ctx *ctx, const lm_case *lc, const lrsa_bf16 *d_h,
                          const lrsa_bf16 *d_nw, const lrsa_bf16 *d_W, const int32_t *d_t,
                          const float *d_wt, const float *dnw0, const float *dW0) {
    const int64_t N = lc->N, C = lc->C, V = lc->V;
    double *d_loss = gc_poisoned(1, sizeof(double));
    float *d_nll = gc_poisoned(N, sizeof(float));
    lrsa_bf16 *d_dh = lc->backward ? gc_poisoned(N * C, sizeof(lrsa_bf16)) : NULL;
    float *d_dnw = lc->backward ? gc_upload_f32(dnw0, C) : NULL;
    float *d_dW = lc->backward ? gc_upload_f32(dW0, V * C) : NULL;
    lm_outputs o;
    memset(&o, 0, sizeof o);
    o.count = lrsa_lm_head_loss_cuda(ctx, d_loss, d_nll, d_dh, d_dnw, d_dW, d_h, d_nw, d_W, d_t,
                                     d_wt, N, 1e-5f);
    lrsa_dev_sync();
    lrsa_dev_download(&o.loss, d_loss, sizeof(double));
    o.nll = gc_download_f32(d_nll, N);
    if (lc->backward) {
        o.dh = gc_download_bf16(d_dh, N * C);
        o.dnw = gc_download_f32(d_dnw, C);
        o.dW = gc_download_f32(d_dW, V * C);
    }
    void *dev[] = {d_loss, d_nll, d_dh, d_dnw, d_dW};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) lrsa_dev_free(dev[i]);
    return o;
}

static void subtract(float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) a[i] -= b[i];
}

static void expect(int *failures, int ok, const char *label, const char *what) {
    printf("%-4s %s %s\n", ok ? "ok" : "FAIL", label, what);
    if (!ok) (*failures)++;
}

static void check_case(int *failures, lrsa_linear_cuda *gemm, const lm_case *lc, lrsa_rng *rng) {
    const int64_t N = lc->N, C = lc->C, V = lc->V;
    char label[160], l2[240];
    float *h = gc_random_bf16_values(N * C, 1.0f, rng);
    float *nw = gc_random_bf16_values(C, 0.2f, rng);
    for (int64_t j = 0; j < C; j++) nw[j] = lrsa_bf16_to_f32(lrsa_f32_to_bf16(1.0f + nw[j]));
    float *W = gc_random_bf16_values(V * C, 0.5f, rng); /* logits of a few units: a real softmax */
    int32_t *t = lrsa_malloc(sizeof(int32_t) * (size_t)N);
    float *wt = lrsa_malloc(sizeof(float) * (size_t)N);
    int64_t active = 0;
    for (int64_t i = 0; i < N; i++) {
        int on = lrsa_rng_uniform(rng) < lc->active_frac;
        wt[i] = (float)on;
        active += on;
        /* masked rows get out-of-range targets: they must never be read */
        t[i] = on ? (int32_t)lrsa_rng_below(rng, (uint64_t)V) : -1 - (int32_t)i;
    }
    for (int64_t i = 0; i < N; i++)
        if (wt[i] != 0.0f) wt[i] = 1.0f / (float)active;
    float *dnw0 = lrsa_malloc(sizeof(float) * (size_t)C), *dW0 = lrsa_malloc(sizeof(float) * V * C);
    tu_fill_normal(dnw0, C, 0.01f, rng);
    tu_fill_normal(dW0, V * C, 0.001f, rng);

    lrsa_bf16 *d_h = gc_upload_bf16(h, N * C), *d_nw = gc_upload_bf16(nw, C);
    lrsa_bf16 *d_W = gc_upload_bf16(W, V * C);
    int32_t *d_t = lrsa_dev_alloc(sizeof(int32_t) * (size_t)N);
    lrsa_dev_upload(d_t, t, sizeof(int32_t) * (size_t)N);
    float *d_wt = gc_upload_f32(wt, N);
    lrsa_lm_head_loss_ctx *ctx =
        lrsa_lm_head_loss_cuda_create(gemm, N, (int)C, (int)V, lc->chunk_rows);
    int chunk = lrsa_lm_head_loss_cuda_chunk_rows(ctx);
    snprintf(label, sizeof label, "N=%lld C=%lld V=%lld active=%lld chunk=%d %s", (long long)N,
             (long long)C, (long long)V, (long long)active, chunk,
             lc->backward ? "fwd+bwd" : "fwd");

    lm_outputs g = run_gpu(ctx, lc, d_h, d_nw, d_W, d_t, d_wt, dnw0, dW0);

    float *nll_ref = lrsa_malloc(sizeof(float) * (size_t)N);
    float *dh_ref = lc->backward ? lrsa_malloc(sizeof(float) * (size_t)(N * C)) : NULL;
    float *dnw_ref = lrsa_malloc(sizeof(float) * (size_t)C);
    float *dW_ref = lrsa_malloc(sizeof(float) * (size_t)(V * C));
    memcpy(dnw_ref, dnw0, sizeof(float) * (size_t)C);
    memcpy(dW_ref, dW0, sizeof(float) * (size_t)(V * C));
    /* the CPU reads targets only at rows with a weight, like the GPU */
    double loss_ref = lrsa_lm_head_loss_cpu(nll_ref, dh_ref, dnw_ref, dW_ref, h, nw, W, t, wt, N,
                                            (int)C, (int)V, 1e-5f);

    expect(failures, g.count == active, label, "active row count");
    double le = active ? fabs(g.loss - loss_ref) / fabs(loss_ref) : fabs(g.loss);
    snprintf(l2, sizeof l2, "loss %.6f vs CPU %.6f (rel err %.3g)", g.loss, loss_ref, le);
    expect(failures, le <= GC_TOL_BF16 && !isnan(g.loss), label, l2);
    snprintf(l2, sizeof l2, "%s nll", label);
    if (active) gc_expect_close(failures, l2, g.nll, nll_ref, N, GC_TOL_BF16);
    int masked_zero = 1;
    for (int64_t i = 0; i < N; i++) {
        if (wt[i] != 0.0f) continue;
        if (g.nll[i] != 0.0f) masked_zero = 0;
        for (int64_t j = 0; lc->backward && j < C; j++)
            if (g.dh[i * C + j] != 0.0f) masked_zero = 0;
    }
    expect(failures, masked_zero, label, "masked rows: nll and dh exactly 0");
    if (lc->backward) {
        if (active) {
            snprintf(l2, sizeof l2, "%s dh", label);
            gc_expect_close(failures, l2, g.dh, dh_ref, N * C, GC_TOL_BF16);
        }
        /* Compare what was added: most of dW's entries get a tiny update, so comparing totals
         * would let the random start values hide an inaccurate update. An overwrite instead of
         * an accumulation shows up as an added amount of minus the start values. */
        subtract(g.dnw, dnw0, C);
        subtract(dnw_ref, dnw0, C);
        subtract(g.dW, dW0, V * C);
        subtract(dW_ref, dW0, V * C);
        snprintf(l2, sizeof l2, "%s dnorm_w += (added amount)", label);
        gc_expect_close(failures, l2, g.dnw, dnw_ref, C, GC_TOL_BF16);
        snprintf(l2, sizeof l2, "%s dW += (added amount)", label);
        gc_expect_close(failures, l2, g.dW, dW_ref, V * C, GC_TOL_BF16);
    }

    /* Determinism: a second identical call gives the same bits. */
    lm_outputs g2 = run_gpu(ctx, lc, d_h, d_nw, d_W, d_t, d_wt, dnw0, dW0);
    if (lc->backward) { /* g's accumulators now hold the added amounts */
        subtract(g2.dnw, dnw0, C);
        subtract(g2.dW, dW0, V * C);
    }
    int same = memcmp(&g.loss, &g2.loss, sizeof g.loss) == 0 &&
               memcmp(g.nll, g2.nll, sizeof(float) * (size_t)N) == 0;
    if (lc->backward)
        same = same && memcmp(g.dh, g2.dh, sizeof(float) * (size_t)(N * C)) == 0 &&
               memcmp(g.dnw, g2.dnw, sizeof(float) * (size_t)C) == 0 &&
               memcmp(g.dW, g2.dW, sizeof(float) * (size_t)(V * C)) == 0;
    expect(failures, same, label, "second call bit-identical");

    free_outputs(&g);
    free_outputs(&g2);
    lrsa_lm_head_loss_cuda_destroy(ctx);
    void *dev[] = {d_h, d_nw, d_W, d_t, d_wt};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) lrsa_dev_free(dev[i]);
    void *host[] = {h, nw, W, t, wt, dnw0, dW0, nll_ref, dh_ref, dnw_ref, dW_ref};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
}

int main(void) {
    if (lrsa_cuda_device_count() == 0) {
        printf("skip: no CUDA device\n");
        return 77;
    }
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    printf("device: %s\n", desc);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 20261130);
    const lm_case cases[] = {
        {300, 64, 1000, 64, 0.6f, 1},  /* several chunks and a remainder */
        {160, 576, 49152, 0, 0.7f, 1}, /* SmolLM2-135M head, default chunk */
        {300, 64, 1000, 64, 0.6f, 0},  /* forward only */
        {50, 64, 1000, 0, 0.0f, 1},    /* every row masked */
        {17, 40, 333, 8, 1.0f, 1},     /* odd vocabulary, no masked row */
    };
    lrsa_linear_cuda *gemm = lrsa_linear_cuda_create(NULL, 0);
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&failures, gemm, &cases[i], &rng);
    lrsa_linear_cuda_destroy(gemm);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
