// Embedding forward (row gather) and deterministic backward on the GPU.
//
// Backward choice: sort, then one block per segment. A float atomicAdd per element would make
// repeated token ids accumulate in a different order on every run. Instead the (id, position)
// pairs are radix-sorted by id with CUB (stable, so repeats keep increasing position), and each
// run of equal ids is owned by the block that starts at its head: it loads the current gradient
// row, adds the tokens' rows one after another in position order (fp32) and stores once. Every
// vocab row is written by exactly one block, in the CPU reference's order, so the result is
// bitwise equal to lrsa_embedding_backward_cpu for the same (bf16-valued) dout.
// cuda_check.h first: it makes base/error.h (C11) usable from C++.
#include "kernels/device/cuda_check.h"
extern "C" {
#include "kernels/embedding/embedding.h"
}
#include <cub/device/device_radix_sort.cuh>
#include <cuda_bf16.h>

#include "kernels/device/launch_cuda.cuh"

static __global__ void embedding_forward_kernel(__nv_bfloat16 *out, const int32_t *ids,
                                                const __nv_bfloat16 *table, int C) {
    int64_t i = blockIdx.x;
    const __nv_bfloat16 *src = table + (int64_t)ids[i] * C;
    __nv_bfloat16 *dst = out + i * C;
    if ((C & 1) == 0) { // two bf16 per load: rows start 4-byte aligned when C is even
        const __nv_bfloat162 *s2 = (const __nv_bfloat162 *)src;
        __nv_bfloat162 *d2 = (__nv_bfloat162 *)dst;
        for (int j = threadIdx.x; j < C / 2; j += blockDim.x) d2[j] = s2[j];
    } else {
        for (int j = threadIdx.x; j < C; j += blockDim.x) dst[j] = src[j];
    }
}

extern "C" void lrsa_embedding_forward_cuda(lrsa_bf16 *out, const int32_t *ids,
                                            const lrsa_bf16 *table, int64_t N, int C,
                                            cudaStream_t stream) {
    if (N <= 0) return;
    LRSA_CHECK(N <= INT32_MAX, "(one block per token)");
    embedding_forward_kernel<<<(unsigned)N, 128, 0, stream>>>((__nv_bfloat16 *)out, ids,
                                                              (const __nv_bfloat16 *)table, C);
    CUDA_CHECK(cudaGetLastError());
}

static __global__ void iota_kernel(int32_t *v, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        v[i] = i;
}

// Block b handles sorted position b only if it starts a run of equal ids.
static __global__ void embedding_backward_segments(float *dtable, const __nv_bfloat16 *dout,
                                                   const int32_t *sorted_ids,
                                                   const int32_t *sorted_pos, int n, int C) {
    int k = blockIdx.x;
    int id = sorted_ids[k];
    if (k > 0 && sorted_ids[k - 1] == id) return;
    int end = k + 1;
    while (end < n && sorted_ids[end] == id) end++;
    float *row = dtable + (int64_t)id * C;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        float acc = row[j];
        for (int t = k; t < end; t++) acc += __bfloat162float(dout[(int64_t)sorted_pos[t] * C + j]);
        row[j] = acc;
    }
}

// Workspace layout: keys_out, pos_in, pos_out (int32 [N] each, 256-byte aligned), then CUB's.
static size_t align256(size_t b) {
    return (b + 255) & ~(size_t)255;
}

static size_t cub_temp_bytes(int n) {
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, bytes, (const int32_t *)NULL, (int32_t *)NULL,
                                               (const int32_t *)NULL, (int32_t *)NULL, n));
    return bytes;
}

extern "C" size_t lrsa_embedding_backward_workspace_cuda(int64_t N) {
    if (N <= 0) return 0;
    LRSA_CHECK(N <= INT32_MAX, "(token count fits the sort's int32 index)");
    return 3 * align256(sizeof(int32_t) * (size_t)N) + align256(cub_temp_bytes((int)N));
}

extern "C" void lrsa_embedding_backward_cuda(float *dtable, const lrsa_bf16 *dout,
                                             const int32_t *ids, int64_t N, int C, int vocab,
                                             void *workspace, size_t workspace_bytes,
                                             cudaStream_t stream) {
    if (N <= 0) return;
    size_t need = lrsa_embedding_backward_workspace_cuda(N);
    LRSA_CHECK(workspace_bytes >= need, "(embedding backward workspace: %zu bytes, need %zu)",
               workspace_bytes, need);
    int n = (int)N;
    char *w = (char *)workspace;
    size_t slot = align256(sizeof(int32_t) * (size_t)N);
    int32_t *keys_out = (int32_t *)w, *pos_in = (int32_t *)(w + slot),
            *pos_out = (int32_t *)(w + 2 * slot);
    void *temp = w + 3 * slot;
    size_t temp_bytes = workspace_bytes - 3 * slot;
    // Only the bits that can be set in an id in [0, vocab) are sorted.
    int end_bit = 1;
    while (end_bit < 31 && ((int64_t)1 << end_bit) < (int64_t)vocab) end_bit++;
    iota_kernel<<<lrsa_grid_stride_blocks(n, 256), 256, 0, stream>>>(pos_in, n);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, ids, keys_out, pos_in, pos_out, n,
                                               0, end_bit, stream));
    embedding_backward_segments<<<(unsigned)n, 128, 0, stream>>>(
        dtable, (const __nv_bfloat16 *)dout, keys_out, pos_out, n, C);
    CUDA_CHECK(cudaGetLastError());
}
