/* The device buffer helpers: bf16 <-> fp32 conversion kernels against autograd/tensor.h's host
 * conversions (round to nearest even), bit for bit, over random values, exact ties, subnormals,
 * infinities, overflow to infinity and NaN (which must stay NaN); upload/download round trips;
 * a length that is not a multiple of the block. */
#include <stdio.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "gpu_compare.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int main(void) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    printf("%s (%d SMs)\n", desc, lrsa_dev_sm_count());
    int failures = 0;
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 11);
    const int64_t n = 1000037;
    float *x = lrsa_malloc(sizeof(float) * (size_t)n);
    tu_fill_normal(x, n, 3.0f, &rng);
    /* Edge cases at the front: ties to even (both directions), subnormals, infinities, values
     * that round up to infinity, NaN, signed zero. */
    const uint32_t edges[] = {0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x00000001u,
                              0x80012345u, 0x7f800000u, 0xff800000u, 0x7f7fffffu,
                              0x7fc00000u, 0xffa00001u, 0x80000000u, 0x00000000u};
    const int n_edges = (int)(sizeof edges / sizeof edges[0]);
    for (int i = 0; i < n_edges; i++) x[i] = from_bits(edges[i]);
    for (int64_t i = n_edges; i < n; i += 97) x[i] = from_bits(lrsa_rng_u64(&rng) & 0xffffffffu);

    float *d_x = gc_upload_f32(x, n);
    float *back = gc_download_f32(d_x, n);
    gc_expect_equal(&failures, "fp32 upload/download round trip", back, x, sizeof(float) * n);

    lrsa_bf16 *d_h = gc_poisoned(n, sizeof(lrsa_bf16));
    lrsa_bf16_from_f32_cuda(d_h, d_x, n, 0);
    lrsa_bf16 *h = lrsa_malloc(sizeof(lrsa_bf16) * (size_t)n);
    lrsa_dev_sync();
    lrsa_dev_download(h, d_h, sizeof(lrsa_bf16) * (size_t)n);
    int64_t mismatched = 0;
    for (int64_t i = 0; i < n; i++) {
        lrsa_bf16 want = lrsa_f32_to_bf16(x[i]);
        int ok = isnan(x[i]) ? isnan(lrsa_bf16_to_f32(h[i])) : h[i] == want;
        if (!ok && mismatched++ < 5)
            printf("  x bits %08x: device %04x host %04x\n",
                   (unsigned)(*(const uint32_t *)(const void *)&x[i]), h[i], want);
    }
    printf("%-4s bf16_from_f32 matches the host rounding (%lld mismatches)\n",
           mismatched ? "FAIL" : "ok", (long long)mismatched);
    if (mismatched) failures++;

    float *d_f = gc_poisoned(n, sizeof(float));
    lrsa_f32_from_bf16_cuda(d_f, d_h, n, 0);
    float *f = gc_download_f32(d_f, n);
    float *fw = lrsa_malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) fw[i] = lrsa_bf16_to_f32(h[i]);
    gc_expect_equal(&failures, "f32_from_bf16 exact", f, fw, sizeof(float) * (size_t)n);

    lrsa_dev_free(d_x);
    lrsa_dev_free(d_h);
    lrsa_dev_free(d_f);
    free(x);
    free(back);
    free(h);
    free(f);
    free(fw);
    return failures ? 1 : 0;
}
#endif
