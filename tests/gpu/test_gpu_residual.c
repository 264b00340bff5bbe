/* The residual add on the GPU against the CPU op on bf16-valued inputs: the fp32 sum rounded to
 * bf16 must equal the CPU sum rounded the same way, bit for bit, also in place (out = a). */
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

int main(void) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    int failures = 0;
    const int64_t sizes[] = {1, 1000, 577 * 33};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        lrsa_rng rng;
        lrsa_rng_seed(&rng, 10 + s);
        float *a = gc_random_bf16_values(n, 1.0f, &rng), *b = gc_random_bf16_values(n, 3.0f, &rng);
        float *want = lrsa_malloc(sizeof(float) * (size_t)n);
        lrsa_residual_forward_cpu(want, a, b, n);
        for (int64_t i = 0; i < n; i++) want[i] = lrsa_bf16_to_f32(lrsa_f32_to_bf16(want[i]));
        lrsa_bf16 *da = gc_upload_bf16(a, n), *db = gc_upload_bf16(b, n);
        lrsa_bf16 *dout = gc_poisoned(n, sizeof(lrsa_bf16));
        lrsa_residual_forward_cuda(dout, da, db, n, 0);
        float *got = gc_download_bf16(dout, n);
        char label[96];
        snprintf(label, sizeof label, "residual add n=%lld", (long long)n);
        gc_expect_equal(&failures, label, got, want, sizeof(float) * (size_t)n);
        lrsa_residual_forward_cuda(da, da, db, n, 0); /* in place over the residual stream */
        float *inplace = gc_download_bf16(da, n);
        gc_expect_equal(&failures, "residual add in place (out = a)", inplace, want,
                        sizeof(float) * (size_t)n);
        lrsa_dev_free(da);
        lrsa_dev_free(db);
        lrsa_dev_free(dout);
        free(a);
        free(b);
        free(want);
        free(got);
        free(inplace);
    }
    return failures ? 1 : 0;
}
#endif
