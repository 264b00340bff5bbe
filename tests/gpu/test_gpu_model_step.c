/* One training step (forward, LM-head loss, backward) of a tiny model through the CUDA op table
 * against the same step through the CPU table: the one model code (model/model_forward.c) on
 * two devices. Both start from the same weights (rounded to bf16, which the GPU stores); the GPU
 * keeps activations in bf16, so the loss must agree within 1e-2 and every parameter gradient
 * within 3e-2 (norm-relative, per tensor): a dozen bf16 roundings (2^-9 each) sit between the
 * weights and a gradient, and a wrong index or a missing term gives errors of order 1. The GPU
 * step must also repeat bit for bit, and plan all its memory before the step (the workspace is
 * reserved; a step that needed more would abort). Cases: dense and LRSA attention (keep = 1, so
 * both devices select the same rows whatever the bf16 rounding of k; the selection itself is
 * checked in test_gpu_lagkv), q/k/v biases, an untied LM head, per-layer recomputation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skipped: built without CUDA\n");
    return 77;
}
#else
#include "gpu_tiny_model.h"
#include "model/device_ops.h"
#include "test_util.h"

typedef struct {
    const char *label;
    int bias, tied, lrsa, recompute, T;
} step_case;

/* One GPU step: returns the loss; grads and nll downloaded to the host. */
static double gpu_step(lrsa_model *m, const lrsa_device_ops *ops, lrsa_workspace *ws,
                       float *grad_dev, const int32_t *ids, const float *w, int T,
                       const lrsa_attn_config *attn, int recompute, float *grads, float *nll) {
    size_t gbytes = sizeof(float) * (size_t)m->table.numel;
    ops->zero(ops->ctx, grad_dev, gbytes);
    double loss = lrsa_model_forward_backward(m, ws, ids, w, 1, T, attn, recompute, 1, nll);
    ops->download(ops->ctx, grads, grad_dev, gbytes);
    lrsa_device_ops_sync(ops);
    return loss;
}

static int run_case(const step_case *k, uint64_t seed) {
    lrsa_model m;
    gtm_create(&m, k->bias, k->tied, seed, 0.08f);
    const int T = k->T, V = m.cfg.vocab_size;
    const int64_t n = m.table.numel;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T);
    float *w = malloc(sizeof(float) * (size_t)T);
    lrsa_rng r;
    lrsa_rng_seed(&r, seed + 1);
    int n_target = 0;
    for (int t = 0; t < T; t++) {
        ids[t] = (int32_t)lrsa_rng_below(&r, (uint64_t)V);
        n_target += t > 0 && t % 5 != 0;
    }
    for (int t = 0; t < T; t++) w[t] = t > 0 && t % 5 != 0 ? 1.0f / (float)n_target : 0.0f;
    lrsa_attn_config attn = {k->lrsa ? LRSA_ATTN_LRSA : LRSA_ATTN_DENSE, {4, 16, 1.0f, 1.0f}, 0};

    /* CPU: the table's fp32 arenas */
    lrsa_workspace *cws = lrsa_workspace_new();
    lrsa_table_alloc(&m.table, LRSA_ROLE_GRAD);
    lrsa_table_zero(&m.table, LRSA_ROLE_GRAD);
    float *nll_c = malloc(sizeof(float) * (size_t)T), *nll_g = malloc(sizeof(float) * (size_t)T);
    double loss_c =
        lrsa_model_forward_backward(&m, cws, ids, w, 1, T, &attn, k->recompute, 1, nll_c);
    float *grad_c = malloc(sizeof(float) * (size_t)n);
    memcpy(grad_c, m.table.arena[LRSA_ROLE_GRAD], sizeof(float) * (size_t)n);

    /* CUDA: bf16 weights and fp32 gradients in device memory, everything planned first */
    lrsa_cuda_plan plan = {1, T, k->lrsa, attn.lagkv, 0, 0};
    lrsa_err e = {{0}};
    lrsa_device_ops *ops = lrsa_device_ops_cuda_new(&m.cfg, m.inv_freq, &plan, &e);
    if (!ops) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    uint16_t *pb = malloc(sizeof(uint16_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) pb[i] = lrsa_f32_to_bf16(m.table.arena[LRSA_ROLE_PARAM][i]);
    void *param_dev = ops->alloc(ops->ctx, sizeof(uint16_t) * (size_t)n);
    float *grad_dev = ops->alloc(ops->ctx, sizeof(float) * (size_t)n);
    ops->upload(ops->ctx, param_dev, pb, sizeof(uint16_t) * (size_t)n);
    lrsa_workspace *gws = lrsa_workspace_new_on(ops);
    lrsa_workspace_bind_params(gws, param_dev, grad_dev);
    lrsa_workspace_reserve(gws, &m, 1, T, &attn, k->recompute);
    float *grad_g = malloc(sizeof(float) * (size_t)n), *grad_g2 = malloc(sizeof(float) * (size_t)n);
    double loss_g = gpu_step(&m, ops, gws, grad_dev, ids, w, T, &attn, k->recompute, grad_g, nll_g);
    double loss_g2 =
        gpu_step(&m, ops, gws, grad_dev, ids, w, T, &attn, k->recompute, grad_g2, NULL);

    int bad = 0;
    double le = fabs(loss_g - loss_c) / fabs(loss_c);
    printf("%s: loss cpu %.6f gpu %.6f (rel err %.2e, tol 1e-2)\n", k->label, loss_c, loss_g, le);
    bad |= !(le <= 1e-2);
    double ne = tu_rel_err(nll_g, nll_c, T);
    printf("  nll per token rel err %.2e (tol 2e-2)\n", ne);
    bad |= !(ne <= 2e-2);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.table.n; i++) {
        const lrsa_param_desc *d = &m.table.desc[i];
        double ge = tu_rel_err(grad_g + d->offset, grad_c + d->offset, d->numel);
        if (!(ge <= worst)) worst = ge, worst_name = d->name;
        if (!(ge <= 3e-2)) {
            printf("  FAIL grad %-44s rel err %.2e\n", d->name, ge);
            bad = 1;
        }
    }
    printf("  worst gradient %s rel err %.2e (tol 3e-2)\n", worst_name, worst);
    int same = loss_g == loss_g2 && !memcmp(grad_g, grad_g2, sizeof(float) * (size_t)n);
    printf("  second GPU step %s\n", same ? "bitwise identical" : "DIFFERS");
    bad |= !same;
    printf("  %s\n", bad ? "FAIL" : "ok");

    ops->free(ops->ctx, param_dev);
    ops->free(ops->ctx, grad_dev);
    lrsa_workspace_free(gws);
    lrsa_device_ops_cuda_free(ops);
    lrsa_workspace_free(cws);
    lrsa_model_free(&m);
    free(ids), free(w), free(nll_c), free(nll_g), free(grad_c), free(grad_g), free(grad_g2);
    free(pb);
    return bad;
}

int main(void) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("skipped: %s\n", desc);
        return 77;
    }
    printf("%s\n", desc);
    const step_case cases[] = {
        {"dense, tied", 0, 1, 0, 0, 70},
        {"LRSA (S 4, L 16, keep 1), q/k/v biases, untied head", 1, 0, 1, 0, 90},
        {"dense, recompute, untied head", 0, 0, 0, 1, 45},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) bad |= run_case(&cases[i], 31 + i);
    return bad;
}
#endif
