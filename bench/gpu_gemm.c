/* GPU matmul rates through the cuBLASLt linear op (kernels/linear/linear_cuda.cu) at the
 * SmolLM2-135M projection shapes for T = 1024..8192 tokens: forward (bf16 out), dX (bf16 out) and
 * dW (fp32 accumulate) of each projection, the fused LM head loss (forward + backward over all
 * rows), and a square 4096^3 product as the device's reference rate. Each figure is 2*M*N*K
 * FLOPs over the median of 20 CUDA-event-timed runs after 3 warm-ups.
 * Usage: bench_gpu_gemm [T ...]   (default 1024 2048 4096 8192). Exits 77 without a GPU. */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("bench_gpu_gemm: built without CUDA\n");
    return 77;
}
#else
#include <cuda_runtime_api.h>

#include "base/error.h"
#include "autograd/tensor.h"
#include "bench/gpu_bench.h"
#include "kernels/device/device_buffer.h"
#include "kernels/linear/linear.h"
#include "kernels/lm_head_loss/lm_head_loss.h"

static double tflops(double flops, double ms) {
    return flops / (ms * 1e-3) / 1e12;
}

typedef struct proj {
    const char *name;
    int in, out;
} proj;

/* One projection y = x w^T at N tokens: forward, dX, dW rates. */
static void bench_proj(lrsa_linear_cuda *h, timer *tm, const proj *p, int64_t N) {
    lrsa_bf16 *x = random_bf16(N * p->in, 1.0f, 1),
              *w = random_bf16((int64_t)p->out * p->in, 0.05f, 2);
    lrsa_bf16 *dy = random_bf16(N * p->out, 1.0f, 3);
    lrsa_bf16 *y = lrsa_dev_alloc(sizeof(lrsa_bf16) * (size_t)(N * p->out));
    lrsa_bf16 *dx = lrsa_dev_alloc(sizeof(lrsa_bf16) * (size_t)(N * p->in));
    float *dw = lrsa_dev_alloc(sizeof(float) * (size_t)p->out * (size_t)p->in);
    lrsa_dev_fill_bytes(dw, 0, sizeof(float) * (size_t)p->out * (size_t)p->in);
    double f = 2.0 * (double)N * p->in * p->out, fwd, bdx, bdw;
    TIME_MEDIAN(fwd, tm, lrsa_linear_forward_cuda(h, y, x, w, NULL, N, p->in, p->out));
    TIME_MEDIAN(bdx, tm, lrsa_linear_backward_cuda(h, dx, NULL, NULL, dy, x, w, N, p->in, p->out));
    TIME_MEDIAN(bdw, tm, lrsa_linear_backward_cuda(h, NULL, dw, NULL, dy, x, w, N, p->in, p->out));
    printf("%6lld  %-10s %5d %6d | %8.3f %7.1f | %8.3f %7.1f | %8.3f %7.1f\n", (long long)N,
           p->name, p->in, p->out, fwd, tflops(f, fwd), bdx, tflops(f, bdx), bdw, tflops(f, bdw));
    void *bufs[] = {x, w, dy, y, dx, dw};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) lrsa_dev_free(bufs[i]);
}

/* The fused final norm + LM head + cross-entropy, every row active, forward + backward. */
static void bench_lm_head(lrsa_linear_cuda *h, timer *tm, int64_t N, int C, int V) {
    lrsa_bf16 *hid = random_bf16(N * C, 1.0f, 4), *nw = random_bf16(C, 1.0f, 5);
    lrsa_bf16 *W = random_bf16((int64_t)V * C, 0.05f, 6);
    int32_t *t_host = lrsa_malloc(sizeof(int32_t) * (size_t)N);
    float *w_host = lrsa_malloc(sizeof(float) * (size_t)N);
    for (int64_t i = 0; i < N; i++) {
        t_host[i] = (int32_t)((i * 7919) % V);
        w_host[i] = 1.0f / (float)N;
    }
    int32_t *t = lrsa_dev_alloc(sizeof(int32_t) * (size_t)N);
    float *wt = lrsa_dev_alloc(sizeof(float) * (size_t)N);
    lrsa_dev_upload(t, t_host, sizeof(int32_t) * (size_t)N);
    lrsa_dev_upload(wt, w_host, sizeof(float) * (size_t)N);
    double *loss = lrsa_dev_alloc(sizeof(double));
    lrsa_bf16 *dh = lrsa_dev_alloc(sizeof(lrsa_bf16) * (size_t)(N * C));
    float *dnw = lrsa_dev_alloc(sizeof(float) * (size_t)C);
    float *dW = lrsa_dev_alloc(sizeof(float) * (size_t)V * (size_t)C);
    lrsa_dev_fill_bytes(dnw, 0, sizeof(float) * (size_t)C);
    lrsa_dev_fill_bytes(dW, 0, sizeof(float) * (size_t)V * (size_t)C);
    lrsa_lm_head_loss_ctx *ctx = lrsa_lm_head_loss_cuda_create(h, N, C, V, 0);
    double fwd, both;
    TIME_MEDIAN(
        fwd, tm,
        lrsa_lm_head_loss_cuda(ctx, loss, NULL, NULL, NULL, NULL, hid, nw, W, t, wt, N, 1e-5f));
    TIME_MEDIAN(both, tm,
                lrsa_lm_head_loss_cuda(ctx, loss, NULL, dh, dnw, dW, hid, nw, W, t, wt, N, 1e-5f));
    double f = 2.0 * (double)N * C * V;
    printf("%6lld  lm_head_loss C=%d V=%d chunk=%d | forward %8.3f ms %7.1f TFLOP/s | "
           "fwd+bwd %8.3f ms %7.1f TFLOP/s\n",
           (long long)N, C, V, lrsa_lm_head_loss_cuda_chunk_rows(ctx), fwd, tflops(f, fwd), both,
           tflops(3.0 * f, both));
    lrsa_lm_head_loss_cuda_destroy(ctx);
    void *bufs[] = {hid, nw, W, t, wt, loss, dh, dnw, dW};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) lrsa_dev_free(bufs[i]);
    free(t_host);
    free(w_host);
}

int main(int argc, char **argv) {
    if (lrsa_cuda_device_count() == 0) {
        printf("bench_gpu_gemm: no CUDA device\n");
        return 77;
    }
    char desc[256], vers[256];
    lrsa_cuda_describe(desc, sizeof desc);
    lrsa_cuda_library_versions(vers, sizeof vers);
    printf("device: %s; %s\n", desc, vers);
    int64_t Ts[16] = {1024, 2048, 4096, 8192};
    int nT = 4;
    if (argc > 1) {
        nT = 0;
        for (int a = 1; a < argc && nT < 16; a++) {
            char *end;
            long long v = strtoll(argv[a], &end, 10);
            if (*end || v <= 0) {
                fprintf(stderr, "bench_gpu_gemm: token count '%s' is not a positive integer\n",
                        argv[a]);
                return 2;
            }
            Ts[nT++] = v;
        }
    }
    timer tm;
    timer_init(&tm);
    lrsa_linear_cuda *h = lrsa_linear_cuda_create(NULL, 0);

    printf("\nreference: square product, M = N = K = 4096\n");
    const proj square = {"square", 4096, 4096};
    printf("%6s  %-10s %5s %6s | %8s %7s | %8s %7s | %8s %7s\n", "tokens", "proj", "in", "out",
           "fwd ms", "TFLOP/s", "dX ms", "TFLOP/s", "dW ms", "TFLOP/s");
    bench_proj(h, &tm, &square, 4096);

    /* SmolLM2-135M: hidden 576, 9 query heads and 3 KV heads of 64, MLP 1536, vocab 49152. */
    const proj projs[] = {{"q", 576, 576},        {"k", 576, 192},        {"v", 576, 192},
                          {"o", 576, 576},        {"gate/up", 576, 1536}, {"down", 1536, 576},
                          {"lm_head", 576, 49152}};
    printf("\nSmolLM2-135M projections (batch 1, T tokens)\n");
    printf("%6s  %-10s %5s %6s | %8s %7s | %8s %7s | %8s %7s\n", "tokens", "proj", "in", "out",
           "fwd ms", "TFLOP/s", "dX ms", "TFLOP/s", "dW ms", "TFLOP/s");
    for (int ti = 0; ti < nT; ti++)
        for (size_t p = 0; p < sizeof projs / sizeof projs[0]; p++)
            bench_proj(h, &tm, &projs[p], Ts[ti]);

    printf("\nfused final norm + LM head + cross-entropy (all rows active; fwd+bwd counts 3 "
           "products)\n");
    for (int ti = 0; ti < nT; ti++) bench_lm_head(h, &tm, Ts[ti], 576, 49152);

    printf("\ncached cuBLASLt plans: %d\n", lrsa_linear_cuda_cached_plans(h));
    lrsa_linear_cuda_destroy(h);
    timer_free(&tm);
    return 0;
}
#endif
