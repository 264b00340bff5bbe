/* Dense causal GQA attention on the GPU (bf16 storage) against the CPU reference on the same
 * bf16-rounded inputs: out within 1e-2 and lse within 1e-5 norm-relative; the backward, fed the
 * same out and lse as the CPU's, gives dq, dk, dv within 1e-2; two backward runs give the same
 * bits (no atomics). Outputs are poisoned with NaN before every run; NaN never passes. Shapes:
 * SmolLM2's (9 query heads on 3 KV heads, D 64), D 128 in a fused QKV buffer, plain multi-head,
 * lengths that are no multiple of any tile. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention/attention.h"
#include "kernels/device/device.h"

#ifdef LRSA_HAVE_CUDA
#include "gpu_mem.h"
#include "test_util.h"

typedef struct {
    int B, T, Hq, Hkv, D, fused;
} attn_case;

static int report(const char *what, double err, double tol) {
    int ok = err <= tol; /* NaN fails */
    printf("  %-4s rel err %.3e (tol %.0e) %s\n", what, err, tol, ok ? "ok" : "FAIL");
    return !ok;
}

/* For gradients that are zero in exact arithmetic: every element within 1e-4 of 0 (the inputs
 * are O(1), so rounding leaves about 1e-6). NaN fails. */
static int report_zero(const char *what, const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m || isnan(x[i]) ? fabs(x[i]) : m;
    int ok = m <= 1e-4;
    printf("  %-4s max |x| %.3e (0 in exact arithmetic, tol 1e-4) %s\n", what, m,
           ok ? "ok" : "FAIL");
    return !ok;
}

/* Copies the [B*T] rows of `heads` heads at column offset col out of a strided buffer. */
static void gather_heads(float *dst, const float *src, int64_t rows, int64_t stride, int64_t col,
                         int64_t width) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + r * width, src + r * stride + col, sizeof(float) * width);
}

static int run_case(const attn_case *c, uint64_t seed) {
    int B = c->B, T = c->T, Hq = c->Hq, Hkv = c->Hkv, D = c->D;
    int64_t rows = (int64_t)B * T, qw = (int64_t)Hq * D, kw = (int64_t)Hkv * D;
    /* fused: one [rows, Hq+2Hkv, D] buffer; otherwise separate buffers (stride = width) */
    int64_t qs = c->fused ? qw + 2 * kw : qw, ks = c->fused ? qw + 2 * kw : kw;
    int64_t qn = rows * qs, kn = c->fused ? 0 : rows * ks, on = rows * qw;
    int64_t koff = c->fused ? qw : 0, voff = c->fused ? qw + kw : 0;
    lrsa_attn_dims d = {.B = B,
                        .T = T,
                        .Hq = Hq,
                        .Hkv = Hkv,
                        .D = D,
                        .q_stride = qs,
                        .kv_stride = ks,
                        .o_stride = qw,
                        .scale = 1.0f / sqrtf((float)D)};
    lrsa_rng rng;
    lrsa_rng_seed(&rng, seed);
    /* host inputs, rounded to bf16 so CPU and GPU see the same values */
    float *qb = malloc(sizeof(float) * qn), *kb = c->fused ? qb : malloc(sizeof(float) * kn),
          *vb = c->fused ? qb : malloc(sizeof(float) * kn);
    tu_fill_normal(qb, qn, 1.0f, &rng);
    gm_round_bf16(qb, NULL, qn);
    if (!c->fused) {
        tu_fill_normal(kb, kn, 1.0f, &rng);
        tu_fill_normal(vb, kn, 1.0f, &rng);
        gm_round_bf16(kb, NULL, kn);
        gm_round_bf16(vb, NULL, kn);
    }
    const float *q = qb, *k = kb + koff, *v = vb + voff;
    float *dout = malloc(sizeof(float) * on);
    tu_fill_normal(dout, on, 1.0f, &rng);
    gm_round_bf16(dout, NULL, on);

    /* CPU reference */
    int64_t ln = (int64_t)B * Hq * T;
    float *out = malloc(sizeof(float) * on), *lse = malloc(sizeof(float) * ln);
    lrsa_attention_forward_cpu(out, lse, q, k, v, &d);
    gm_round_bf16(out, NULL, on); /* the backward of both sides gets the same bf16 out */
    int64_t gn = c->fused ? qn : 0;
    float *dqkv = c->fused ? calloc((size_t)gn, sizeof(float)) : NULL;
    float *dq = c->fused ? dqkv : malloc(sizeof(float) * qn);
    float *dk = c->fused ? dqkv + koff : malloc(sizeof(float) * kn);
    float *dv = c->fused ? dqkv + voff : malloc(sizeof(float) * kn);
    lrsa_attention_backward_cpu(dq, dk, dv, dout, q, k, v, out, lse, &d);

    /* GPU */
    uint16_t *gq = gm_upload_bf16(qb, qn);
    uint16_t *gkb = c->fused ? gq : gm_upload_bf16(kb, kn);
    uint16_t *gvb = c->fused ? gq : gm_upload_bf16(vb, kn);
    uint16_t *gdout = gm_upload_bf16(dout, on), *gout_ref = gm_upload_bf16(out, on);
    uint16_t *gout = gm_alloc(sizeof(uint16_t) * on);
    float *glse = gm_alloc(sizeof(float) * ln), *glse_ref = gm_alloc(sizeof(float) * ln);
    float *gdelta = gm_alloc(sizeof(float) * ln);
    gm_upload(glse_ref, lse, sizeof(float) * ln);
    int64_t gqn = qn, gkn = c->fused ? 0 : kn;
    uint16_t *gdq = gm_alloc(sizeof(uint16_t) * gqn);
    uint16_t *gdk = c->fused ? gdq : gm_alloc(sizeof(uint16_t) * gkn);
    uint16_t *gdv = c->fused ? gdq : gm_alloc(sizeof(uint16_t) * gkn);
    gm_poison(gout, sizeof(uint16_t) * on);
    gm_poison(glse, sizeof(float) * ln);
    lrsa_attention_forward_cuda(gout, glse, gq, gkb + koff, gvb + voff, &d, NULL);
    float *out_g = malloc(sizeof(float) * on), *lse_g = malloc(sizeof(float) * ln);
    gm_download_bf16(out_g, gout, on);
    gm_download(lse_g, glse, sizeof(float) * ln);
    printf("B=%d T=%d Hq=%d Hkv=%d D=%d%s\n", B, T, Hq, Hkv, D, c->fused ? " (fused qkv)" : "");
    int bad = report("out", tu_rel_err(out_g, out, on), 1e-2);
    bad |= report("lse", tu_rel_err(lse_g, lse, ln), 1e-5);

    /* backward twice, on the CPU's bf16 out and lse; bits must repeat */
    int64_t all = gqn + 2 * gkn;
    uint16_t *bits1 = malloc(sizeof(uint16_t) * all), *bits2 = malloc(sizeof(uint16_t) * all);
    float *gg = malloc(sizeof(float) * (gqn > 0 ? gqn : 1));
    for (int rep = 0; rep < 2; rep++) {
        uint16_t *dst = rep ? bits2 : bits1;
        gm_poison(gdq, sizeof(uint16_t) * gqn);
        if (!c->fused) {
            gm_poison(gdk, sizeof(uint16_t) * gkn);
            gm_poison(gdv, sizeof(uint16_t) * gkn);
        }
        gm_poison(gdelta, sizeof(float) * ln);
        lrsa_attention_backward_cuda(gdq, gdk + koff, gdv + voff, gdout, gq, gkb + koff, gvb + voff,
                                     gout_ref, glse_ref, gdelta, &d, NULL);
        gm_download(dst, gdq, sizeof(uint16_t) * gqn);
        if (!c->fused) {
            gm_download(dst + gqn, gdk, sizeof(uint16_t) * gkn);
            gm_download(dst + gqn + gkn, gdv, sizeof(uint16_t) * gkn);
        }
    }
    if (memcmp(bits1, bits2, sizeof(uint16_t) * all) != 0) {
        printf("  backward is not deterministic\n");
        bad = 1;
    }
    /* compare dq, dk, dv head blocks (in the fused case, the q / k / v columns of dqkv) */
    float *a = malloc(sizeof(float) * rows * qw), *r = malloc(sizeof(float) * rows * qw);
    for (int64_t i = 0; i < gqn; i++) gg[i] = lrsa_bf16_to_f32(bits1[i]);
    const float *gdq_f = gg, *gdk_f = c->fused ? gg + koff : NULL,
                *gdv_f = c->fused ? gg + voff : NULL;
    float *gk_f = NULL, *gv_f = NULL;
    if (!c->fused) {
        gk_f = malloc(sizeof(float) * gkn);
        gv_f = malloc(sizeof(float) * gkn);
        for (int64_t i = 0; i < gkn; i++) {
            gk_f[i] = lrsa_bf16_to_f32(bits1[gqn + i]);
            gv_f[i] = lrsa_bf16_to_f32(bits1[gqn + gkn + i]);
        }
        gdk_f = gk_f;
        gdv_f = gv_f;
    }
    /* With one key the softmax has no gradient: dq and dk are 0 up to rounding on both sides,
     * so a relative error means nothing; their size is bounded instead (found by emulation). */
    gather_heads(a, gdq_f, rows, qs, 0, qw);
    gather_heads(r, dq, rows, qs, 0, qw);
    bad |=
        T == 1 ? report_zero("dq", a, rows * qw) : report("dq", tu_rel_err(a, r, rows * qw), 1e-2);
    gather_heads(a, gdk_f, rows, ks, 0, kw);
    gather_heads(r, dk, rows, ks, 0, kw);
    bad |=
        T == 1 ? report_zero("dk", a, rows * kw) : report("dk", tu_rel_err(a, r, rows * kw), 1e-2);
    gather_heads(a, gdv_f, rows, ks, 0, kw);
    gather_heads(r, dv, rows, ks, 0, kw);
    bad |= report("dv", tu_rel_err(a, r, rows * kw), 1e-2);

    cudaFree(gq);
    if (!c->fused) {
        cudaFree(gkb);
        cudaFree(gvb);
        cudaFree(gdk);
        cudaFree(gdv);
        free(kb);
        free(vb);
        free(dq);
        free(dk);
        free(dv);
        free(gk_f);
        free(gv_f);
    }
    cudaFree(gdout);
    cudaFree(gout_ref);
    cudaFree(gout);
    cudaFree(glse);
    cudaFree(glse_ref);
    cudaFree(gdelta);
    cudaFree(gdq);
    free(qb);
    free(dout);
    free(out);
    free(lse);
    free(dqkv);
    free(out_g);
    free(lse_g);
    free(bits1);
    free(bits2);
    free(gg);
    free(a);
    free(r);
    return bad;
}

int main(void) {
    if (lrsa_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    const attn_case cases[] = {
        {2, 333, 9, 3, 64, 0},  /* SmolLM2 heads */
        {1, 257, 8, 2, 128, 1}, /* D 128, fused qkv, GQA 4 */
        {2, 130, 4, 4, 64, 0},  /* multi-head */
        {1, 200, 4, 1, 128, 0}, /* multi-query */
        {1, 1, 9, 3, 64, 0},    /* a single token */
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) bad |= run_case(&cases[i], 7 + i);
    return bad;
}
#else
int main(void) {
    printf("built without CUDA: skipped\n");
    return 77;
}
#endif
