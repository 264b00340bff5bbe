/* The cuBLASLt linear op against lrsa_linear_*_cpu on identical (bf16-valued) inputs: forward
 * with and without the bias epilogue, dx (overwrite, poisoned first), dW and db (accumulated onto
 * random values, so an overwrite would fail), shapes whose rows are only 8-byte aligned, the plan
 * cache (a repeated shape builds no new plan) and bitwise repeatability. Skips (77) without a
 * GPU. */
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
#include "kernels/linear/linear.h"

typedef struct linear_case {
    int64_t N;
    int in, out, bias;
} linear_case;

/* One shape: forward, backward, then the same calls again (cache and repeatability). */
static void check_case(int *failures, lrsa_linear_cuda *h, const linear_case *lc, lrsa_rng *rng) {
    const int64_t N = lc->N;
    const int in = lc->in, out = lc->out;
    char label[160];
    float *x = gc_random_bf16_values(N * in, 1.0f, rng);
    float *w = gc_random_bf16_values((int64_t)out * in, 0.05f, rng);
    float *b = lc->bias ? gc_random_bf16_values(out, 0.5f, rng) : NULL;
    float *dy = gc_random_bf16_values(N * out, 1.0f, rng);
    float *dw0 = lrsa_malloc(sizeof(float) * (size_t)out * in);
    float *db0 = lrsa_malloc(sizeof(float) * (size_t)out);
    tu_fill_normal(dw0, (int64_t)out * in, 5.0f, rng); /* same scale as the update */
    tu_fill_normal(db0, out, 5.0f, rng);

    lrsa_bf16 *d_x = gc_upload_bf16(x, N * in), *d_w = gc_upload_bf16(w, (int64_t)out * in);
    lrsa_bf16 *d_b = b ? gc_upload_bf16(b, out) : NULL, *d_dy = gc_upload_bf16(dy, N * out);
    lrsa_bf16 *d_y = gc_poisoned(N * out, sizeof(lrsa_bf16));
    lrsa_bf16 *d_dx = gc_poisoned(N * in, sizeof(lrsa_bf16));
    float *d_dw = gc_upload_f32(dw0, (int64_t)out * in), *d_db = gc_upload_f32(db0, out);

    lrsa_linear_forward_cuda(h, d_y, d_x, d_w, d_b, N, in, out);
    lrsa_linear_backward_cuda(h, d_dx, d_dw, d_db, d_dy, d_x, d_w, N, in, out);
    float *y = gc_download_bf16(d_y, N * out), *dx = gc_download_bf16(d_dx, N * in);
    float *dw = gc_download_f32(d_dw, (int64_t)out * in), *db = gc_download_f32(d_db, out);

    float *y_ref = lrsa_malloc(sizeof(float) * (size_t)(N * out));
    float *dx_ref = lrsa_malloc(sizeof(float) * (size_t)(N * in));
    float *dw_ref = lrsa_malloc(sizeof(float) * (size_t)out * in);
    float *db_ref = lrsa_malloc(sizeof(float) * (size_t)out);
    memcpy(dw_ref, dw0, sizeof(float) * (size_t)out * in);
    memcpy(db_ref, db0, sizeof(float) * (size_t)out);
    lrsa_linear_forward_cpu(y_ref, x, w, b, N, in, out);
    lrsa_linear_backward_cpu(dx_ref, dw_ref, db_ref, dy, x, w, N, in, out);

    snprintf(label, sizeof label, "N=%lld in=%d out=%d bias=%d", (long long)N, in, out, lc->bias);
    char l2[200];
    snprintf(l2, sizeof l2, "%s y (bf16)", label);
    gc_expect_close(failures, l2, y, y_ref, N * out, GC_TOL_BF16);
    snprintf(l2, sizeof l2, "%s dx (bf16)", label);
    gc_expect_close(failures, l2, dx, dx_ref, N * in, GC_TOL_BF16);
    /* bf16 x bf16 products are exact in fp32: only the summation order differs */
    snprintf(l2, sizeof l2, "%s dW += (fp32)", label);
    gc_expect_close(failures, l2, dw, dw_ref, (int64_t)out * in, GC_TOL_F32);
    snprintf(l2, sizeof l2, "%s db += (fp32)", label);
    gc_expect_close(failures, l2, db, db_ref, out, GC_TOL_F32);

    /* Same shape again: no new plan, and the forward is bit-identical. */
    int plans = lrsa_linear_cuda_cached_plans(h);
    lrsa_dev_fill_bytes(d_y, 0xFF, sizeof(lrsa_bf16) * (size_t)(N * out));
    lrsa_linear_forward_cuda(h, d_y, d_x, d_w, d_b, N, in, out);
    lrsa_linear_backward_cuda(h, d_dx, NULL, NULL, d_dy, d_x, d_w, N, in, out);
    float *y2 = gc_download_bf16(d_y, N * out);
    snprintf(l2, sizeof l2, "%s repeat forward", label);
    gc_expect_equal(failures, l2, y2, y, sizeof(float) * (size_t)(N * out));
    int ok = lrsa_linear_cuda_cached_plans(h) == plans;
    printf("%-4s %s plan cache: %d plans, none added by the repeat\n", ok ? "ok" : "FAIL", label,
           plans);
    if (!ok) (*failures)++;

    void *dev[] = {d_x, d_w, d_b, d_dy, d_y, d_dx, d_dw, d_db};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) lrsa_dev_free(dev[i]);
    void *host[] = {x, w, b, dy, dw0, db0, y, dx, dw, db, y_ref, dx_ref, dw_ref, db_ref, y2};
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
    /* SmolLM2-135M projections (C 576, kv 192, MLP 1536), odd row counts, 8-byte aligned rows
     * (in 36, out 52), and a tiny shape. */
    const linear_case cases[] = {
        {256, 576, 576, 0}, {200, 576, 192, 1}, {129, 576, 1536, 1}, {129, 1536, 576, 0},
        {33, 36, 52, 1},    {5, 8, 16, 1},      {1, 64, 64, 0},
    };
    lrsa_linear_cuda *h = lrsa_linear_cuda_create(NULL, 0);
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&failures, h, &cases[i], &rng);
    lrsa_linear_cuda_destroy(h);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
