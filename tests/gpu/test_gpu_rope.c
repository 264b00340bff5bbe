/* RoPE on the GPU against the CPU reference: rotate-half on a fused q|k|v row (q and k heads
 * rotated, v untouched), forward and backward, with the cos/sin table built from the model's
 * inverse frequencies (default and llama3 scaling), head dims 64 and 128. */
#include <stdio.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "gpu_compare.h"
#include "kernels/rope/rope.h"

static void check_case(int *failures, int64_t N, int Hq, int Hkv, int D, const lrsa_rope_config *rc,
                       uint64_t seed) {
    char label[160], tag[64];
    snprintf(tag, sizeof tag, "N=%lld Hq=%d Hkv=%d D=%d type=%d", (long long)N, Hq, Hkv, D,
             (int)rc->type);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    const int max_pos = 8192, n_heads = Hq + Hkv;
    const int64_t stride = (int64_t)(Hq + 2 * Hkv) * D, n = N * stride;
    int32_t *pos = lrsa_malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)lrsa_rng_below(&rng, max_pos);
    pos[0] = max_pos - 1; /* the largest angle the table holds */
    float *inv_freq = lrsa_malloc(sizeof(float) * (size_t)(D / 2));
    lrsa_rope_inv_freq(inv_freq, D, rc);
    float *table = lrsa_malloc(sizeof(float) * (size_t)max_pos * (size_t)D);
    lrsa_rope_cos_sin_table(table, inv_freq, max_pos, D);
    float *x = gc_random_bf16_values(n, 1.0f, &rng);

    int32_t *d_pos = lrsa_dev_alloc(sizeof(int32_t) * (size_t)N);
    lrsa_dev_upload(d_pos, pos, sizeof(int32_t) * (size_t)N);
    float *d_table = gc_upload_f32(table, (int64_t)max_pos * D);
    lrsa_bf16 *d_x = gc_upload_bf16(x, n);

    float *want = lrsa_malloc(sizeof(float) * (size_t)n);
    memcpy(want, x, sizeof(float) * (size_t)n);
    lrsa_rope_forward_cpu(want, pos, inv_freq, N, n_heads, D, stride);
    lrsa_rope_forward_cuda(d_x, d_pos, d_table, N, n_heads, D, stride, 0);
    float *got = gc_download_bf16(d_x, n);
    snprintf(label, sizeof label, "rope fwd %s", tag);
    gc_expect_close(failures, label, got, want, n, GC_TOL_BF16);
    /* v (after the rotated heads) must be left exactly as it was. */
    int v_same = 1;
    for (int64_t i = 0; i < N && v_same; i++) {
        int64_t off = i * stride + (int64_t)n_heads * D;
        v_same = !memcmp(got + off, x + off, sizeof(float) * (size_t)(Hkv * D));
    }
    printf("%-4s rope fwd leaves v untouched\n", v_same ? "ok" : "FAIL");
    if (!v_same) (*failures)++;

    /* Backward: a fresh gradient, rotated back. */
    float *dy = gc_random_bf16_values(n, 1.0f, &rng);
    lrsa_dev_free(d_x);
    d_x = gc_upload_bf16(dy, n);
    memcpy(want, dy, sizeof(float) * (size_t)n);
    lrsa_rope_backward_cpu(want, pos, inv_freq, N, n_heads, D, stride);
    lrsa_rope_backward_cuda(d_x, d_pos, d_table, N, n_heads, D, stride, 0);
    float *dgot = gc_download_bf16(d_x, n);
    snprintf(label, sizeof label, "rope bwd %s", tag);
    gc_expect_close(failures, label, dgot, want, n, GC_TOL_BF16);

    lrsa_dev_free(d_pos);
    lrsa_dev_free(d_table);
    lrsa_dev_free(d_x);
    void *host[] = {pos, inv_freq, table, x, want, got, dy, dgot};
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
    lrsa_rope_config plain = {.theta = 100000.0f, .type = LRSA_ROPE_DEFAULT};
    lrsa_rope_config llama3 = {.theta = 500000.0f,
                               .type = LRSA_ROPE_LLAMA3,
                               .factor = 32.0f,
                               .low_freq_factor = 1.0f,
                               .high_freq_factor = 4.0f,
                               .original_max_position_embeddings = 8192};
    check_case(&failures, 333, 9, 3, 64, &plain, 1); /* SmolLM2-135M's heads */
    check_case(&failures, 129, 32, 8, 128, &llama3, 2);
    return failures ? 1 : 0;
}
#endif
