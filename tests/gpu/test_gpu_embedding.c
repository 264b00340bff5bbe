/* Embedding on the GPU against the CPU reference: the forward gather is exact, the backward is
 * bitwise equal to the CPU's in-order accumulation (and therefore to itself on a second run),
 * with heavily repeated ids, a single repeated id, and a large vocabulary. */
#include <stdio.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "gpu_compare.h"
#include "kernels/embedding/embedding.h"

static void check_case(int *failures, int64_t N, int C, int vocab, int one_id, uint64_t seed) {
    char label[128];
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    int32_t *ids = lrsa_malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t i = 0; i < N; i++)
        ids[i] = one_id ? vocab - 1 : (int32_t)lrsa_rng_below(&rng, (uint64_t)vocab);
    float *table = gc_random_bf16_values((int64_t)vocab * C, 1.0f, &rng);
    float *dout = gc_random_bf16_values(N * C, 1.0f, &rng);
    float *dtable0 = lrsa_malloc(sizeof(float) * (size_t)vocab * (size_t)C);
    tu_fill_normal(dtable0, (int64_t)vocab * C, 0.5f, &rng); /* accumulation, not overwrite */

    int32_t *d_ids = lrsa_dev_alloc(sizeof(int32_t) * (size_t)N);
    lrsa_dev_upload(d_ids, ids, sizeof(int32_t) * (size_t)N);
    lrsa_bf16 *d_table = gc_upload_bf16(table, (int64_t)vocab * C);
    lrsa_bf16 *d_dout = gc_upload_bf16(dout, N * C);
    lrsa_bf16 *d_out = gc_poisoned(N * C, sizeof(lrsa_bf16));
    lrsa_embedding_forward_cuda(d_out, d_ids, d_table, N, C, 0);
    float *out = gc_download_bf16(d_out, N * C);
    float *want = lrsa_malloc(sizeof(float) * (size_t)(N * C));
    lrsa_embedding_forward_cpu(want, ids, table, N, C);
    snprintf(label, sizeof label, "embedding fwd N=%lld C=%d V=%d", (long long)N, C, vocab);
    gc_expect_equal(failures, label, out, want, sizeof(float) * (size_t)(N * C));

    size_t ws_bytes = lrsa_embedding_backward_workspace_cuda(N);
    void *ws = lrsa_dev_alloc(ws_bytes);
    size_t tbytes = sizeof(float) * (size_t)vocab * (size_t)C;
    float *d_dtable = gc_upload_f32(dtable0, (int64_t)vocab * C);
    lrsa_embedding_backward_cuda(d_dtable, d_dout, d_ids, N, C, vocab, ws, ws_bytes, 0);
    float *got1 = gc_download_f32(d_dtable, (int64_t)vocab * C);
    lrsa_dev_upload(d_dtable, dtable0, tbytes);
    lrsa_embedding_backward_cuda(d_dtable, d_dout, d_ids, N, C, vocab, ws, ws_bytes, 0);
    float *got2 = gc_download_f32(d_dtable, (int64_t)vocab * C);
    float *ref = lrsa_malloc(tbytes);
    memcpy(ref, dtable0, tbytes);
    lrsa_embedding_backward_cpu(ref, dout, ids, N, C);
    snprintf(label, sizeof label, "embedding bwd vs CPU N=%lld C=%d V=%d%s", (long long)N, C, vocab,
             one_id ? " one id" : "");
    gc_expect_equal(failures, label, got1, ref, tbytes);
    gc_expect_equal(failures, "embedding bwd run 1 vs run 2", got1, got2, tbytes);

    lrsa_dev_free(d_ids);
    lrsa_dev_free(d_table);
    lrsa_dev_free(d_dout);
    lrsa_dev_free(d_out);
    lrsa_dev_free(ws);
    lrsa_dev_free(d_dtable);
    free(ids);
    free(table);
    free(dout);
    free(dtable0);
    free(out);
    free(want);
    free(got1);
    free(got2);
    free(ref);
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
    check_case(&failures, 1000, 576, 37, 0, 1);    /* every id repeated ~27 times */
    check_case(&failures, 513, 577, 5, 1, 2);      /* one id for all tokens, odd C */
    check_case(&failures, 2048, 128, 49152, 0, 3); /* SmolLM2's vocabulary, sparse ids */
    check_case(&failures, 1, 64, 3, 0, 4);
    return failures ? 1 : 0;
}
#endif
