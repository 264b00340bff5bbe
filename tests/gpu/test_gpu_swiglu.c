/* SwiGLU on the GPU against the CPU reference: forward and backward on bf16 inputs, outputs
 * poisoned first so an unwritten element fails. */
#include <stdio.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "gpu_compare.h"
#include "kernels/swiglu/swiglu.h"

static void check_case(int *failures, int64_t N, int I, uint64_t seed) {
    char label[128];
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    float *gu = gc_random_bf16_values(N * 2 * I, 2.0f, &rng);
    float *dout = gc_random_bf16_values(N * I, 1.0f, &rng);
    lrsa_bf16 *d_gu = gc_upload_bf16(gu, N * 2 * I), *d_dout = gc_upload_bf16(dout, N * I);
    lrsa_bf16 *d_out = gc_poisoned(N * I, sizeof(lrsa_bf16));
    lrsa_bf16 *d_dgu = gc_poisoned(N * 2 * I, sizeof(lrsa_bf16));
    lrsa_swiglu_forward_cuda(d_out, d_gu, N, I, 0);
    lrsa_swiglu_backward_cuda(d_dgu, d_dout, d_gu, N, I, 0);
    float *out = gc_download_bf16(d_out, N * I), *dgu = gc_download_bf16(d_dgu, N * 2 * I);
    float *want = lrsa_malloc(sizeof(float) * (size_t)(N * I));
    float *dwant = lrsa_malloc(sizeof(float) * (size_t)(N * 2 * I));
    lrsa_swiglu_forward_cpu(want, gu, N, I);
    lrsa_swiglu_backward_cpu(dwant, dout, gu, N, I);
    snprintf(label, sizeof label, "swiglu fwd N=%lld I=%d", (long long)N, I);
    gc_expect_close(failures, label, out, want, N * I, GC_TOL_BF16);
    snprintf(label, sizeof label, "swiglu bwd N=%lld I=%d", (long long)N, I);
    gc_expect_close(failures, label, dgu, dwant, N * 2 * I, GC_TOL_BF16);
    lrsa_dev_free(d_gu);
    lrsa_dev_free(d_dout);
    lrsa_dev_free(d_out);
    lrsa_dev_free(d_dgu);
    free(gu);
    free(dout);
    free(out);
    free(dgu);
    free(want);
    free(dwant);
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
    check_case(&failures, 257, 1536, 1); /* SmolLM2-135M's intermediate size */
    check_case(&failures, 31, 77, 2);    /* odd sizes */
    return failures ? 1 : 0;
}
#endif
