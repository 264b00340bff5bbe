// The KV cache on the GPU (kv_cache_gpu.h): layout, kernels and the cached forward.
// Rows of (layer l, KV head g) live at k/v + ((l*Hkv + g)*cap + row)*D (bf16) with their
// original positions at pos + (l*Hkv + g)*cap + row. Lengths and LagKV bases are host state
// (every head of a layer has the same length under LagKV and the full cache, as on the CPU).
// cuda_check.h first: it makes autograd/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "eval/run/kv_cache_gpu.h"
#include "kernels/device/device_buffer.h"
#include "model/device_ops.h"
}
#include <cuda_bf16.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device/launch_cuda.cuh"

typedef __nv_bfloat16 bf16;

struct lrsa_kv_cache_gpu {
    const lrsa_model *m;
    lrsa_device_ops *ops;
    cudaStream_t st;
    int L, Hq, Hkv, D, C, V;
    int lagkv_on, compress; // LagKV configured; compressing now (0 once frozen)
    lrsa_lagkv_params lagkv;
    int64_t max_tokens, max_chunk, cap, seen;
    int64_t *len, *base; // host, [L*Hkv]
    bf16 *k, *v;         // [L*Hkv*cap*D]
    int32_t *pos;        // [L*Hkv*cap]
    // lrsa_kv_cache_gpu_save's copy: rows (allocated at the first save), lengths, bases, state
    bf16 *save_k, *save_v;
    int32_t *save_pos;
    int64_t *save_len, *save_base, save_seen;
    int save_compress, saved;
    bf16 *sk, *sv;       // compaction scratch [cap*D]
    int32_t *spos, *sel; // [cap], [cap]
    lrsa_bf16 *param;    // the model's weights, bf16, table layout
    lrsa_block_env env;
    void *x, *qkv, *att;   // [max_chunk, C], [.., (Hq+2Hkv)D], [.., Hq D] bf16
    int32_t *ids, *pos_in; // [max_chunk]
    float *logits;         // [max_chunk, V]
};

namespace {

enum { ATT_THREADS = 128, ATT_TILE = 128 };

// Block (n, g): copies the chunk's row n of KV head g to cache row len0 + n of every head's
// arrays (one layer), with its position.
__global__ void append_kernel(bf16 *k, bf16 *v, int32_t *pos, const bf16 *qkv, int64_t row, int Hq,
                              int D, int64_t cap, int64_t len0, int32_t pos0) {
    int n = blockIdx.x, g = blockIdx.y, Hkv = gridDim.y;
    const bf16 *src_k = qkv + (int64_t)n * row + (int64_t)(Hq + g) * D;
    const bf16 *src_v = qkv + (int64_t)n * row + (int64_t)(Hq + Hkv + g) * D;
    int64_t dst = ((int64_t)g * cap + len0 + n) * D;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        k[dst + c] = src_k[c];
        v[dst + c] = src_v[c];
    }
    if (threadIdx.x == 0) pos[(int64_t)g * cap + len0 + n] = pos0 + n;
}

__device__ float block_max(float x, float *scratch) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < nwarps; w++) m = fmaxf(m, scratch[w]);
    return m;
}

// Block (n, h): query row n of head h against rows [0, len0 + n] of KV head h / (Hq/Hkv), one
// online softmax over tiles of ATT_TILE rows (a thread per row for the scores, a thread per
// channel for the output). fp32 arithmetic, bf16 output.
__global__ void __launch_bounds__(ATT_THREADS)
    cache_attention_kernel(bf16 *att, const bf16 *qkv, int64_t row, const bf16 *kc, const bf16 *vc,
                           int64_t cap, int64_t len0, int Hkv, int D, float scale) {
    __shared__ float q[128], p[ATT_TILE], scratch[32];
    const int n = blockIdx.x, h = blockIdx.y, Hq = gridDim.y, g = h / (Hq / Hkv);
    const bf16 *k = kc + (int64_t)g * cap * D, *v = vc + (int64_t)g * cap * D;
    for (int c = threadIdx.x; c < D; c += blockDim.x)
        q[c] = __bfloat162float(qkv[(int64_t)n * row + (int64_t)h * D + c]) * scale;
    const int64_t vis = len0 + n + 1;
    float m = -INFINITY, l = 0.0f, acc = 0.0f; // acc: channel threadIdx.x
    for (int64_t j0 = 0; j0 < vis; j0 += ATT_TILE) {
        __syncthreads(); // q written; p free
        int64_t j = j0 + threadIdx.x;
        float s = -INFINITY;
        if (j < vis) {
            s = 0.0f;
            for (int c = 0; c < D; c++) s += q[c] * __bfloat162float(k[j * D + c]);
        }
        float mt = fmaxf(m, block_max(s, scratch));
        p[threadIdx.x] = j < vis ? expf(s - mt) : 0.0f;
        __syncthreads();
        float alpha = expf(m - mt), sum = 0.0f;
        int nj = (int)(vis - j0 < (int64_t)ATT_TILE ? vis - j0 : (int64_t)ATT_TILE);
        for (int t = 0; t < nj; t++) sum += p[t];
        if ((int)threadIdx.x < D) {
            float a = acc * alpha;
            for (int t = 0; t < nj; t++)
                a += p[t] * __bfloat162float(v[(j0 + t) * D + threadIdx.x]);
            acc = a;
        }
        l = l * alpha + sum;
        m = mt;
    }
    if ((int)threadIdx.x < D)
        att[(int64_t)n * Hq * D + (int64_t)h * D + threadIdx.x] = __float2bfloat16_rn(acc / l);
}

// One LagKV event on one head: rows [base, base + ns*kk) <- the kept rows of the ns scored
// partitions (sel: positions relative to base, ascending per partition), then the unscored tail
// [base + ns*L, len) follows. Gathered into scratch first (rows only move forward, but blocks
// run in any order).
__global__ void compact_gather_kernel(bf16 *sk, bf16 *sv, int32_t *spos, const bf16 *k,
                                      const bf16 *v, const int32_t *pos, const int32_t *sel,
                                      int64_t base, int ns, int kk, int L, int D) {
    int64_t r = blockIdx.x, src;
    if (r < (int64_t)ns * kk) {
        int j = (int)(r / kk);
        int32_t s = sel[r];
        if (s < j * L || s >= (j + 1) * L) __trap(); // not from its partition
        src = base + s;
    } else {
        src = base + (int64_t)ns * L + (r - (int64_t)ns * kk);
    }
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        sk[r * D + c] = k[src * D + c];
        sv[r * D + c] = v[src * D + c];
    }
    if (threadIdx.x == 0) spos[r] = pos[src];
}

int64_t head_index(const lrsa_kv_cache_gpu *c, int layer, int g) {
    return (int64_t)layer * c->Hkv + g;
}

void head_event(lrsa_kv_cache_gpu *c, int layer, int g) {
    const int64_t hi = head_index(c, layer, g), L = c->lagkv.lag;
    const int64_t len = c->len[hi], base = c->base[hi];
    if (len < base + 2 * L) return;
    const int64_t n = (len - base) / L;
    const int ns = (int)(n - 1), kk = lrsa_lagkv_k(&c->lagkv);
    const int D = c->D;
    bf16 *k = c->k + hi * c->cap * D, *v = c->v + hi * c->cap * D;
    int32_t *pos = c->pos + hi * c->cap;
    lrsa_lagkv_params p = c->lagkv;
    p.sink = 0; // the region starts at base
    if (kk > 0)
        lrsa_lagkv_select_cuda_bf16(c->sel, NULL, (const lrsa_bf16 *)(k + base * D),
                                    (const lrsa_bf16 *)(v + base * D), 1, (int)(n * L), 1, D, D, &p,
                                    (void *)c->st);
    const int64_t moved = (int64_t)ns * kk + (len - base - (int64_t)ns * L);
    if (moved > 0) {
        compact_gather_kernel<<<(unsigned)moved, 64, 0, c->st>>>(c->sk, c->sv, c->spos, k, v, pos,
                                                                 c->sel, base, ns, kk, (int)L, D);
        CUDA_CHECK(cudaGetLastError());
        size_t rows = (size_t)moved;
        CUDA_CHECK(cudaMemcpyAsync(k + base * D, c->sk, rows * D * sizeof(bf16),
                                   cudaMemcpyDeviceToDevice, c->st));
        CUDA_CHECK(cudaMemcpyAsync(v + base * D, c->sv, rows * D * sizeof(bf16),
                                   cudaMemcpyDeviceToDevice, c->st));
        CUDA_CHECK(cudaMemcpyAsync(pos + base, c->spos, rows * sizeof(int32_t),
                                   cudaMemcpyDeviceToDevice, c->st));
    }
    c->base[hi] = base + (int64_t)ns * kk;
    c->len[hi] = base + moved;
}

// Rows one head can hold: everything for a full cache; under LagKV the sink, k rows per
// partition that can be scored within max_tokens, the uncompressed tail (< 2L after an event)
// and then one chunk, or, once frozen, the max_frozen rows appended without compression.
int64_t head_capacity(const lrsa_lagkv_params *p, int compress, int64_t max_tokens,
                      int64_t max_chunk, int64_t max_frozen) {
    if (!compress) return max_tokens;
    int64_t parts = max_tokens / p->lag + 1;
    int64_t tail = max_chunk > max_frozen ? max_chunk : max_frozen;
    int64_t cap = p->sink + parts * lrsa_lagkv_k(p) + 2 * (int64_t)p->lag + tail;
    return cap < max_tokens ? cap : max_tokens;
}

} // namespace

extern "C" lrsa_kv_cache_gpu *lrsa_kv_cache_gpu_new(const lrsa_model *m,
                                                    const lrsa_lagkv_params *lagkv,
                                                    int64_t max_tokens, int64_t max_chunk,
                                                    int64_t max_frozen, lrsa_err *e) {
    const lrsa_model_config *cfg = &m->cfg;
    if (lagkv && lrsa_lagkv_validate(lagkv, e)) return NULL;
    if (max_chunk > max_tokens) max_chunk = max_tokens;
    LRSA_CHECK(max_tokens > 0 && max_tokens < INT32_MAX && max_chunk > 0);
    lrsa_cuda_plan plan = {1, (int)max_tokens, 0, {0, 1, 1.0f, 1.0f}, 0, 0};
    lrsa_device_ops *ops = lrsa_device_ops_cuda_new(cfg, m->inv_freq, &plan, e);
    if (!ops) return NULL;
    lrsa_kv_cache_gpu *c = (lrsa_kv_cache_gpu *)lrsa_calloc(1, sizeof *c);
    c->m = m;
    c->ops = ops;
    c->st = (cudaStream_t)lrsa_device_ops_cuda_stream(ops);
    c->L = cfg->num_hidden_layers;
    c->Hq = cfg->num_attention_heads;
    c->Hkv = cfg->num_key_value_heads;
    c->D = cfg->head_dim;
    c->C = cfg->hidden_size;
    c->V = cfg->vocab_size;
    c->lagkv_on = c->compress = lagkv != NULL;
    if (lagkv) c->lagkv = *lagkv;
    c->max_tokens = max_tokens;
    c->max_chunk = max_chunk;
    c->cap = head_capacity(&c->lagkv, c->lagkv_on, max_tokens, max_chunk,
                           max_frozen > 0 ? max_frozen : 0);
    const int64_t heads = (int64_t)c->L * c->Hkv, D = c->D, I = cfg->intermediate_size;
    c->len = (int64_t *)lrsa_calloc((size_t)heads, sizeof(int64_t));
    c->base = (int64_t *)lrsa_calloc((size_t)heads, sizeof(int64_t));
    c->save_len = (int64_t *)lrsa_calloc((size_t)heads, sizeof(int64_t));
    c->save_base = (int64_t *)lrsa_calloc((size_t)heads, sizeof(int64_t));
    void *(*A)(void *, size_t) = ops->alloc;
    c->k = (bf16 *)A(ops->ctx, sizeof(bf16) * (size_t)(heads * c->cap * D));
    c->v = (bf16 *)A(ops->ctx, sizeof(bf16) * (size_t)(heads * c->cap * D));
    c->pos = (int32_t *)A(ops->ctx, sizeof(int32_t) * (size_t)(heads * c->cap));
    c->sk = (bf16 *)A(ops->ctx, sizeof(bf16) * (size_t)(c->cap * D));
    c->sv = (bf16 *)A(ops->ctx, sizeof(bf16) * (size_t)(c->cap * D));
    c->spos = (int32_t *)A(ops->ctx, sizeof(int32_t) * (size_t)c->cap);
    c->sel = (int32_t *)A(ops->ctx, sizeof(int32_t) * (size_t)c->cap);
    const int64_t n = m->table.numel, ch = max_chunk;
    c->param = (lrsa_bf16 *)A(ops->ctx, sizeof(lrsa_bf16) * (size_t)n);
    lrsa_bf16 *hp = (lrsa_bf16 *)lrsa_malloc(sizeof(lrsa_bf16) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) hp[i] = lrsa_f32_to_bf16(m->table.arena[LRSA_ROLE_PARAM][i]);
    ops->upload(ops->ctx, c->param, hp, sizeof(lrsa_bf16) * (size_t)n);
    lrsa_device_ops_sync(ops);
    free(hp);
    c->env.ops = ops;
    c->env.param = c->param;
    c->env.h = A(ops->ctx, 2 * (size_t)(ch * c->C));
    c->env.tmp = A(ops->ctx, 2 * (size_t)(ch * c->C));
    c->env.gu = A(ops->ctx, 2 * (size_t)(ch * 2 * I));
    c->env.act = A(ops->ctx, 2 * (size_t)(ch * I));
    c->x = A(ops->ctx, 2 * (size_t)(ch * c->C));
    c->qkv = A(ops->ctx, 2 * (size_t)(ch * (c->Hq + 2 * c->Hkv) * D));
    c->att = A(ops->ctx, 2 * (size_t)(ch * c->Hq * D));
    c->ids = (int32_t *)A(ops->ctx, sizeof(int32_t) * (size_t)ch);
    c->pos_in = (int32_t *)A(ops->ctx, sizeof(int32_t) * (size_t)ch);
    c->logits = (float *)A(ops->ctx, sizeof(float) * (size_t)(ch * c->V));
    lrsa_kv_cache_gpu_reset(c);
    return c;
}

extern "C" void lrsa_kv_cache_gpu_free(lrsa_kv_cache_gpu *c) {
    if (!c) return;
    lrsa_device_ops_sync(c->ops);
    void *bufs[] = {c->k,   c->v,     c->pos,   c->sk,      c->sv,     c->spos,
                    c->sel, c->param, c->env.h, c->env.tmp, c->env.gu, c->env.act,
                    c->x,   c->qkv,   c->att,   c->ids,     c->pos_in, c->logits};
    for (void *b : bufs) c->ops->free(c->ops->ctx, b);
    if (c->save_k) {
        void *saved[] = {c->save_k, c->save_v, c->save_pos};
        for (void *b : saved) c->ops->free(c->ops->ctx, b);
    }
    lrsa_device_ops_cuda_free(c->ops);
    free(c->len);
    free(c->base);
    free(c->save_len);
    free(c->save_base);
    free(c);
}

extern "C" void lrsa_kv_cache_gpu_reset(lrsa_kv_cache_gpu *c) {
    const int64_t heads = (int64_t)c->L * c->Hkv;
    for (int64_t i = 0; i < heads; i++) {
        c->len[i] = 0;
        c->base[i] = c->lagkv_on ? c->lagkv.sink : 0;
    }
    c->seen = 0;
    c->compress = c->lagkv_on;
    c->saved = 0;
}

extern "C" void lrsa_kv_cache_gpu_freeze(lrsa_kv_cache_gpu *c) {
    c->compress = 0;
}

extern "C" void lrsa_kv_cache_gpu_save(lrsa_kv_cache_gpu *c) {
    const int64_t heads = (int64_t)c->L * c->Hkv;
    const size_t rows = (size_t)(heads * c->cap), kv = sizeof(bf16) * rows * (size_t)c->D;
    if (!c->save_k) { // allocated once, at the first save (a run that never saves pays nothing)
        c->save_k = (bf16 *)c->ops->alloc(c->ops->ctx, kv);
        c->save_v = (bf16 *)c->ops->alloc(c->ops->ctx, kv);
        c->save_pos = (int32_t *)c->ops->alloc(c->ops->ctx, sizeof(int32_t) * rows);
    }
    CUDA_CHECK(cudaMemcpyAsync(c->save_k, c->k, kv, cudaMemcpyDeviceToDevice, c->st));
    CUDA_CHECK(cudaMemcpyAsync(c->save_v, c->v, kv, cudaMemcpyDeviceToDevice, c->st));
    CUDA_CHECK(cudaMemcpyAsync(c->save_pos, c->pos, sizeof(int32_t) * rows,
                               cudaMemcpyDeviceToDevice, c->st));
    memcpy(c->save_len, c->len, sizeof(int64_t) * (size_t)heads);
    memcpy(c->save_base, c->base, sizeof(int64_t) * (size_t)heads);
    c->save_seen = c->seen;
    c->save_compress = c->compress;
    c->saved = 1;
}

extern "C" void lrsa_kv_cache_gpu_restore(lrsa_kv_cache_gpu *c) {
    LRSA_CHECK(c->saved, "(restore without a save since the last reset)");
    const int64_t heads = (int64_t)c->L * c->Hkv;
    const size_t rows = (size_t)(heads * c->cap), kv = sizeof(bf16) * rows * (size_t)c->D;
    CUDA_CHECK(cudaMemcpyAsync(c->k, c->save_k, kv, cudaMemcpyDeviceToDevice, c->st));
    CUDA_CHECK(cudaMemcpyAsync(c->v, c->save_v, kv, cudaMemcpyDeviceToDevice, c->st));
    CUDA_CHECK(cudaMemcpyAsync(c->pos, c->save_pos, sizeof(int32_t) * rows,
                               cudaMemcpyDeviceToDevice, c->st));
    memcpy(c->len, c->save_len, sizeof(int64_t) * (size_t)heads);
    memcpy(c->base, c->save_base, sizeof(int64_t) * (size_t)heads);
    c->seen = c->save_seen;
    c->compress = c->save_compress;
}

extern "C" void lrsa_kv_cache_gpu_forward(lrsa_kv_cache_gpu *c, const int32_t *ids, int64_t N,
                                          float *logits, int all_logits) {
    LRSA_CHECK(N > 0 && N <= c->max_chunk, "(a forward of %lld tokens; planned %lld)", (long long)N,
               (long long)c->max_chunk);
    LRSA_CHECK(c->seen + N <= c->max_tokens,
               "(the GPU cache was planned for %lld tokens; %lld would be fed)",
               (long long)c->max_tokens, (long long)(c->seen + N));
    const lrsa_device_ops *o = c->ops;
    const int64_t row = (int64_t)(c->Hq + 2 * c->Hkv) * c->D;
    int32_t *pos = (int32_t *)lrsa_malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t i = 0; i < N; i++) pos[i] = (int32_t)(c->seen + i);
    o->upload(o->ctx, c->ids, ids, sizeof(int32_t) * (size_t)N);
    o->upload(o->ctx, c->pos_in, pos, sizeof(int32_t) * (size_t)N);
    lrsa_block_embed(c->m, &c->env, c->ids, N, c->x);
    for (int l = 0; l < c->L; l++) {
        const int64_t h0 = head_index(c, l, 0), len0 = c->len[h0];
        for (int g = 1; g < c->Hkv; g++)
            LRSA_CHECK(c->len[h0 + g] == len0, "(heads of a layer differ in length)");
        LRSA_CHECK(len0 + N <= c->cap, "(GPU cache head full: %lld + %lld rows > %lld)",
                   (long long)len0, (long long)N, (long long)c->cap);
        lrsa_block_layer_qkv(c->m, &c->env, l, c->x, c->pos_in, N, c->qkv);
        bf16 *k = c->k + h0 * c->cap * c->D, *v = c->v + h0 * c->cap * c->D;
        append_kernel<<<dim3((unsigned)N, (unsigned)c->Hkv), 64, 0, c->st>>>(
            k, v, c->pos + h0 * c->cap, (const bf16 *)c->qkv, row, c->Hq, c->D, c->cap, len0,
            (int32_t)c->seen);
        CUDA_CHECK(cudaGetLastError());
        cache_attention_kernel<<<dim3((unsigned)N, (unsigned)c->Hq), ATT_THREADS, 0, c->st>>>(
            (bf16 *)c->att, (const bf16 *)c->qkv, row, k, v, c->cap, len0, c->Hkv, c->D,
            1.0f / sqrtf((float)c->D));
        CUDA_CHECK(cudaGetLastError());
        for (int g = 0; g < c->Hkv; g++) c->len[h0 + g] = len0 + N;
        lrsa_block_layer_out(c->m, &c->env, l, c->x, c->att, N);
    }
    if (logits) {
        int64_t rows = all_logits ? N : 1;
        const void *xs = (const char *)c->x + (size_t)(N - rows) * c->C * sizeof(bf16);
        lrsa_block_final_logits(c->m, &c->env, xs, rows, c->logits);
        o->download(o->ctx, logits, c->logits, sizeof(float) * (size_t)(rows * c->V));
    }
    c->seen += N;
    free(pos);
    if (c->compress) // use, then compress
        for (int l = 0; l < c->L; l++)
            for (int g = 0; g < c->Hkv; g++) head_event(c, l, g);
}

extern "C" int lrsa_kv_cache_gpu_prefill(lrsa_kv_cache_gpu *c, const int32_t *ids, int64_t n,
                                         lrsa_prefill_mode mode, float *logits, int all_logits,
                                         lrsa_err *e) {
    if (n <= 0) return lrsa_errorf(e, "prefill: the prompt is empty; give at least one token");
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->V)
            return lrsa_errorf(e, "prefill: token %lld has id %d, outside the vocabulary [0, %d)",
                               (long long)i, ids[i], c->V);
    if (mode == LRSA_PREFILL_ONESHOT && c->compress && n > c->max_chunk)
        return lrsa_errorf(e,
                           "prefill: a one-shot prefill of %lld tokens needs a GPU cache planned "
                           "for chunks of that size (max_chunk %lld)",
                           (long long)n, (long long)c->max_chunk);
    int64_t done = 0;
    while (done < n) {
        int64_t end = n;
        if (mode != LRSA_PREFILL_ONESHOT && c->compress)
            end = lrsa_chunk_end(c->seen, &c->lagkv) - c->seen + done;
        if (end > n) end = n;
        if (end - done > c->max_chunk) end = done + c->max_chunk;
        float *out = NULL;
        if (logits && all_logits)
            out = logits + done * (int64_t)c->V;
        else if (logits && end == n)
            out = logits;
        lrsa_kv_cache_gpu_forward(c, ids + done, end - done, out, all_logits);
        done = end;
    }
    return 0;
}

extern "C" int64_t lrsa_kv_cache_gpu_seen(const lrsa_kv_cache_gpu *c) {
    return c->seen;
}

extern "C" int64_t lrsa_kv_cache_gpu_head(const lrsa_kv_cache_gpu *c, int layer, int g,
                                          int32_t *pos, int64_t *base) {
    const int64_t hi = head_index(c, layer, g);
    if (pos) c->ops->download(c->ops->ctx, pos, c->pos + hi * c->cap, sizeof(int32_t) * c->len[hi]);
    if (base) *base = c->base[hi];
    return c->len[hi];
}

extern "C" size_t lrsa_kv_cache_gpu_bytes(const lrsa_kv_cache_gpu *c) {
    return 2 * sizeof(bf16) * (size_t)c->L * c->Hkv * (size_t)c->cap * c->D;
}
