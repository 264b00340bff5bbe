/* RMSNorm fused with the residual add on the GPU against the CPU reference (residual add, then
 * the norm, on the same bf16-valued inputs): h, out and the saved fp32 rstd; the backward's dx
 * (overwritten, with and without dresidual, in place over dresidual) and dw (accumulated onto an
 * existing gradient, reproducible to the bit on a second run). C = 16384 needs opt-in shared
 * memory in the backward. */
#include <stdio.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "gpu_compare.h"
#include "kernels/residual/residual.h"
#include "kernels/rmsnorm/rmsnorm.h"

static void check_case(int *failures, int64_t N, int C, int fused, uint64_t seed) {
    char label[160], tag[64];
    snprintf(tag, sizeof tag, "N=%lld C=%d%s", (long long)N, C, fused ? " +residual" : "");
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    const float eps = 1e-5f;
    int64_t n = N * C;
    float *a = gc_random_bf16_values(n, 1.0f, &rng), *b = gc_random_bf16_values(n, 0.5f, &rng);
    float *w = gc_random_bf16_values(C, 1.0f, &rng);
    float *dout = gc_random_bf16_values(n, 1.0f, &rng);
    float *dres = gc_random_bf16_values(n, 1.0f, &rng);
    float *dw0 = lrsa_malloc(sizeof(float) * (size_t)C);
    tu_fill_normal(dw0, C, 1.0f, &rng);

    /* CPU: h = a + b stored as bf16 (the GPU's storage), then the norm of the stored h. */
    float *h = lrsa_malloc(sizeof(float) * (size_t)n);
    if (fused) {
        lrsa_residual_forward_cpu(h, a, b, n);
        for (int64_t i = 0; i < n; i++) h[i] = lrsa_bf16_to_f32(lrsa_f32_to_bf16(h[i]));
    } else {
        memcpy(h, a, sizeof(float) * (size_t)n);
    }
    float *want = lrsa_malloc(sizeof(float) * (size_t)n), *rwant = lrsa_malloc(sizeof(float) * N);
    lrsa_rmsnorm_forward_cpu(want, rwant, h, w, N, C, eps);

    lrsa_bf16 *d_a = gc_upload_bf16(a, n), *d_b = gc_upload_bf16(b, n), *d_w = gc_upload_bf16(w, C);
    lrsa_bf16 *d_out = gc_poisoned(n, sizeof(lrsa_bf16));
    lrsa_bf16 *d_h = fused ? gc_poisoned(n, sizeof(lrsa_bf16)) : NULL;
    float *d_rstd = gc_poisoned(N, sizeof(float));
    lrsa_rmsnorm_forward_cuda(d_out, d_rstd, d_h, d_a, fused ? d_b : NULL, d_w, N, C, eps, 0);
    float *out = gc_download_bf16(d_out, n), *rstd = gc_download_f32(d_rstd, N);
    snprintf(label, sizeof label, "rmsnorm fwd out %s", tag);
    gc_expect_close(failures, label, out, want, n, GC_TOL_BF16);
    snprintf(label, sizeof label, "rmsnorm fwd rstd (fp32) %s", tag);
    gc_expect_close(failures, label, rstd, rwant, N, GC_TOL_F32);
    if (fused) {
        float *hg = gc_download_bf16(d_h, n);
        snprintf(label, sizeof label, "rmsnorm fwd h = a + b (bf16) %s", tag);
        gc_expect_equal(failures, label, hg, h, sizeof(float) * (size_t)n);
        free(hg);
    }
    /* In place over the residual stream: h_out aliasing a must give the same out. */
    if (fused) {
        lrsa_bf16 *d_out2 = gc_poisoned(n, sizeof(lrsa_bf16));
        lrsa_rmsnorm_forward_cuda(d_out2, NULL, d_a, d_a, d_b, d_w, N, C, eps, 0);
        float *out2 = gc_download_bf16(d_out2, n), *a2 = gc_download_bf16(d_a, n);
        snprintf(label, sizeof label, "rmsnorm fwd in place (h_out = a) %s", tag);
        gc_expect_equal(failures, label, out2, out, sizeof(float) * (size_t)n);
        gc_expect_equal(failures, "rmsnorm fwd in place: a now holds h", a2, h,
                        sizeof(float) * (size_t)n);
        lrsa_dev_free(d_out2);
        free(out2);
        free(a2);
    }

    /* Backward against the CPU with the CPU's rstd (the GPU's is checked above). */
    float *dxw = lrsa_malloc(sizeof(float) * (size_t)n), *dww = lrsa_malloc(sizeof(float) * C);
    memcpy(dww, dw0, sizeof(float) * (size_t)C);
    lrsa_rmsnorm_backward_cpu(dxw, dww, dout, dres, h, w, rwant, N, C);
    lrsa_bf16 *d_x = gc_upload_bf16(h, n), *d_dout = gc_upload_bf16(dout, n);
    lrsa_bf16 *d_dres = gc_upload_bf16(dres, n), *d_dx = gc_poisoned(n, sizeof(lrsa_bf16));
    float *d_r = gc_upload_f32(rwant, N), *d_dw = gc_upload_f32(dw0, C);
    size_t ws_bytes = lrsa_rmsnorm_backward_workspace_cuda(C);
    void *ws = lrsa_dev_alloc(ws_bytes);
    lrsa_rmsnorm_backward_cuda(d_dx, d_dw, d_dout, d_dres, d_x, d_w, d_r, N, C, ws, ws_bytes, 0);
    float *dx = gc_download_bf16(d_dx, n), *dw = gc_download_f32(d_dw, C);
    snprintf(label, sizeof label, "rmsnorm bwd dx (dresidual) %s", tag);
    gc_expect_close(failures, label, dx, dxw, n, GC_TOL_BF16);
    snprintf(label, sizeof label, "rmsnorm bwd dw += (fp32) %s", tag);
    gc_expect_close(failures, label, dw, dww, C, GC_TOL_F32);

    /* Again in place over dresidual (dx = dresidual), onto the same starting dw: same bits. */
    lrsa_dev_upload(d_dw, dw0, sizeof(float) * (size_t)C);
    lrsa_rmsnorm_backward_cuda(d_dres, d_dw, d_dout, d_dres, d_x, d_w, d_r, N, C, ws, ws_bytes, 0);
    float *dx2 = gc_download_bf16(d_dres, n), *dw2 = gc_download_f32(d_dw, C);
    gc_expect_equal(failures, "rmsnorm bwd in place dx = dresidual", dx2, dx,
                    sizeof(float) * (size_t)n);
    gc_expect_equal(failures, "rmsnorm bwd dw run 1 vs run 2", dw2, dw, sizeof(float) * C);

    /* Without dresidual and without dw. */
    lrsa_rmsnorm_backward_cpu(dxw, NULL, dout, NULL, h, w, rwant, N, C);
    lrsa_dev_fill_bytes(d_dx, 0xFF, sizeof(lrsa_bf16) * (size_t)n);
    lrsa_rmsnorm_backward_cuda(d_dx, NULL, d_dout, NULL, d_x, d_w, d_r, N, C, NULL, 0, 0);
    float *dx3 = gc_download_bf16(d_dx, n);
    snprintf(label, sizeof label, "rmsnorm bwd dx (no dresidual) %s", tag);
    gc_expect_close(failures, label, dx3, dxw, n, GC_TOL_BF16);

    void *dev[] = {d_a, d_b, d_w, d_out, d_h, d_rstd, d_x, d_dout, d_dres, d_dx, d_r, d_dw, ws};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) lrsa_dev_free(dev[i]);
    void *host[] = {a,   b,    w,   dout, dres, dw0, h,   want, rwant,
                    out, rstd, dxw, dww,  dx,   dw,  dx2, dw2,  dx3};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
}

int main(void) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    printf("%s\n", desc);
    int failures = 0;
    check_case(&failures, 1500, 576, 1, 1); /* SmolLM2-135M hidden size, more rows than grid */
    check_case(&failures, 37, 2048, 0, 2);  /* plain norm */
    check_case(&failures, 5, 999, 1, 3);    /* odd C, fewer rows than the backward grid */
    check_case(&failures, 9, 16384, 1, 4);  /* dw row in opt-in shared memory (64 KiB) */
    return failures ? 1 : 0;
}
#endif
