/* GPU timings of the simple ops' CUDA twins (embedding, RMSNorm + residual, RoPE, SwiGLU,
 * AdamW, gradient norm) at Llama-1B training shapes, as achieved memory bandwidth: each kernel's
 * nominal bytes (every input read once, every output written once) over its median time (CUDA
 * events, 20 timed runs after 3 warm-ups), next to the device-to-device copy bandwidth measured
 * in the same run. Usage: bench_gpu_ops [tokens=8192]. Exits 77 without a GPU. */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/device/device.h"

#ifndef LRSA_HAVE_CUDA
int main(void) {
    printf("bench_gpu_ops: built without CUDA\n");
    return 77;
}
#else
#include <cuda_runtime_api.h>

#include "base/error.h"
#include "bench/gpu_bench.h"
#include "kernels/device/device_buffer.h"
#include "kernels/embedding/embedding.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "kernels/rope/rope.h"
#include "kernels/swiglu/swiglu.h"
#include "train/optim.h"

static float *zeros_f32(int64_t n) {
    float *d = lrsa_dev_alloc(sizeof(float) * (size_t)n);
    lrsa_dev_fill_bytes(d, 0, sizeof(float) * (size_t)n);
    return d;
}

static void row(const char *name, double ms, double bytes, double copy_gbs) {
    double gbs = bytes / (ms * 1e-3) / 1e9;
    printf("| %-34s | %9.4f | %8.1f | %7.1f | %5.0f%% |\n", name, ms, bytes / 1e6, gbs,
           100.0 * gbs / copy_gbs);
}

int main(int argc, char **argv) {
    char desc[256];
    lrsa_cuda_describe(desc, sizeof desc);
    if (lrsa_cuda_device_count() == 0) {
        printf("bench_gpu_ops: %s\n", desc);
        return 77;
    }
    const int64_t N = argc > 1 ? atoll(argv[1]) : 8192;
    /* Llama-3.2-1B: hidden 2048, intermediate 8192, 32 q / 8 kv heads of 64, vocab 128256. */
    const int C = 2048, I = 8192, Hq = 32, Hkv = 8, D = 64, V = 128256, max_pos = 131072;
    const int64_t n_params = 256LL << 20; /* AdamW / grad norm arena: 256 Mi fp32 elements */
    printf("device: %s\nshapes: tokens %lld, hidden %d, intermediate %d, heads %d/%d x %d, "
           "vocab %d, AdamW arena %lld\n\n",
           desc, (long long)N, C, I, Hq, Hkv, D, V, (long long)n_params);
    timer tm;
    timer_init(&tm);
    double ms;

    /* The floor: device-to-device copy of 1 GiB (read + write counted). */
    size_t copy_bytes = (size_t)1 << 30;
    void *ca = lrsa_dev_alloc(copy_bytes), *cb = lrsa_dev_alloc(copy_bytes);
    lrsa_dev_fill_bytes(ca, 0, copy_bytes);
    TIME_MEDIAN(
        ms, &tm,
        check(cudaMemcpyAsync(cb, ca, copy_bytes, cudaMemcpyDeviceToDevice, 0), "cudaMemcpyAsync"));
    double copy_gbs = 2.0 * (double)copy_bytes / (ms * 1e-3) / 1e9;
    lrsa_dev_free(ca);
    lrsa_dev_free(cb);
    printf("| %-34s | %9s | %8s | %7s | %6s |\n", "kernel", "ms", "MB", "GB/s", "% copy");
    printf("|%s|%s|%s|%s|%s|\n", "------------------------------------", "-----------",
           "----------", "---------", "--------");
    row("cudaMemcpy D2D (floor)", ms, 2.0 * (double)copy_bytes, copy_gbs);

    const double nc = (double)N * C;
    /* Embedding. */
    {
        int32_t *ids = lrsa_malloc(sizeof(int32_t) * (size_t)N);
        char *seen = calloc((size_t)V, 1);
        int64_t distinct = 0;
        uint64_t s = 12345;
        for (int64_t i = 0; i < N; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ids[i] = (int32_t)((s >> 33) % (uint64_t)V);
            if (!seen[ids[i]]++) distinct++;
        }
        int32_t *d_ids = lrsa_dev_alloc(sizeof(int32_t) * (size_t)N);
        lrsa_dev_upload(d_ids, ids, sizeof(int32_t) * (size_t)N);
        lrsa_bf16 *table = random_bf16((int64_t)V * C, 1.0f, 1), *out = random_bf16(N * C, 1.0f, 2);
        TIME_MEDIAN(ms, &tm, lrsa_embedding_forward_cuda(out, d_ids, table, N, C, 0));
        row("embedding fwd", ms, 2.0 * nc * 2 + 4.0 * N, copy_gbs);
        float *dtable = zeros_f32((int64_t)V * C);
        size_t ws_bytes = lrsa_embedding_backward_workspace_cuda(N);
        void *ws = lrsa_dev_alloc(ws_bytes);
        TIME_MEDIAN(ms, &tm,
                    lrsa_embedding_backward_cuda(dtable, out, d_ids, N, C, V, ws, ws_bytes, 0));
        row("embedding bwd (sort + segments)", ms, 2.0 * nc + 8.0 * (double)distinct * C + 4.0 * N,
            copy_gbs);
        lrsa_dev_free(d_ids);
        lrsa_dev_free(table);
        lrsa_dev_free(out);
        lrsa_dev_free(dtable);
        lrsa_dev_free(ws);
        free(ids);
        free(seen);
    }
    /* RMSNorm fused with the residual add. */
    {
        lrsa_bf16 *a = random_bf16(N * C, 1.0f, 3), *b = random_bf16(N * C, 1.0f, 4),
                  *w = random_bf16(C, 1.0f, 5);
        lrsa_bf16 *h = random_bf16(N * C, 1.0f, 6), *out = random_bf16(N * C, 1.0f, 7);
        float *rstd = zeros_f32(N), *dw = zeros_f32(C);
        TIME_MEDIAN(ms, &tm, lrsa_rmsnorm_forward_cuda(out, rstd, h, a, b, w, N, C, 1e-5f, 0));
        row("rmsnorm+residual fwd", ms, 2.0 * nc * 4 + 4.0 * N, copy_gbs);
        size_t ws_bytes = lrsa_rmsnorm_backward_workspace_cuda(C);
        void *ws = lrsa_dev_alloc(ws_bytes);
        /* dx written over dresidual (b), as the model's residual-stream gradient flows. */
        TIME_MEDIAN(ms, &tm,
                    lrsa_rmsnorm_backward_cuda(b, dw, out, b, h, w, rstd, N, C, ws, ws_bytes, 0));
        row("rmsnorm bwd (dx over dresidual, dw)", ms, 2.0 * nc * 4 + 4.0 * N, copy_gbs);
        void *bufs[] = {a, b, w, h, out, rstd, dw, ws};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) lrsa_dev_free(bufs[i]);
    }
    /* RoPE on the fused qkv rows. */
    {
        int64_t stride = (int64_t)(Hq + 2 * Hkv) * D;
        lrsa_bf16 *qkv = random_bf16(N * stride, 1.0f, 8);
        float *inv = lrsa_malloc(sizeof(float) * (size_t)(D / 2));
        lrsa_rope_config rc = {.theta = 500000.0f, .type = LRSA_ROPE_DEFAULT};
        lrsa_rope_inv_freq(inv, D, &rc);
        int table_pos = (int)(N < max_pos ? N : max_pos);
        float *tab = lrsa_malloc(sizeof(float) * (size_t)table_pos * D);
        lrsa_rope_cos_sin_table(tab, inv, table_pos, D);
        float *d_tab = lrsa_dev_alloc(sizeof(float) * (size_t)table_pos * D);
        lrsa_dev_upload(d_tab, tab, sizeof(float) * (size_t)table_pos * D);
        int32_t *pos = lrsa_malloc(sizeof(int32_t) * (size_t)N);
        for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)(i % table_pos);
        int32_t *d_pos = lrsa_dev_alloc(sizeof(int32_t) * (size_t)N);
        lrsa_dev_upload(d_pos, pos, sizeof(int32_t) * (size_t)N);
        double bytes = 2.0 * 2.0 * (double)N * (Hq + Hkv) * D + 4.0 * (double)N * D;
        TIME_MEDIAN(ms, &tm, lrsa_rope_forward_cuda(qkv, d_pos, d_tab, N, Hq + Hkv, D, stride, 0));
        row("rope fwd (q and k in place)", ms, bytes, copy_gbs);
        TIME_MEDIAN(ms, &tm, lrsa_rope_backward_cuda(qkv, d_pos, d_tab, N, Hq + Hkv, D, stride, 0));
        row("rope bwd", ms, bytes, copy_gbs);
        lrsa_dev_free(qkv);
        lrsa_dev_free(d_tab);
        lrsa_dev_free(d_pos);
        free(inv);
        free(tab);
        free(pos);
    }
    /* SwiGLU. */
    {
        double ni = (double)N * I;
        lrsa_bf16 *gu = random_bf16(N * 2 * I, 1.0f, 9), *out = random_bf16(N * I, 1.0f, 10);
        lrsa_bf16 *dgu = random_bf16(N * 2 * I, 1.0f, 11);
        TIME_MEDIAN(ms, &tm, lrsa_swiglu_forward_cuda(out, gu, N, I, 0));
        row("swiglu fwd", ms, 2.0 * ni * 3, copy_gbs);
        TIME_MEDIAN(ms, &tm, lrsa_swiglu_backward_cuda(dgu, out, gu, N, I, 0));
        row("swiglu bwd", ms, 2.0 * ni * 5, copy_gbs);
        lrsa_dev_free(gu);
        lrsa_dev_free(out);
        lrsa_dev_free(dgu);
    }
    /* Gradient norm and AdamW over the fp32 arena. */
    {
        float *param = zeros_f32(n_params), *grad = zeros_f32(n_params);
        lrsa_bf16 *p16 = lrsa_dev_alloc(sizeof(lrsa_bf16) * (size_t)n_params);
        size_t ws_bytes = lrsa_grad_norm_workspace_cuda();
        void *ws = lrsa_dev_alloc(ws_bytes);
        double *norm = lrsa_dev_alloc(sizeof(double));
        float *scale = lrsa_dev_alloc(sizeof(float));
        TIME_MEDIAN(ms, &tm,
                    lrsa_grad_norm_clip_cuda(norm, scale, grad, n_params, 1.0, ws, ws_bytes, 0));
        row("grad norm + clip factor", ms, 4.0 * (double)n_params, copy_gbs);
        lrsa_decay_range whole = {0, n_params};
        lrsa_adamw host = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
        host.lo = 0;
        host.hi = n_params;
        host.m = lrsa_calloc((size_t)n_params, sizeof(float));
        host.v = lrsa_calloc((size_t)n_params, sizeof(float));
        host.decay = &whole;
        host.n_decay = 1;
        lrsa_adamw_cuda opt;
        lrsa_adamw_cuda_init(&opt, &host);
        TIME_MEDIAN(ms, &tm, lrsa_adamw_step_cuda(&opt, param, grad, p16, 1e-4, scale, 0));
        row("adamw (fp32 master, bf16 copy-out)", ms, 30.0 * (double)n_params, copy_gbs);
        lrsa_adamw_cuda_free(&opt);
        free(host.m);
        free(host.v);
        void *bufs[] = {param, grad, p16, ws, norm, scale};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) lrsa_dev_free(bufs[i]);
    }
    timer_free(&tm);
    return 0;
}
#endif
