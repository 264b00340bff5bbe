// Fused final RMSNorm + LM head + cross-entropy on the GPU, the twin of lm_head_loss_cpu.c.
//
// Only rows with a nonzero loss weight are computed. One single-block kernel compacts their
// indices (in row order, so chunks hold the same rows as on the CPU) and validates their targets;
// the count comes back to the host once to size the chunk loop (or, in the capture-safe form,
// the caller gives it and the kernel checks it on the device). Per chunk of gathered rows:
//   norm+gather -> xn (bf16) and rstd (fp32)
//   cuBLASLt    -> logits[chunk, V] (fp32: the logsumexp needs more than bf16's 8 bits)
//   softmax     -> nll per row, and dlogits = (softmax - onehot) * weight as bf16 for the matmuls
//   cuBLASLt    -> dW += dlogits^T xn (fp32 accumulate), dxn = dlogits W (fp32)
//   norm bwd    -> dh rows (bf16, scattered), dnorm_w += (fixed-order column sums)
// The loss is summed in double over the active rows in a fixed order: no atomics anywhere, so
// two identical calls give identical bits.
extern "C" {
#include "kernels/lm_head_loss/lm_head_loss.h"
}
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/device/cuda_check.h"

enum {
    LM_CUDA_CHUNK_MAX = 1024, // rows per chunk; beyond this the matmuls gain little
    LM_CUDA_CHUNK_MIN = 16,
    // The matmuls see row counts rounded up to this: a training run's varying active-row counts
    // then map onto a few cached cuBLASLt plans instead of a new plan per remainder.
    LM_ROW_GRANULE = 64,
    LM_THREADS = 256, // norm kernels: one block per row
    LM_SOFTMAX_THREADS = 512,
    LM_COMPACT_THREADS = 1024,
    LM_COLS = 32, // dnorm_w kernel: columns per block
    LM_ROWS = 32, // ... and row lanes per block
};
#define LM_CUDA_LOGITS_BUDGET ((size_t)256 << 20) // bytes for the fp32 + bf16 [chunk, V] buffers

struct lrsa_lm_head_loss_ctx {
    lrsa_linear_cuda *gemm;
    cudaStream_t stream;
    int64_t max_n;
    int C, V, chunk;
    int ldv;               // row stride of the [chunk, V] buffers: V rounded up to 8 elements
    int32_t *idx;          // [max_n] active rows in order
    int32_t *count_bad;    // [2] device: active count, first active row with a bad target (or -1)
    float *row_nll;        // [max_n] nll of the a-th active row
    __nv_bfloat16 *xn;     // [chunk, C]
    float *rstd;           // [chunk]
    float *logits;         // [chunk, ldv]
    __nv_bfloat16 *dlogit; // [chunk, ldv]
    float *dxn;            // [chunk, C]
};

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}

extern "C" lrsa_lm_head_loss_ctx *
lrsa_lm_head_loss_cuda_create(lrsa_linear_cuda *gemm, int64_t max_n, int C, int V, int chunk_rows) {
    LRSA_CHECK(max_n > 0 && max_n < INT32_MAX && C > 0 && V > 0, "(max_n %lld, C %d, V %d)",
               (long long)max_n, C, V);
    lrsa_lm_head_loss_ctx *c = (lrsa_lm_head_loss_ctx *)lrsa_calloc(1, sizeof *c);
    c->gemm = gemm;
    c->stream = (cudaStream_t)lrsa_linear_cuda_stream(gemm);
    c->max_n = max_n;
    c->C = C;
    c->V = V;
    // 16-byte aligned rows whatever V is (an odd vocabulary after added tokens is common), so
    // the matmuls keep tensor-core kernels.
    c->ldv = (V + 7) / 8 * 8;
    int chunk = chunk_rows;
    if (chunk <= 0) {
        size_t r =
            LM_CUDA_LOGITS_BUDGET / ((size_t)c->ldv * (sizeof(float) + sizeof(__nv_bfloat16)));
        chunk = r > LM_CUDA_CHUNK_MAX ? LM_CUDA_CHUNK_MAX : (int)r;
        chunk = chunk < LM_CUDA_CHUNK_MIN ? LM_CUDA_CHUNK_MIN : chunk / 16 * 16;
    }
    if (chunk > max_n) chunk = (int)max_n;
    c->chunk = chunk;
    size_t cap = (size_t)(chunk + LM_ROW_GRANULE - 1) / LM_ROW_GRANULE * LM_ROW_GRANULE;
    size_t rc = cap * (size_t)C, rv = cap * (size_t)c->ldv;
    c->idx = (int32_t *)dev_alloc(sizeof(int32_t) * (size_t)max_n);
    c->count_bad = (int32_t *)dev_alloc(sizeof(int32_t) * 2);
    c->row_nll = (float *)dev_alloc(sizeof(float) * (size_t)max_n);
    c->xn = (__nv_bfloat16 *)dev_alloc(sizeof(__nv_bfloat16) * rc);
    c->rstd = (float *)dev_alloc(sizeof(float) * cap);
    c->logits = (float *)dev_alloc(sizeof(float) * rv);
    c->dlogit = (__nv_bfloat16 *)dev_alloc(sizeof(__nv_bfloat16) * rv);
    c->dxn = (float *)dev_alloc(sizeof(float) * rc);
    return c;
}

extern "C" void lrsa_lm_head_loss_cuda_destroy(lrsa_lm_head_loss_ctx *c) {
    if (!c) return;
    void *bufs[] = {c->idx, c->count_bad, c->row_nll, c->xn, c->rstd, c->logits, c->dlogit, c->dxn};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) CUDA_CHECK(cudaFree(bufs[i]));
    free(c);
}

extern "C" int lrsa_lm_head_loss_cuda_chunk_rows(const lrsa_lm_head_loss_ctx *c) {
    return c->chunk;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ static float block_sum(float v, float *shared32) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    __syncthreads(); // shared32 may still be read by a previous call
    if (lane == 0) shared32[warp] = v;
    __syncthreads();
    v = lane < nwarps ? shared32[lane] : 0.0f;
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Indices of rows with weight != 0, in row order, and the first such row whose target is outside
// [0, V). One block walks N in tiles: a ballot gives each warp its prefix, warp totals a block
// offset. With `fault` (the capture-safe form), a bad target or a count other than `expect` is
// recorded there unless an earlier fault is.
__global__ static void compact_kernel(int32_t *idx, int32_t *count_bad, int32_t *fault, int expect,
                                      const float *weight, const int32_t *targets, int64_t N,
                                      int V) {
    __shared__ int warp_total[LM_COMPACT_THREADS / 32];
    __shared__ int bad;
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    if (threadIdx.x == 0) bad = INT32_MAX;
    __syncthreads();
    int base = 0;
    for (int64_t t0 = 0; t0 < N; t0 += blockDim.x) {
        int64_t i = t0 + threadIdx.x;
        int active = i < N && weight[i] != 0.0f;
        if (active && (targets[i] < 0 || targets[i] >= V)) atomicMin(&bad, (int)i);
        unsigned ballot = __ballot_sync(0xffffffffu, active);
        int in_warp = __popc(ballot & ((1u << lane) - 1u));
        if (lane == 0) warp_total[warp] = __popc(ballot);
        __syncthreads();
        int before = 0, total = 0;
        for (int w = 0; w < nwarps; w++) {
            before += w < warp ? warp_total[w] : 0;
            total += warp_total[w];
        }
        if (active) idx[base + before + in_warp] = (int32_t)i;
        base += total;
        __syncthreads(); // warp_total is rewritten by the next tile
    }
    if (threadIdx.x == 0) {
        count_bad[0] = base;
        count_bad[1] = bad == INT32_MAX ? -1 : bad;
        if (fault && *fault == -1 && (bad != INT32_MAX || base != expect))
            *fault = bad != INT32_MAX ? bad : -2;
    }
}

// xn[r] = bf16((x * rstd) * w) for x = h[idx[r]]; rstd in fp32 as lrsa_rmsnorm_forward_cpu.
// Padding rows (r >= rows) become zeros, so they add nothing to dW.
__global__ static void norm_gather_kernel(__nv_bfloat16 *xn, float *rstd, const __nv_bfloat16 *h,
                                          const __nv_bfloat16 *norm_w, const int32_t *idx, int rows,
                                          int C, float eps) {
    __shared__ float red[32];
    int r = blockIdx.x;
    if (r >= rows) {
        for (int j = threadIdx.x; j < C; j += blockDim.x)
            xn[(int64_t)r * C + j] = __float2bfloat16(0.0f);
        return;
    }
    const __nv_bfloat16 *x = h + (int64_t)idx[r] * C;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        float v = __bfloat162float(x[j]);
        ss += v * v;
    }
    ss = block_sum(ss, red);
    float rs = 1.0f / sqrtf(ss / (float)C + eps);
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        xn[(int64_t)r * C + j] =
            __float2bfloat16((__bfloat162float(x[j]) * rs) * __bfloat162float(norm_w[j]));
    if (threadIdx.x == 0) rstd[r] = rs;
}

// Running (max, sum of exp(x - max)) pairs, merged so that an empty side (s == 0) is neutral.
__device__ static void lse_merge(float *m, float *s, float m2, float s2) {
    if (s2 == 0.0f) return;
    if (*s == 0.0f) {
        *m = m2;
        *s = s2;
        return;
    }
    float mx = fmaxf(*m, m2);
    *s = *s * expf(*m - mx) + s2 * expf(m2 - mx);
    *m = mx;
}

// One block per gathered row: logsumexp in fp32, nll = lse - logit[target]; with a gradient,
// dlogit = (softmax - onehot(target)) * weight, as the CPU writes over its logits. Padding rows
// (r >= rows) get zero gradients, so they add nothing to dW or dxn.
__global__ static void softmax_nll_kernel(__nv_bfloat16 *dlogit, float *row_nll, float *nll_out,
                                          const float *logits, const int32_t *idx,
                                          const int32_t *targets, const float *weight, int rows,
                                          int V, int ldv) {
    __shared__ float sm[32], ss[32];
    __shared__ float lse_shared;
    int r = blockIdx.x;
    if (r >= rows) {
        for (int v = threadIdx.x; dlogit && v < V; v += blockDim.x)
            dlogit[(int64_t)r * ldv + v] = __float2bfloat16(0.0f);
        return;
    }
    int64_t i = idx[r];
    const float *row = logits + (int64_t)r * ldv;
    float m = 0.0f, s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) lse_merge(&m, &s, row[v], 1.0f);
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    for (int o = 16; o > 0; o /= 2) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(&m, &s, m2, s2);
    }
    if (lane == 0) {
        sm[warp] = m;
        ss[warp] = s;
    }
    __syncthreads();
    if (warp == 0) {
        m = lane < nwarps ? sm[lane] : 0.0f;
        s = lane < nwarps ? ss[lane] : 0.0f;
        for (int o = 16; o > 0; o /= 2) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
            lse_merge(&m, &s, m2, s2);
        }
        if (lane == 0) lse_shared = m + logf(s);
    }
    __syncthreads();
    float lse = lse_shared;
    int t = targets[i];
    if (threadIdx.x == 0) { // a bad target (recorded by compact_kernel) gives NaN, not a wild read
        float nll = t >= 0 && t < V ? lse - row[t] : __int_as_float(0x7fc00000);
        row_nll[r] = nll;
        if (nll_out) nll_out[i] = nll;
    }
    if (!dlogit) return;
    float w = weight[i];
    __nv_bfloat16 *drow = dlogit + (int64_t)r * ldv;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float p = expf(row[v] - lse) * w;
        drow[v] = __float2bfloat16(v == t ? p - w : p);
    }
}

// dh[idx[r]] = rstd*(w*g) - (rstd^3/C * sum_k w_k g_k x_k) * x, with g = dxn[r] (as
// lrsa_rmsnorm_backward_cpu without a residual).
__global__ static void norm_backward_kernel(__nv_bfloat16 *dh, const float *dxn,
                                            const __nv_bfloat16 *h, const __nv_bfloat16 *norm_w,
                                            const float *rstd, const int32_t *idx, int C) {
    __shared__ float red[32];
    int r = blockIdx.x;
    int64_t i = idx[r];
    const __nv_bfloat16 *x = h + i * C;
    const float *g = dxn + (int64_t)r * C;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dot += (__bfloat162float(norm_w[j]) * g[j]) * __bfloat162float(x[j]);
    dot = block_sum(dot, red);
    float rs = rstd[r];
    float coef = dot * rs * rs * rs / (float)C;
    for (int j = threadIdx.x; j < C; j += blockDim.x)
        dh[i * C + j] = __float2bfloat16(rs * (__bfloat162float(norm_w[j]) * g[j]) -
                                         coef * __bfloat162float(x[j]));
}

// dnorm_w[j] += sum_r dxn[r, j] * (x[r, j] * rstd[r]): a block owns LM_COLS columns; its row
// lanes are summed in a fixed tree (deterministic, unlike atomics).
__global__ static void norm_weight_grad_kernel(float *dnorm_w, const float *dxn,
                                               const __nv_bfloat16 *h, const float *rstd,
                                               const int32_t *idx, int rows, int C) {
    __shared__ float part[LM_ROWS][LM_COLS + 1];
    int col = blockIdx.x * LM_COLS + threadIdx.x;
    float s = 0.0f;
    if (col < C)
        for (int r = threadIdx.y; r < rows; r += LM_ROWS)
            s += dxn[(int64_t)r * C + col] *
                 (__bfloat162float(h[(int64_t)idx[r] * C + col]) * rstd[r]);
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    for (int stride = LM_ROWS / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.y < stride)
            part[threadIdx.y][threadIdx.x] += part[threadIdx.y + stride][threadIdx.x];
        __syncthreads();
    }
    if (threadIdx.y == 0 && col < C) dnorm_w[col] += part[0][threadIdx.x];
}

// loss = sum_a weight[idx[a]] * row_nll[a] in double, strided per thread then a fixed tree;
// written, or added to *loss_out (accumulate).
__global__ static void loss_sum_kernel(double *loss_out, const float *row_nll, const int32_t *idx,
                                       const float *weight, int count, int accumulate) {
    __shared__ double part[LM_COMPACT_THREADS];
    double s = 0.0;
    for (int a = threadIdx.x; a < count; a += blockDim.x)
        s += (double)weight[idx[a]] * (double)row_nll[a];
    part[threadIdx.x] = s;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) part[threadIdx.x] += part[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) *loss_out = accumulate ? *loss_out + part[0] : part[0];
}

static void check_launch(void) {
    CUDA_CHECK(cudaGetLastError());
}

// The chunk loop over the `count` compacted rows (count known on the host), then the loss sum
// (written, or added to loss_out).
static void chunks_and_loss(lrsa_lm_head_loss_ctx *c, int count, double *loss_out, int accumulate,
                            float *nll_out, uint16_t *dh, float *dnorm_w, float *dW,
                            const uint16_t *h, const uint16_t *norm_w, const uint16_t *W,
                            const int32_t *targets, const float *weight, float eps) {
    const int C = c->C, V = c->V, ldv = c->ldv;
    cudaStream_t st = c->stream;
    const __nv_bfloat16 *hb = (const __nv_bfloat16 *)h, *nw = (const __nv_bfloat16 *)norm_w;
    for (int a0 = 0; a0 < count; a0 += c->chunk) {
        int rows = count - a0 < c->chunk ? count - a0 : c->chunk;
        int padded = (rows + LM_ROW_GRANULE - 1) / LM_ROW_GRANULE * LM_ROW_GRANULE;
        const int32_t *idx = c->idx + a0;
        norm_gather_kernel<<<padded, LM_THREADS, 0, st>>>(c->xn, c->rstd, hb, nw, idx, rows, C,
                                                          eps);
        check_launch();
        // logits[padded, V] = xn[padded, C] @ W[V, C]^T
        lrsa_gemm_bf16_cuda(c->gemm, 0, 1, padded, V, C, 1.0f, (const uint16_t *)c->xn, C, W, C,
                            0.0f, c->logits, ldv, 1, NULL);
        softmax_nll_kernel<<<padded, LM_SOFTMAX_THREADS, 0, st>>>(
            dh ? c->dlogit : NULL, c->row_nll + a0, nll_out, c->logits, idx, targets, weight, rows,
            V, ldv);
        check_launch();
        if (!dh) continue;
        const uint16_t *dl = (const uint16_t *)c->dlogit;
        if (dW) // dW[V, C] += dlogit^T @ xn
            lrsa_gemm_bf16_cuda(c->gemm, 1, 0, V, C, padded, 1.0f, dl, ldv, (const uint16_t *)c->xn,
                                C, 1.0f, dW, C, 1, NULL);
        // dxn[padded, C] = dlogit @ W (padding rows are zero and unused)
        lrsa_gemm_bf16_cuda(c->gemm, 0, 0, padded, C, V, 1.0f, dl, ldv, W, C, 0.0f, c->dxn, C, 1,
                            NULL);
        if (dnorm_w) {
            dim3 block(LM_COLS, LM_ROWS), grid((unsigned)((C + LM_COLS - 1) / LM_COLS));
            norm_weight_grad_kernel<<<grid, block, 0, st>>>(dnorm_w, c->dxn, hb, c->rstd, idx, rows,
                                                            C);
            check_launch();
        }
        norm_backward_kernel<<<rows, LM_THREADS, 0, st>>>((__nv_bfloat16 *)dh, c->dxn, hb, nw,
                                                          c->rstd, idx, C);
        check_launch();
    }
    if (count > 0) {
        loss_sum_kernel<<<1, LM_COMPACT_THREADS, 0, st>>>(loss_out, c->row_nll, c->idx, weight,
                                                          count, accumulate);
        check_launch();
    }
}

// The zeroed outputs and the compaction, common to both forms.
static void clear_and_compact(lrsa_lm_head_loss_ctx *c, int32_t *fault, int64_t expect,
                              float *nll_out, uint16_t *dh, const int32_t *targets,
                              const float *weight, int64_t N) {
    LRSA_CHECK(N >= 0 && N <= c->max_n, "(N %lld exceeds the context's max_n %lld)", (long long)N,
               (long long)c->max_n);
    cudaStream_t st = c->stream;
    if (nll_out) CUDA_CHECK(cudaMemsetAsync(nll_out, 0, sizeof(float) * (size_t)N, st));
    if (dh) CUDA_CHECK(cudaMemsetAsync(dh, 0, sizeof(uint16_t) * (size_t)N * (size_t)c->C, st));
    if (N == 0) return;
    compact_kernel<<<1, LM_COMPACT_THREADS, 0, st>>>(c->idx, c->count_bad, fault, (int)expect,
                                                     weight, targets, N, c->V);
    check_launch();
}

extern "C" int64_t lrsa_lm_head_loss_cuda(lrsa_lm_head_loss_ctx *c, double *loss_out,
                                          float *nll_out, uint16_t *dh, float *dnorm_w, float *dW,
                                          const uint16_t *h, const uint16_t *norm_w,
                                          const uint16_t *W, const int32_t *targets,
                                          const float *weight, int64_t N, float eps) {
    cudaStream_t st = c->stream;
    CUDA_CHECK(cudaMemsetAsync(loss_out, 0, sizeof(double), st)); // 0 bits are 0.0
    clear_and_compact(c, NULL, 0, nll_out, dh, targets, weight, N);
    if (N == 0) return 0;
    int32_t count_bad[2];
    CUDA_CHECK(
        cudaMemcpyAsync(count_bad, c->count_bad, sizeof count_bad, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    if (count_bad[1] >= 0)
        lrsa_fatal(__FILE__, __LINE__,
                   "lm_head_loss: the target of row %d is outside the vocabulary of %d",
                   count_bad[1], c->V);
    chunks_and_loss(c, count_bad[0], loss_out, 0, nll_out, dh, dnorm_w, dW, h, norm_w, W, targets,
                    weight, eps);
    return count_bad[0];
}

extern "C" void lrsa_lm_head_loss_cuda_async(lrsa_lm_head_loss_ctx *c, double *loss_acc,
                                             int32_t *fault, int64_t active, float *nll_out,
                                             uint16_t *dh, float *dnorm_w, float *dW,
                                             const uint16_t *h, const uint16_t *norm_w,
                                             const uint16_t *W, const int32_t *targets,
                                             const float *weight, int64_t N, float eps) {
    LRSA_CHECK(active >= 0 && active <= N && fault, "(active rows %lld of %lld)", (long long)active,
               (long long)N);
    clear_and_compact(c, fault, active, nll_out, dh, targets, weight, N);
    chunks_and_loss(c, (int)active, loss_acc, 1, nll_out, dh, dnorm_w, dW, h, norm_w, W, targets,
                    weight, eps);
}
