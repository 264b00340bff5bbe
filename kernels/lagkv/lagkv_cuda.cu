// LagKV scoring and top-k selection on the GPU: the twin of lrsa_lagkv_select_cpu
// (lagkv_cpu.c, ../shared/docs/lagkv-lrsa.md section 3). One launch covers every scored partition
// of every (sequence, KV head) of a layer: one thread block per partition.
//
// The selections must equal the CPU's on the same fp32 inputs, so the arithmetic follows the CPU
// order: every sum runs sequentially in the CPU's order with explicitly rounded operations
// (__fadd_rn etc. keep nvcc from contracting into FMAs, which x86 baseline C does not use), the
// exponential is computed in double and rounded (as glibc's expf effectively is), and division
// and sqrt are IEEE (the build never uses fast math). Min, max and the top-k ranking are exact.
// base/error.h is C11 (_Noreturn, C linkage); .cu files are C++.
#define _Noreturn [[noreturn]]
extern "C" {
#include "base/error.h"
#include "kernels/lagkv/lagkv.h"
}
#undef _Noreturn
#include "kernels/device/cuda_check.h"
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>

namespace {

__device__ inline float load_f(const float *p) {
    return *p;
}
__device__ inline float load_f(const __nv_bfloat16 *p) {
    return __bfloat162float(*p);
}

// s[t] = softmax over the L tokens of the unbiased channel std of (x[t]-mn)/max(mx-mn, 1e-6),
// min/max per channel over the L reference rows. mn/den: D floats of shared memory each.
template <typename T>
__device__ void lag_softmax_std(float *s, const T *x, const T *ref, int L, int D, int64_t stride,
                                float *mn, float *den, float *red) {
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        float lo = load_f(ref + c), hi = lo;
        for (int t = 1; t < L; t++) {
            float r = load_f(ref + (int64_t)t * stride + c);
            if (r < lo) lo = r;
            if (r > hi) hi = r;
        }
        float range = __fsub_rn(hi, lo);
        mn[c] = lo;
        den[c] = range > 1e-6f ? range : 1e-6f; // [decision] guard constant channels
    }
    __syncthreads();
    for (int t = threadIdx.x; t < L; t += blockDim.x) {
        const T *xt = x + (int64_t)t * stride;
        float mean = 0.0f;
        for (int c = 0; c < D; c++)
            mean = __fadd_rn(mean, __fdiv_rn(__fsub_rn(load_f(xt + c), mn[c]), den[c]));
        mean = __fdiv_rn(mean, (float)D);
        float ss = 0.0f;
        for (int c = 0; c < D; c++) {
            float dz = __fsub_rn(__fdiv_rn(__fsub_rn(load_f(xt + c), mn[c]), den[c]), mean);
            ss = __fadd_rn(ss, __fmul_rn(dz, dz));
        }
        s[t] = D > 1 ? __fsqrt_rn(__fdiv_rn(ss, (float)(D - 1))) : 0.0f;
    }
    __syncthreads();
    if (threadIdx.x == 0) { // sequential, in the CPU's order, so the sums round identically
        float smax = -INFINITY;
        for (int t = 0; t < L; t++)
            if (s[t] > smax) smax = s[t];
        float sum = 0.0f;
        for (int t = 0; t < L; t++) {
            s[t] = (float)exp((double)__fsub_rn(s[t], smax));
            sum = __fadd_rn(sum, s[t]);
        }
        red[0] = sum;
    }
    __syncthreads();
    float sum = red[0];
    for (int t = threadIdx.x; t < L; t += blockDim.x) s[t] = __fdiv_rn(s[t], sum);
    __syncthreads();
}

// Whether token u ranks before token t: descending score, NaN last, ties to the lower position.
__device__ inline bool ranks_before(float su, int u, float st, int t) {
    bool un = isnan(su), tn = isnan(st);
    if (un != tn) return tn;
    if (!un && su != st) return su > st;
    return u < t;
}

// Block (b, g, j): scores partition j of sequence b, KV head g and writes its kk kept positions.
template <typename T>
__global__ void lagkv_select_kernel(int32_t *sel, float *scores, const T *k, const T *v, int T_len,
                                    int Hkv, int D, int64_t kv_stride, int S, int L, int kk, int ns,
                                    float w) {
    extern __shared__ float smem[];
    float *mn = smem, *den = mn + D, *sk = den + D, *sv = sk + L, *red = sv + L;
    int *rank = (int *)(red + 1);
    int j = blockIdx.x % ns, bg = blockIdx.x / ns; // bg = b*Hkv + g
    int b = bg / Hkv, g = bg % Hkv;
    int start = S + j * L;
    int64_t off = ((int64_t)b * T_len + start) * kv_stride + (int64_t)g * D;
    int64_t ref = (int64_t)L * kv_stride;
    lag_softmax_std(sk, k + off, k + off + ref, L, D, kv_stride, mn, den, red);
    lag_softmax_std(sv, v + off, v + off + ref, L, D, kv_stride, mn, den, red);
    for (int t = threadIdx.x; t < L; t += blockDim.x) sk[t] = __fadd_rn(sk[t], __fmul_rn(w, sv[t]));
    __syncthreads();
    // Rank of each token in the total order; the kept ones are ranks 0..kk-1.
    for (int t = threadIdx.x; t < L; t += blockDim.x) {
        float st = sk[t];
        int r = 0;
        for (int u = 0; u < L; u++) r += ranks_before(sk[u], u, st, t);
        rank[t] = r;
    }
    __syncthreads();
    int32_t *out = sel + ((int64_t)bg * ns + j) * kk;
    for (int t = threadIdx.x; t < L; t += blockDim.x) {
        if (rank[t] >= kk) continue;
        int slot = 0; // kept tokens before t: the ascending output slot
        for (int u = 0; u < t; u++) slot += rank[u] < kk;
        out[slot] = start + t;
    }
    if (scores) {
        float *srow = scores + (int64_t)bg * T_len + start;
        for (int t = threadIdx.x; t < L; t += blockDim.x) srow[t] = sk[t];
    }
}

__global__ void fill_kernel(float *x, int64_t n, float val) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] = val;
}

template <typename T>
void select_launch(int32_t *sel, float *scores, const T *k, const T *v, int B, int T_len, int Hkv,
                   int D, int64_t kv_stride, const lrsa_lagkv_params *p, void *stream) {
    LRSA_CHECK(p->lag > 0 && p->sink >= 0, "(LagKV parameters must be validated first)");
    cudaStream_t st = (cudaStream_t)stream;
    int ns = lrsa_lagkv_num_scored(T_len, p), kk = lrsa_lagkv_k(p), L = p->lag;
    if (scores && (int64_t)B * Hkv * T_len > 0) {
        int64_t n = (int64_t)B * Hkv * T_len;
        int blocks = (int)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
        fill_kernel<<<blocks, 256, 0, st>>>(scores, n, INFINITY);
        CUDA_CHECK(cudaGetLastError());
    }
    int64_t nblocks = (int64_t)B * Hkv * ns;
    if (nblocks == 0 || (kk == 0 && !scores)) return;
    LRSA_CHECK(nblocks < 2147483647LL, "(LagKV selection: too many partitions for one launch)");
    size_t smem = sizeof(float) * ((size_t)2 * D + (size_t)2 * L + 1) + sizeof(int) * (size_t)L;
    int dev = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (smem > (size_t)optin)
        lrsa_fatal(__FILE__, __LINE__,
                   "LagKV selection needs %zu bytes of shared memory per block (lag %d, head dim "
                   "%d); the device allows %d: use a smaller lag",
                   smem, L, D, optin);
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(lagkv_select_kernel<T>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    lagkv_select_kernel<T><<<(unsigned)nblocks, 256, smem, st>>>(
        sel, scores, k, v, T_len, Hkv, D, kv_stride, p->sink, L, kk, ns, p->value_weight);
    CUDA_CHECK(cudaGetLastError());
}

} // namespace

extern "C" void lrsa_lagkv_select_cuda(int32_t *sel, float *scores, const float *k, const float *v,
                                       int B, int T, int Hkv, int D, int64_t kv_stride,
                                       const lrsa_lagkv_params *p, void *stream) {
    select_launch(sel, scores, k, v, B, T, Hkv, D, kv_stride, p, stream);
}

extern "C" void lrsa_lagkv_select_cuda_bf16(int32_t *sel, float *scores, const uint16_t *k,
                                            const uint16_t *v, int B, int T, int Hkv, int D,
                                            int64_t kv_stride, const lrsa_lagkv_params *p,
                                            void *stream) {
    select_launch(sel, scores, (const __nv_bfloat16 *)k, (const __nv_bfloat16 *)v, B, T, Hkv, D,
                  kv_stride, p, stream);
}
