/* cuDNN's fused attention (attention.impl: cudnn, kernels/attention/attention_cudnn.c) against the
 * CPU reference and our CUDA kernel, in the op table's layout (one fused qkv buffer, bf16):
 * dense causal, GQA (SmolLM2's 9/3 heads, the 1B Llama's 32/8), multi-head, D 64 and 128, lengths
 * that are no multiple of a tile. Forward: out within 1e-2 and lse within 1e-5 of both. Backward
 * (fed the CPU's bf16 out and lse): dq, dk, dv within 1e-2 of both, and the delta it writes
 * (cuDNN's softmax sum) equal to rowsum(dout * out) within 1e-5. Outputs are poisoned with NaN
 * before every run; NaN never passes. Exits 77 without a GPU, and in a build without cuDNN. Never
 * run on a GPU by the sessions that wrote it (docs/CUDA.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_cudnn.h"
#include "kernels/device/device.h"

#if defined(LRSA_HAVE_CUDA) && defined(LRSA_HAVE_CUDNN)
#include <cuda_runtime_api.h>

#include "gpu_compare.h"

typedef struct {
    int B, T, Hq, Hkv, D;
} shape;

/* The width columns at col of each of rows rows of a strided buffer, packed. */
static float *columns(const float *x, int64_t rows, int64_t stride, int64_t col, int64_t width) {
    float *p = lrsa_malloc(sizeof(float) * (size_t)(rows * width));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < width; j++) p[r * width + j] = x[r * stride + col + j];
    return p;
}

/* dq, dk, dv (the column blocks of a fused dqkv) of got against want. */
static void expect_grads(int *bad, const char *who, const float *got, const float *want,
                         int64_t rows, const lrsa_attn_dims *d) {
    const int64_t qw = (int64_t)d->Hq * d->D, kw = (int64_t)d->Hkv * d->D;
    const char *names[3] = {"dq", "dk", "dv"};
    const int64_t col[3] = {0, qw, qw + kw}, width[3] = {qw, kw, kw};
    for (int i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s vs %s", names[i], who);
        float *g = columns(got, rows, d->q_stride, col[i], width[i]);
        float *w = columns(want, rows, d->q_stride, col[i], width[i]);
        gc_expect_close(bad, label, g, w, rows * width[i], GC_TOL_BF16);
        free(g);
        free(w);
    }
}

static int run_case(lrsa_attention_cudnn *dnn, const shape *s, uint64_t seed) {
    const int64_t rows = (int64_t)s->B * s->T, qw = (int64_t)s->Hq * s->D,
                  kw = (int64_t)s->Hkv * s->D, row = qw + 2 * kw;
    const int64_t qkv_n = rows * row, on = rows * qw, ln = (int64_t)s->B * s->Hq * s->T;
    lrsa_attn_dims d = {s->B, s->T, s->Hq, s->Hkv, s->D, row, row, qw, 1.0f / sqrtf((float)s->D)};
    printf("B=%d T=%d Hq=%d Hkv=%d D=%d\n", s->B, s->T, s->Hq, s->Hkv, s->D);
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    float *qkv = gc_random_bf16_values(qkv_n, 1.0f, &rng);
    float *dout = gc_random_bf16_values(on, 1.0f, &rng);

    /* the CPU reference; the backward of every side gets the same bf16 out and fp32 lse */
    float *out = lrsa_malloc(sizeof(float) * (size_t)on), *lse = lrsa_malloc(sizeof(float) * ln);
    lrsa_attention_forward_cpu(out, lse, qkv, qkv + qw, qkv + qw + kw, &d);
    for (int64_t i = 0; i < on; i++) out[i] = lrsa_bf16_to_f32(lrsa_f32_to_bf16(out[i]));
    float *dqkv = calloc((size_t)qkv_n, sizeof(float));
    lrsa_attention_backward_cpu(dqkv, dqkv + qw, dqkv + qw + kw, dout, qkv, qkv + qw, qkv + qw + kw,
                                out, lse, &d);
    float *delta = lrsa_malloc(sizeof(float) * (size_t)ln); /* rowsum(dout * out) */
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->Hq; h++)
            for (int t = 0; t < s->T; t++) {
                const int64_t r = (int64_t)b * s->T + t;
                double acc = 0;
                for (int j = 0; j < s->D; j++)
                    acc += (double)dout[r * qw + h * s->D + j] * out[r * qw + h * s->D + j];
                delta[((int64_t)b * s->Hq + h) * s->T + t] = (float)acc;
            }

    lrsa_bf16 *g_qkv = gc_upload_bf16(qkv, qkv_n), *g_dout = gc_upload_bf16(dout, on);
    lrsa_bf16 *g_out_ref = gc_upload_bf16(out, on);
    float *g_lse_ref = gc_upload_f32(lse, ln);
    const lrsa_bf16 *gq = g_qkv, *gk = g_qkv + qw, *gv = g_qkv + qw + kw;
    size_t ws_bytes = 0;
    lrsa_err e = {0};
    int bad = 0;
    if (lrsa_attention_cudnn_prepare(dnn, &d, &ws_bytes, &e)) {
        printf("FAIL prepare: %s\n", e.msg);
        return 1;
    }
    void *ws = lrsa_dev_alloc(ws_bytes ? ws_bytes : 1);
    lrsa_attention_cudnn_set_workspace(dnn, ws, ws_bytes);
    printf("     workspace %zu bytes\n", ws_bytes);

    /* forward: cuDNN and our kernel */
    lrsa_bf16 *g_out = gc_poisoned(on, sizeof(lrsa_bf16)),
              *g_out2 = gc_poisoned(on, sizeof(lrsa_bf16));
    float *g_lse = gc_poisoned(ln, sizeof(float)), *g_lse2 = gc_poisoned(ln, sizeof(float));
    lrsa_attention_forward_cudnn(dnn, g_out, g_lse, gq, gk, gv, &d);
    lrsa_attention_forward_cuda(g_out2, g_lse2, gq, gk, gv, &d, NULL);
    float *o_dnn = gc_download_bf16(g_out, on), *o_ours = gc_download_bf16(g_out2, on);
    float *l_dnn = gc_download_f32(g_lse, ln), *l_ours = gc_download_f32(g_lse2, ln);
    gc_expect_close(&bad, "out vs CPU", o_dnn, out, on, GC_TOL_BF16);
    gc_expect_close(&bad, "out vs our kernel", o_dnn, o_ours, on, GC_TOL_BF16);
    gc_expect_close(&bad, "lse vs CPU", l_dnn, lse, ln, GC_TOL_F32);
    gc_expect_close(&bad, "lse vs our kernel", l_dnn, l_ours, ln, GC_TOL_F32);

    /* backward: cuDNN and our kernel into fused dqkv buffers */
    lrsa_bf16 *g_d = gc_poisoned(qkv_n, sizeof(lrsa_bf16)),
              *g_d2 = gc_poisoned(qkv_n, sizeof(lrsa_bf16));
    float *g_delta = gc_poisoned(ln, sizeof(float)), *g_delta2 = gc_poisoned(ln, sizeof(float));
    lrsa_attention_backward_cudnn(dnn, g_d, g_d + qw, g_d + qw + kw, g_dout, gq, gk, gv, g_out_ref,
                                  g_lse_ref, g_delta, &d);
    lrsa_attention_backward_cuda(g_d2, g_d2 + qw, g_d2 + qw + kw, g_dout, gq, gk, gv, g_out_ref,
                                 g_lse_ref, g_delta2, &d, NULL);
    float *d_dnn = gc_download_bf16(g_d, qkv_n), *d_ours = gc_download_bf16(g_d2, qkv_n);
    float *delta_dnn = gc_download_f32(g_delta, ln);
    expect_grads(&bad, "CPU", d_dnn, dqkv, rows, &d);
    expect_grads(&bad, "our kernel", d_dnn, d_ours, rows, &d);
    gc_expect_close(&bad, "delta (softmax sum) vs rowsum(dout*out)", delta_dnn, delta, ln,
                    GC_TOL_F32);

    void *dev[] = {g_qkv, g_dout, g_out_ref, g_lse_ref, ws,      g_out,   g_out2,
                   g_lse, g_lse2, g_d,       g_d2,      g_delta, g_delta2};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) lrsa_dev_free(dev[i]);
    float *host[] = {qkv,    dout,  out,    lse,   dqkv,   delta,    o_dnn,
                     o_ours, l_dnn, l_ours, d_dnn, d_ours, delta_dnn};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
    return bad;
}

int main(void) {
    if (lrsa_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    lrsa_err e = {0};
    lrsa_attention_cudnn *dnn = lrsa_attention_cudnn_create(NULL, &e);
    if (!dnn) {
        printf("FAIL: %s\n", e.msg);
        return 1;
    }
    const shape cases[] = {
        {2, 333, 9, 3, 64},  /* SmolLM2-135M heads */
        {1, 515, 32, 8, 64}, /* Llama-3.2-1B heads */
        {1, 257, 8, 2, 128}, /* D 128 */
        {2, 130, 4, 4, 64},  /* multi-head: no GQA reduction in the backward graph */
        {1, 64, 4, 4, 128},  /* one tile */
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bad |= run_case(dnn, &cases[i], 11 + i) != 0;
    lrsa_attention_cudnn_free(dnn);
    return bad;
}
#else
int main(void) {
    printf("built without CUDA and cuDNN: skipped\n");
    return 77;
}
#endif
