/* AdamW and the global gradient norm on the GPU against train/optim.c: three clipped steps over
 * a shard of a flat arena with two weight-decay ranges; parameters, moments and the bf16 copy
 * after each step; elements outside the shard untouched; the norm (double) and the clipping
 * factor, bitwise reproducible on a second run. */
#include <stdio.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "gpu_compare.h"
#include "train/optim.h"

int main(void) {
    char desc[256], label[128];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    printf("%s\n", desc);
    int failures = 0;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 7);
    const int64_t n = 1000003, lo = 1001, hi = n - 17, shard = hi - lo;
    const double max_norm = 1.0;

    /* Host optimizer built field by field (its init needs a model table; the step reads only
     * these fields). Decay ranges given out of order: the device copy sorts them. */
    lrsa_decay_range ranges[2] = {{600000, n - 100}, {5000, 300000}};
    lrsa_adamw cpu = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    cpu.lo = lo;
    cpu.hi = hi;
    cpu.m = lrsa_calloc((size_t)shard, sizeof(float));
    cpu.v = lrsa_calloc((size_t)shard, sizeof(float));
    cpu.decay = ranges;
    cpu.n_decay = 2;
    lrsa_adamw_cuda gpu;
    lrsa_adamw_cuda_init(&gpu, &cpu);

    float *param = lrsa_malloc(sizeof(float) * (size_t)n), *grad = lrsa_malloc(sizeof(float) * n);
    tu_fill_normal(param, n, 0.05f, &rng);
    float *d_param = gc_upload_f32(param, n), *d_grad = lrsa_dev_alloc(sizeof(float) * n);
    lrsa_bf16 *d_bf16 = gc_poisoned(n, sizeof(lrsa_bf16));
    size_t ws_bytes = lrsa_grad_norm_workspace_cuda();
    void *ws = lrsa_dev_alloc(ws_bytes);
    double *d_norm = gc_poisoned(2, sizeof(double));
    float *d_scale = gc_poisoned(1, sizeof(float));
    float *m = lrsa_malloc(sizeof(float) * (size_t)shard), *v = lrsa_malloc(sizeof(float) * shard);

    for (int step = 1; step <= 3; step++) {
        /* Step 1 needs clipping (norm >> 1), step 3 does not (norm < 1). */
        tu_fill_normal(grad, n, step == 3 ? 1e-4f : 0.01f * (float)step, &rng);
        lrsa_dev_upload(d_grad, grad, sizeof(float) * (size_t)n);
        double norm_cpu = lrsa_grad_norm(grad + lo, shard);
        double scale_cpu = lrsa_clip_scale(norm_cpu, max_norm);
        lrsa_grad_norm_clip_cuda(d_norm, d_scale, d_grad + lo, shard, max_norm, ws, ws_bytes, 0);
        lrsa_grad_norm_clip_cuda(d_norm + 1, NULL, d_grad + lo, shard, max_norm, ws, ws_bytes, 0);
        double norms[2];
        float scale_gpu;
        lrsa_dev_sync();
        lrsa_dev_download(norms, d_norm, sizeof norms);
        lrsa_dev_download(&scale_gpu, d_scale, sizeof scale_gpu);
        float nf[1] = {(float)norms[0]}, nw[1] = {(float)norm_cpu};
        snprintf(label, sizeof label, "grad norm step %d (%.4g)", step, norm_cpu);
        gc_expect_close(&failures, label, nf, nw, 1, GC_TOL_F32);
        gc_expect_equal(&failures, "grad norm run 1 vs run 2", &norms[0], &norms[1],
                        sizeof(double));
        float sf[1] = {scale_gpu}, sw[1] = {(float)scale_cpu};
        snprintf(label, sizeof label, "clip scale step %d (%.4g)", step, scale_cpu);
        gc_expect_close(&failures, label, sf, sw, 1, GC_TOL_F32);

        double lr = 1e-3 * step;
        lrsa_adamw_step(&cpu, param, grad, lr, scale_cpu);
        lrsa_adamw_step_cuda(&gpu, d_param, d_grad, d_bf16, lr, d_scale, 0);
        float *pg = gc_download_f32(d_param, n);
        lrsa_dev_download(m, gpu.m, sizeof(float) * (size_t)shard);
        lrsa_dev_download(v, gpu.v, sizeof(float) * (size_t)shard);
        snprintf(label, sizeof label, "adamw params step %d", step);
        gc_expect_close(&failures, label, pg + lo, param + lo, shard, GC_TOL_F32);
        snprintf(label, sizeof label, "adamw m step %d", step);
        gc_expect_close(&failures, label, m, cpu.m, shard, GC_TOL_F32);
        snprintf(label, sizeof label, "adamw v step %d", step);
        gc_expect_close(&failures, label, v, cpu.v, shard, GC_TOL_F32);
        gc_expect_equal(&failures, "adamw leaves params outside the shard", pg, param,
                        sizeof(float) * (size_t)lo);
        /* The bf16 copy is the rounding of the GPU's own fp32 parameters, inside the shard. */
        float *bg = gc_download_bf16(d_bf16, n);
        float *br = lrsa_malloc(sizeof(float) * (size_t)shard);
        for (int64_t i = 0; i < shard; i++) br[i] = lrsa_bf16_to_f32(lrsa_f32_to_bf16(pg[lo + i]));
        gc_expect_equal(&failures, "adamw bf16 copy-out", bg + lo, br, sizeof(float) * shard);
        free(pg);
        free(bg);
        free(br);
    }

    lrsa_adamw_cuda_free(&gpu);
    void *dev[] = {d_param, d_grad, d_bf16, ws, d_norm, d_scale};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) lrsa_dev_free(dev[i]);
    cpu.decay = NULL;
    lrsa_adamw_free(&cpu);
    free(param);
    free(grad);
    free(m);
    free(v);
    return failures ? 1 : 0;
}
#endif
