/* Dense causal GQA attention and LRSA attention on the GPU (bf16): forward and backward times
 * (CUDA events, median of repeats after a warm-up) and TFLOP/s at T = 1024 .. max_T, for
 * SmolLM2's heads (Hq 9, Hkv 3, D 64) and for D 128 with GQA 4 (Hq 16, Hkv 4); then LRSA
 * (S 16, L 128, keep 1/2, 1/4, 1/8) forward+backward against dense: time ratio, attended-key
 * fraction, effective TFLOP/s on the pairs it attends, and the LagKV selection time as a
 * fraction of the dense forward. FLOPs: forward 4*D per visible (query, key) pair and query
 * head, backward 2.5x that (the usual FlashAttention accounting). In a build with cuDNN the dense
 * table also times cuDNN's fused attention (attention.impl: cudnn, attention_cudnn.h) on the same
 * buffers and prints ours/cuDNN as speed ratios (cuDNN's time over ours: >= 0.8 is the issue's
 * target). Exits 77 without a GPU. Never run on a GPU by the sessions that wrote it.
 * usage: bench_gpu_attention [max_T (default 16384)] [repeats (default 5)] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/attention/attention.h"
#include "kernels/attention/attention_cudnn.h"
#include "kernels/device/device.h"
#include "kernels/lagkv/lagkv.h"
#include "kernels/lrsa_attention/lrsa_attention.h"

#ifdef LRSA_HAVE_CUDA
#include "base/rng.h"
#include "tests/gpu/gpu_mem.h"

typedef struct {
    int Hq, Hkv, D;
} heads;

typedef struct {
    lrsa_attn_dims d;
    uint16_t *q, *k, *v, *out, *dout, *dq, *dk, *dv;
    float *lse, *delta;
} bufs;

static uint16_t *random_bf16(int64_t n, lrsa_rng *rng) {
    float *x = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) x[i] = lrsa_rng_normal(rng);
    uint16_t *d = gm_upload_bf16(x, n);
    free(x);
    return d;
}

static void bufs_init(bufs *b, int T, heads h, lrsa_rng *rng) {
    int64_t qn = (int64_t)T * h.Hq * h.D, kn = (int64_t)T * h.Hkv * h.D;
    b->d = (lrsa_attn_dims){.B = 1,
                            .T = T,
                            .Hq = h.Hq,
                            .Hkv = h.Hkv,
                            .D = h.D,
                            .q_stride = (int64_t)h.Hq * h.D,
                            .kv_stride = (int64_t)h.Hkv * h.D,
                            .o_stride = (int64_t)h.Hq * h.D,
                            .scale = 1.0f / sqrtf((float)h.D)};
    b->q = random_bf16(qn, rng), b->k = random_bf16(kn, rng), b->v = random_bf16(kn, rng);
    b->dout = random_bf16(qn, rng);
    b->out = gm_alloc(2 * qn), b->dq = gm_alloc(2 * qn), b->dk = gm_alloc(2 * kn);
    b->dv = gm_alloc(2 * kn);
    b->lse = gm_alloc(sizeof(float) * T * h.Hq), b->delta = gm_alloc(sizeof(float) * T * h.Hq);
}

static void bufs_free(bufs *b) {
    void *p[] = {b->q, b->k, b->v, b->out, b->dout, b->dq, b->dk, b->dv, b->lse, b->delta};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) cudaFree(p[i]);
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* What one timed call runs. */
typedef enum { DENSE_FWD, DENSE_BWD, LRSA_FWD, LRSA_BWD, SELECT, CUDNN_FWD, CUDNN_BWD } op_kind;
typedef struct {
    bufs *b;
    const lrsa_lagkv_params *p;
    int32_t *sel;
    void *ws;
#ifdef LRSA_HAVE_CUDNN
    lrsa_attention_cudnn *dnn; /* its workspace set for b's shape */
#endif
} op_ctx;

static void run_op(op_kind op, const op_ctx *c) {
    bufs *b = c->b;
    switch (op) {
        case DENSE_FWD:
            lrsa_attention_forward_cuda(b->out, b->lse, b->q, b->k, b->v, &b->d, NULL);
            break;
        case DENSE_BWD:
            lrsa_attention_backward_cuda(b->dq, b->dk, b->dv, b->dout, b->q, b->k, b->v, b->out,
                                         b->lse, b->delta, &b->d, NULL);
            break;
        case LRSA_FWD:
            lrsa_lrsa_attention_forward_cuda(b->out, b->lse, b->q, b->k, b->v, c->sel, c->ws, &b->d,
                                             c->p, NULL);
            break;
        case LRSA_BWD:
            lrsa_lrsa_attention_backward_cuda(b->dq, b->dk, b->dv, b->dout, b->q, b->k, b->v,
                                              b->out, b->lse, c->sel, c->ws, &b->d, c->p, NULL);
            break;
        case SELECT:
            lrsa_lagkv_select_cuda_bf16(c->sel, NULL, b->k, b->v, 1, b->d.T, b->d.Hkv, b->d.D,
                                        b->d.kv_stride, c->p, NULL);
            break;
#ifdef LRSA_HAVE_CUDNN
        case CUDNN_FWD:
            lrsa_attention_forward_cudnn(c->dnn, b->out, b->lse, b->q, b->k, b->v, &b->d);
            break;
        case CUDNN_BWD:
            lrsa_attention_backward_cudnn(c->dnn, b->dq, b->dk, b->dv, b->dout, b->q, b->k, b->v,
                                          b->out, b->lse, b->delta, &b->d);
            break;
#else
        case CUDNN_FWD:
        case CUDNN_BWD:
            break;
#endif
    }
}

/* Median milliseconds of `reps` runs after one warm-up. */
static double time_ms(op_kind op, const op_ctx *c, int reps) {
    cudaEvent_t e0, e1;
    gm_check(cudaEventCreate(&e0), "cudaEventCreate");
    gm_check(cudaEventCreate(&e1), "cudaEventCreate");
    run_op(op, c);
    gm_check(cudaDeviceSynchronize(), "warm-up");
    float t[64];
    if (reps > 64) reps = 64;
    for (int r = 0; r < reps; r++) {
        gm_check(cudaEventRecord(e0, NULL), "cudaEventRecord");
        run_op(op, c);
        gm_check(cudaEventRecord(e1, NULL), "cudaEventRecord");
        gm_check(cudaEventSynchronize(e1), "cudaEventSynchronize");
        gm_check(cudaEventElapsedTime(&t[r], e0, e1), "cudaEventElapsedTime");
    }
    qsort(t, (size_t)reps, sizeof(float), cmp_f);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return t[reps / 2];
}

/* Visible (query, key) pairs of one head: LRSA rule (p non-NULL) or dense causal. */
static double visible_pairs(int T, const lrsa_lagkv_params *p) {
    double n = 0;
    for (int i = 0; i < T; i++) {
        if (!p || i < p->sink + 2 * p->lag) {
            n += i + 1;
            continue;
        }
        int c = (i - p->sink) / p->lag, kk = lrsa_lagkv_k(p);
        n += p->sink + (double)kk * (c - 1) + (i - (p->sink + (c - 1) * p->lag) + 1);
    }
    return n;
}

int main(int argc, char **argv) {
    if (lrsa_cuda_device_count() == 0) {
        printf("no CUDA device: nothing to time\n");
        return 77;
    }
    int max_t = argc > 1 ? atoi(argv[1]) : 16384, reps = argc > 2 ? atoi(argv[2]) : 5;
    if (max_t < 1024 || reps < 1) {
        fprintf(stderr, "usage: bench_gpu_attention [max_T >= 1024] [repeats >= 1]\n");
        return 2;
    }
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    printf("device: %s\n", desc);
    const heads shapes[] = {{9, 3, 64}, {16, 4, 128}};
    const float keeps[] = {0.5f, 0.25f, 0.125f};
    lrsa_rng rng;
    lrsa_rng_seed(&rng, 1);
    printf("%-5s %-4s %-6s %9s %9s %8s %8s", "D", "Hq/Hkv", "T", "fwd ms", "bwd ms", "fwd TF/s",
           "bwd TF/s");
#ifdef LRSA_HAVE_CUDNN
    lrsa_err err = {0};
    lrsa_attention_cudnn *dnn = lrsa_attention_cudnn_create(NULL, &err);
    if (!dnn) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf(" %9s %9s %8s %8s", "cudnn fwd", "cudnn bwd", "fwd x", "bwd x");
#endif
    printf("\n");
    for (size_t s = 0; s < 2; s++)
        for (int T = 1024; T <= max_t; T *= 2) {
            bufs b;
            bufs_init(&b, T, shapes[s], &rng);
            op_ctx c = {.b = &b};
            double f = time_ms(DENSE_FWD, &c, reps), g = time_ms(DENSE_BWD, &c, reps);
            double fl = 4.0 * shapes[s].D * shapes[s].Hq * visible_pairs(T, NULL);
            printf("%-5d %2d/%-3d %-6d %9.3f %9.3f %8.2f %8.2f", shapes[s].D, shapes[s].Hq,
                   shapes[s].Hkv, T, f, g, fl / f * 1e-9, 2.5 * fl / g * 1e-9);
#ifdef LRSA_HAVE_CUDNN
            size_t ws_bytes = 0;
            if (lrsa_attention_cudnn_prepare(dnn, &b.d, &ws_bytes, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            void *ws = gm_alloc(ws_bytes);
            lrsa_attention_cudnn_set_workspace(dnn, ws, ws_bytes);
            c.dnn = dnn;
            double cf = time_ms(CUDNN_FWD, &c, reps), cg = time_ms(CUDNN_BWD, &c, reps);
            printf(" %9.3f %9.3f %8.2f %8.2f", cf, cg, cf / f, cg / g);
            cudaFree(ws);
#endif
            printf("\n");
            fflush(stdout);
            bufs_free(&b);
        }
#ifdef LRSA_HAVE_CUDNN
    lrsa_attention_cudnn_free(dnn);
#endif
    printf("\nLRSA (S 16, L 128) vs dense, forward+backward\n");
    printf("%-5s %-6s %-6s %9s %9s %7s %7s %9s %9s %8s\n", "D", "T", "keep", "dense ms", "lrsa ms",
           "ratio", "keys", "dense TF", "lrsa TF", "select%");
    for (size_t s = 0; s < 2; s++)
        for (int T = 1024; T <= max_t; T *= 2) {
            bufs b;
            bufs_init(&b, T, shapes[s], &rng);
            op_ctx c = {.b = &b};
            double dense = time_ms(DENSE_FWD, &c, reps) + time_ms(DENSE_BWD, &c, reps);
            double dfwd = time_ms(DENSE_FWD, &c, reps);
            double dpairs = visible_pairs(T, NULL), perpair = 4.0 * shapes[s].D * shapes[s].Hq;
            for (size_t kx = 0; kx < 3; kx++) {
                lrsa_lagkv_params p = {
                    .sink = 16, .lag = 128, .keep = keeps[kx], .value_weight = 1.0f};
                int64_t nsel =
                    (int64_t)shapes[s].Hkv * lrsa_lagkv_num_scored(T, &p) * lrsa_lagkv_k(&p);
                c.p = &p;
                c.sel = gm_alloc(sizeof(int32_t) * (nsel ? nsel : 1));
                c.ws = gm_alloc(lrsa_lrsa_attention_cuda_workspace(&b.d, &p));
                double sel = time_ms(SELECT, &c, reps);
                double lr = time_ms(LRSA_FWD, &c, reps) + time_ms(LRSA_BWD, &c, reps);
                double lpairs = visible_pairs(T, &p);
                printf("%-5d %-6d %-6g %9.3f %9.3f %7.3f %7.3f %9.2f %9.2f %8.2f\n", shapes[s].D, T,
                       (double)keeps[kx], dense, lr, lr / dense, lpairs / dpairs,
                       3.5 * perpair * dpairs / dense * 1e-9, 3.5 * perpair * lpairs / lr * 1e-9,
                       100.0 * sel / dfwd);
                fflush(stdout);
                cudaFree(c.sel);
                cudaFree(c.ws);
            }
            bufs_free(&b);
        }
    return 0;
}
#else
int main(void) {
    printf("built without CUDA: nothing to time\n");
    return 77;
}
#endif
