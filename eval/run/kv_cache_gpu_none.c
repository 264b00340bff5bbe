/* kv_cache_gpu.h in a build without CUDA: creating the cache fails with the reason (the
 * device-op table's message); the rest is never reached. Weak, so the emulated-CUDA tests link
 * kv_cache_gpu.cu's definitions instead. */
#include "eval/run/kv_cache_gpu.h"

#ifndef LRSA_HAVE_CUDA
#include "model/device_ops.h"

__attribute__((weak)) lrsa_kv_cache_gpu *
lrsa_kv_cache_gpu_new(const lrsa_model *m, const lrsa_lagkv_params *lagkv, int64_t max_tokens,
                      int64_t max_chunk, int64_t max_frozen, lrsa_err *e) {
    lrsa_cuda_plan plan = {1, 1, 0, {0, 1, 1.0f, 1.0f}, 0, 0};
    lrsa_device_ops *ops = lrsa_device_ops_cuda_new(&m->cfg, m->inv_freq, &plan, e);
    LRSA_CHECK(ops == NULL, "(a CUDA op table in a build without kv_cache_gpu.cu)");
    return NULL;
}
__attribute__((weak)) void lrsa_kv_cache_gpu_free(lrsa_kv_cache_gpu *c) {
    (void)c;
}
__attribute__((weak)) void lrsa_kv_cache_gpu_reset(lrsa_kv_cache_gpu *c) {
    (void)c;
}
__attribute__((weak)) void lrsa_kv_cache_gpu_freeze(lrsa_kv_cache_gpu *c) {
    (void)c;
}
__attribute__((weak)) void lrsa_kv_cache_gpu_save(lrsa_kv_cache_gpu *c) {
    (void)c;
}
__attribute__((weak)) void lrsa_kv_cache_gpu_restore(lrsa_kv_cache_gpu *c) {
    (void)c;
}
__attribute__((weak)) void lrsa_kv_cache_gpu_forward(lrsa_kv_cache_gpu *c, const int32_t *ids,
                                                     int64_t N, float *logits, int all_logits) {
    (void)c;
}
__attribute__((weak)) int lrsa_kv_cache_gpu_prefill(lrsa_kv_cache_gpu *c, const int32_t *ids,
                                                    int64_t n, lrsa_prefill_mode mode,
                                                    float *logits, int all_logits, lrsa_err *e) {
    return lrsa_errorf(e, "built without CUDA");
}
__attribute__((weak)) int64_t lrsa_kv_cache_gpu_seen(const lrsa_kv_cache_gpu *c) {
    return 0;
}
__attribute__((weak)) int64_t lrsa_kv_cache_gpu_head(const lrsa_kv_cache_gpu *c, int layer, int g,
                                                     int32_t *pos, int64_t *base) {
    return 0;
}
__attribute__((weak)) size_t lrsa_kv_cache_gpu_bytes(const lrsa_kv_cache_gpu *c) {
    return 0;
}
#else
typedef int lrsa_kv_cache_gpu_none_unused; /* ISO C forbids an empty translation unit */
#endif
