/* The LoRA linear op on the GPU against lrsa_lora_linear_*_cpu on identical (bf16-valued) inputs:
 * the SmolLM2-135M fused q/k/v shape with three groups and a small shape with a column range left
 * unadapted, with and without dropout; y and u (bf16), dx (bf16, poisoned first), dA and dB
 * (fp32, accumulated onto random values); the dropout mask bit for bit equal to the CPU's.
 * Skips (77) without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("skip: built without CUDA\n");
    return 77;
}
#else
#include "gpu_compare.h"
#include "kernels/lora/lora.h"

typedef struct lora_case {
    int64_t N;
    int in, out, rank, n_groups;
    int col[3], width[3];
    float dropout;
} lora_case;

static void check_case(int *failures, lrsa_linear_cuda *h, const lora_case *lc, lrsa_rng *rng) {
    const int64_t N = lc->N;
    const int in = lc->in, out = lc->out, r = lc->rank, G = lc->n_groups, ur = G * r;
    lrsa_lora_spec s;
    memset(&s, 0, sizeof s);
    s.n_groups = G;
    s.rank = r;
    s.scale = 2.0f;
    s.dropout = lc->dropout;
    int brows = 0;
    for (int g = 0; g < G; g++) {
        s.col[g] = lc->col[g];
        s.width[g] = lc->width[g];
        s.seed[g] = lrsa_lora_dropout_seed(7, (uint64_t)g);
        brows += lc->width[g];
    }
    float *x = gc_random_bf16_values(N * in, 1.0f, rng);
    float *w = gc_random_bf16_values((int64_t)out * in, 0.05f, rng);
    float *A = gc_random_bf16_values((int64_t)ur * in, 0.05f, rng);
    float *B = gc_random_bf16_values((int64_t)brows * r, 0.05f, rng);
    float *dy = gc_random_bf16_values(N * out, 1.0f, rng);
    float *dA0 = lrsa_malloc(sizeof(float) * (size_t)ur * in);
    float *dB0 = lrsa_malloc(sizeof(float) * (size_t)brows * r);
    tu_fill_normal(dA0, (int64_t)ur * in, 1.0f, rng);
    tu_fill_normal(dB0, (int64_t)brows * r, 1.0f, rng);

    lrsa_bf16 *d_x = gc_upload_bf16(x, N * in), *d_w = gc_upload_bf16(w, (int64_t)out * in);
    lrsa_bf16 *d_A = gc_upload_bf16(A, (int64_t)ur * in), *d_B = gc_upload_bf16(B, brows * r);
    lrsa_bf16 *d_dy = gc_upload_bf16(dy, N * out);
    lrsa_bf16 *d_y = gc_poisoned(N * out, sizeof(lrsa_bf16));
    lrsa_bf16 *d_u = gc_poisoned(N * ur, sizeof(lrsa_bf16));
    lrsa_bf16 *d_dx = gc_poisoned(N * in, sizeof(lrsa_bf16));
    lrsa_bf16 *d_t = gc_poisoned(N * ur, sizeof(lrsa_bf16));
    lrsa_bf16 *d_xd = gc_poisoned(N * in, sizeof(lrsa_bf16));
    float *d_dA = gc_upload_f32(dA0, (int64_t)ur * in), *d_dB = gc_upload_f32(dB0, brows * r);

    lrsa_lora_linear_forward_cuda(h, d_y, d_u, d_x, d_w, NULL, d_A, d_B, &s, N, in, out, d_xd);
    lrsa_lora_linear_backward_cuda(h, d_dx, d_dA, d_dB, d_dy, d_x, d_w, d_A, d_B, d_u, &s, N, in,
                                   out, d_t, d_xd);
    float *y = gc_download_bf16(d_y, N * out), *u = gc_download_bf16(d_u, N * ur);
    float *dx = gc_download_bf16(d_dx, N * in);
    float *dA = gc_download_f32(d_dA, (int64_t)ur * in), *dB = gc_download_f32(d_dB, brows * r);

    float *y_ref = lrsa_malloc(sizeof(float) * (size_t)(N * out));
    float *u_ref = lrsa_malloc(sizeof(float) * (size_t)(N * ur));
    float *dx_ref = lrsa_malloc(sizeof(float) * (size_t)(N * in));
    float *t_ref = lrsa_malloc(sizeof(float) * (size_t)(N * ur));
    float *xd_ref = lrsa_malloc(sizeof(float) * (size_t)(N * in));
    lrsa_lora_linear_forward_cpu(y_ref, u_ref, x, w, NULL, A, B, &s, N, in, out, xd_ref);
    lrsa_lora_linear_backward_cpu(dx_ref, dA0, dB0, dy, x, w, A, B, u_ref, &s, N, in, out, t_ref,
                                  xd_ref);
    char label[200];
    const char *tag = lc->dropout > 0 ? "dropout" : "no dropout";
#define CLOSE(name, got, want, n, tol)                                                             \
    do {                                                                                           \
        snprintf(label, sizeof label, "N=%lld in=%d out=%d %s: %s", (long long)N, in, out, tag,    \
                 name);                                                                            \
        gc_expect_close(failures, label, got, want, n, tol);                                       \
    } while (0)
    CLOSE("y (bf16)", y, y_ref, N * out, GC_TOL_BF16);
    CLOSE("u (bf16)", u, u_ref, N * ur, GC_TOL_BF16);
    CLOSE("dx (bf16)", dx, dx_ref, N * in, GC_TOL_BF16);
    /* t is rounded to bf16 on the GPU before the products that give dA: bf16 tolerance */
    CLOSE("dA += (fp32)", dA, dA0, (int64_t)ur * in, GC_TOL_BF16);
    CLOSE("dB += (fp32)", dB, dB0, (int64_t)brows * r, GC_TOL_BF16);
#undef CLOSE
    if (lc->dropout > 0) { /* the mask: exactly the CPU's zeros */
        for (int64_t i = 0; i < N * in; i++) x[i] = 1.0f;
        lrsa_bf16 *d_ones = gc_upload_bf16(x, N * in);
        lrsa_lora_dropout_cuda(d_ones, d_ones, N * in, lc->dropout, s.seed[1], NULL);
        float *gpu_mask = gc_download_bf16(d_ones, N * in);
        lrsa_lora_dropout_cpu(xd_ref, x, N, in, lc->dropout, s.seed[1]);
        int64_t differ = 0;
        for (int64_t i = 0; i < N * in; i++) differ += (gpu_mask[i] == 0.0f) != (xd_ref[i] == 0.0f);
        printf("%-4s dropout mask of %lld elements: %lld differ from the CPU's\n",
               differ ? "FAIL" : "ok", (long long)(N * in), (long long)differ);
        if (differ) (*failures)++;
        lrsa_dev_free(d_ones);
        free(gpu_mask);
    }
    void *dev[] = {d_x, d_w, d_A, d_B, d_dy, d_y, d_u, d_dx, d_t, d_xd, d_dA, d_dB};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) lrsa_dev_free(dev[i]);
    void *host[] = {x,  w,  A,  B,     dy,    dA0,    dB0,   y,     u,
                    dx, dA, dB, y_ref, u_ref, dx_ref, t_ref, xd_ref};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
}

int main(void) {
    if (lrsa_cuda_device_count() == 0) {
        printf("skip: no CUDA device\n");
        return 77;
    }
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    printf("device: %s\n", desc);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 20261206);
    /* SmolLM2-135M q/k/v (576 -> 576 + 192 + 192, rank 8), and a small fused output whose middle
     * columns have no adapter (rank 4, two groups) */
    const lora_case cases[] = {
        {257, 576, 960, 8, 3, {0, 576, 768}, {576, 192, 192}, 0.0f},
        {257, 576, 960, 8, 3, {0, 576, 768}, {576, 192, 192}, 0.1f},
        {33, 64, 96, 4, 2, {0, 64}, {32, 32}, 0.0f},
        {33, 64, 96, 4, 2, {0, 64}, {32, 32}, 0.3f},
    };
    lrsa_linear_cuda *h = lrsa_linear_cuda_create(NULL, 0);
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&failures, h, &cases[i], &rng);
    lrsa_linear_cuda_destroy(h);
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
#endif
