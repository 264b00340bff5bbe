// AdamW and the global gradient norm on the GPU, mirroring train/optim.c element for element.
// AdamW is one fused pass per element: decoupled weight decay (when the element lies in a decay
// range, found by binary search over the sorted ranges), moment updates, the parameter update,
// and the bf16 copy-out the next forward reads. The norm is a two-pass reduction with a fixed
// grid, so its bits never depend on scheduling or on the device's SM count.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "train/optim.h"
}
#include <cuda_bf16.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device/launch_cuda.cuh"
#include "train/adamw_cuda.cuh"

enum { NORM_BLOCKS = 1024, NORM_THREADS = 256, NORM_FINAL_THREADS = 256 };

static int cmp_range(const void *a, const void *b) {
    int64_t x = ((const lrsa_decay_range *)a)->lo, y = ((const lrsa_decay_range *)b)->lo;
    return (x > y) - (x < y);
}

extern "C" void lrsa_adamw_cuda_init(lrsa_adamw_cuda *o, const lrsa_adamw *host) {
    memset(o, 0, sizeof *o);
    o->beta1 = host->beta1;
    o->beta2 = host->beta2;
    o->eps = host->eps;
    o->weight_decay = host->weight_decay;
    o->lo = host->lo;
    o->hi = host->hi;
    o->t = host->t;
    int64_t n = host->hi - host->lo;
    if (n > 0) {
        o->m = (float *)lrsa_dev_alloc(sizeof(float) * (size_t)n);
        o->v = (float *)lrsa_dev_alloc(sizeof(float) * (size_t)n);
        lrsa_dev_upload(o->m, host->m, sizeof(float) * (size_t)n);
        lrsa_dev_upload(o->v, host->v, sizeof(float) * (size_t)n);
    }
    o->n_decay = host->n_decay;
    if (host->n_decay > 0) {
        size_t bytes = sizeof(lrsa_decay_range) * (size_t)host->n_decay;
        lrsa_decay_range *sorted = (lrsa_decay_range *)lrsa_malloc(bytes);
        memcpy(sorted, host->decay, bytes);
        qsort(sorted, (size_t)host->n_decay, sizeof *sorted, cmp_range);
        for (int r = 1; r < host->n_decay; r++)
            LRSA_CHECK(sorted[r].lo >= sorted[r - 1].hi, "(decay ranges overlap)");
        o->decay = (lrsa_decay_range *)lrsa_dev_alloc(bytes);
        lrsa_dev_upload(o->decay, sorted, bytes);
        free(sorted);
    }
}

extern "C" void lrsa_adamw_cuda_free(lrsa_adamw_cuda *o) {
    lrsa_dev_free(o->m);
    lrsa_dev_free(o->v);
    lrsa_dev_free(o->decay);
    memset(o, 0, sizeof *o);
}

static __global__ void adamw_kernel(float *param, const float *grad, float *m, float *v,
                                    __nv_bfloat16 *param_bf16, const lrsa_decay_range *decay,
                                    int n_decay, int64_t lo, int64_t n, lrsa_adamw_consts k,
                                    const float *grad_scale) {
    float gs = grad_scale ? *grad_scale : 1.0f;
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < n;
         j += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = lo + j;
        bool decays = k.apply_decay && lrsa_in_decay(decay, n_decay, i);
        float p = lrsa_adamw_elem(param[i], grad[i] * gs, &m[j], &v[j], decays, k);
        param[i] = p;
        if (param_bf16) param_bf16[i] = __float2bfloat16_rn(p);
    }
}

extern "C" void lrsa_adamw_step_cuda(lrsa_adamw_cuda *o, float *param, const float *grad,
                                     lrsa_bf16 *param_bf16, double lr, const float *grad_scale,
                                     cudaStream_t stream) {
    o->t++;
    const lrsa_adamw_consts k = lrsa_adamw_consts_for(o, lr);
    int64_t n = o->hi - o->lo;
    if (n <= 0) return;
    adamw_kernel<<<lrsa_grid_stride_blocks(n, 256), 256, 0, stream>>>(
        param, grad, o->m, o->v, (__nv_bfloat16 *)param_bf16, o->decay, o->n_decay, o->lo, n, k,
        grad_scale);
    CUDA_CHECK(cudaGetLastError());
}

static __global__ void sumsq_partials_kernel(double *partials, const float *g, int64_t n) {
    __shared__ double scratch[32];
    double s = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        double x = (double)g[i];
        s += x * x;
    }
    s = lrsa_block_sum_f64(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

static __global__ void norm_final_kernel(double *norm, float *scale, const double *partials,
                                         int nparts, double max_norm) {
    __shared__ double scratch[32];
    double s = 0.0;
    for (int b = threadIdx.x; b < nparts; b += blockDim.x) s += partials[b];
    s = lrsa_block_sum_f64(s, scratch);
    if (threadIdx.x != 0) return;
    double nrm = sqrt(s);
    *norm = nrm;
    if (scale) // lrsa_clip_scale
        *scale = (float)((max_norm <= 0 || !(nrm > max_norm)) ? 1.0 : max_norm / (nrm + 1e-6));
}

extern "C" void lrsa_norm_from_partials_cuda(double *norm, float *scale, const double *partials,
                                             int nparts, double max_norm, cudaStream_t stream) {
    norm_final_kernel<<<1, NORM_FINAL_THREADS, 0, stream>>>(norm, scale, partials, nparts,
                                                            max_norm);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" size_t lrsa_grad_norm_workspace_cuda(void) {
    return sizeof(double) * NORM_BLOCKS;
}

extern "C" void lrsa_grad_norm_clip_cuda(double *norm, float *scale, const float *g, int64_t n,
                                         double max_norm, void *workspace, size_t workspace_bytes,
                                         cudaStream_t stream) {
    LRSA_CHECK(workspace_bytes >= lrsa_grad_norm_workspace_cuda(),
               "(grad norm workspace too small)");
    double *partials = (double *)workspace;
    sumsq_partials_kernel<<<NORM_BLOCKS, NORM_THREADS, 0, stream>>>(partials, g, n);
    CUDA_CHECK(cudaGetLastError());
    lrsa_norm_from_partials_cuda(norm, scale, partials, NORM_BLOCKS, max_norm, stream);
}
