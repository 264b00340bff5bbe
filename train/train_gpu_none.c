/* train_gpu.h in a build without CUDA: creating the GPU state fails with the reason (the
 * device-op table's message); the rest is never reached. Weak, so the emulated-CUDA tests link
 * train_gpu.cu's definitions instead. */
#include "train/train_gpu.h"

#ifndef LRSA_HAVE_CUDA
#include "model/device_ops.h"

__attribute__((weak)) lrsa_train_gpu *lrsa_train_gpu_new(lrsa_model *m, const lrsa_adamw *opt,
                                                         const lrsa_attn_config *attn, int max_T,
                                                         int recompute, const lrsa_train_gpu_dp *dp,
                                                         lrsa_err *e) {
    lrsa_cuda_plan plan = {1, max_T, 0, attn->lagkv, 0, 0};
    lrsa_device_ops *ops = lrsa_device_ops_cuda_new(&m->cfg, m->inv_freq, &plan, e);
    LRSA_CHECK(ops == NULL, "(a CUDA op table in a build without train_gpu.cu)");
    return NULL;
}
__attribute__((weak)) void lrsa_train_gpu_free(lrsa_train_gpu *g) {
    (void)g;
}
__attribute__((weak)) lrsa_workspace *lrsa_train_gpu_workspace(lrsa_train_gpu *g) {
    return NULL;
}
__attribute__((weak)) void lrsa_train_gpu_zero_grad(lrsa_train_gpu *g) {
    (void)g;
}
__attribute__((weak)) void lrsa_train_gpu_set_graphs(lrsa_train_gpu *g, int on) {
    (void)g;
}
__attribute__((weak)) void lrsa_train_gpu_sample(lrsa_train_gpu *g, lrsa_model *m,
                                                 const int32_t *ids, const float *loss_weight,
                                                 int T, const lrsa_attn_config *attn,
                                                 int recompute) {
    (void)g;
}
__attribute__((weak)) lrsa_train_gpu_graph_stats lrsa_train_gpu_graphs(const lrsa_train_gpu *g) {
    return (lrsa_train_gpu_graph_stats){0, 0, 0};
}
__attribute__((weak)) void lrsa_train_gpu_arm(lrsa_train_gpu *g) {
    (void)g;
}
__attribute__((weak)) int lrsa_train_gpu_reduce(lrsa_train_gpu *g, lrsa_err *e) {
    return 0;
}
__attribute__((weak)) void lrsa_train_gpu_poison_grad(lrsa_train_gpu *g) {
    (void)g;
}
__attribute__((weak)) int lrsa_train_gpu_grad_norm(lrsa_train_gpu *g, double max_norm, double *norm,
                                                   double *loss, lrsa_err *e) {
    return 0;
}
__attribute__((weak)) int lrsa_train_gpu_adamw(lrsa_train_gpu *g, double lr, lrsa_err *e) {
    return 0;
}
__attribute__((weak)) int lrsa_train_gpu_download(lrsa_train_gpu *g, lrsa_model *m, lrsa_adamw *opt,
                                                  int root, lrsa_err *e) {
    return 0;
}
#else
typedef int lrsa_train_gpu_none_unused; /* ISO C forbids an empty translation unit */
#endif
