// The linear op on the GPU: every product is one cuBLASLt matmul on bf16 operands with fp32
// accumulation. cuBLASLt is column-major and lrsa is row-major, so a row-major C = op(A) op(B) is
// issued as the column-major C^T = op(B)^T op(A)^T (the operands swap, the data does not move).
// Building the matmul descriptor, the four layouts and asking the heuristic for an algorithm costs
// tens of microseconds, so they are built once per shape and kept in the handle's plan cache.
extern "C" {
#include "kernels/linear/linear.h"
}
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/device/cuda_check.h"

namespace {

// Everything that decides which algorithm is valid: shapes, strides, types, epilogue, alignment.
struct PlanKey {
    int trans_a, trans_b; // column-major operation flags actually passed to cuBLASLt
    int64_t m, n, k, lda, ldb, ldc;
    int c_fp32, has_bias, align;
};

struct Plan {
    PlanKey key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};

} // namespace

struct lrsa_linear_cuda {
    cublasLtHandle_t lt;
    cudaStream_t stream;
    void *workspace;
    size_t workspace_bytes;
    Plan *plans;
    int n_plans, cap_plans;
};

enum {
    LINEAR_ALIGN_MAX = 16, // bytes; what the tensor-core kernels need for vector loads
    // A run uses a few dozen shapes; a caller cycling through ever new shapes gets the cache
    // emptied when it reaches this size instead of growing without bound.
    LINEAR_MAX_PLANS = 256,
};

static int lowest_alignment(uintptr_t v) {
    int a = 1;
    while (a < LINEAR_ALIGN_MAX && (v & (uintptr_t)a) == 0) a <<= 1;
    return a;
}

static int min_int(int a, int b) {
    return a < b ? a : b;
}

extern "C" lrsa_linear_cuda *lrsa_linear_cuda_create(void *stream, size_t workspace_bytes) {
    lrsa_linear_cuda *h = (lrsa_linear_cuda *)lrsa_calloc(1, sizeof *h);
    CUBLAS_CHECK(cublasLtCreate(&h->lt));
    h->stream = (cudaStream_t)stream;
    h->workspace_bytes = workspace_bytes ? workspace_bytes : (size_t)32 << 20;
    CUDA_CHECK(cudaMalloc(&h->workspace, h->workspace_bytes));
    return h;
}

static void destroy_plans(lrsa_linear_cuda *h);

extern "C" void lrsa_linear_cuda_destroy(lrsa_linear_cuda *h) {
    if (!h) return;
    destroy_plans(h);
    free(h->plans);
    CUDA_CHECK(cudaFree(h->workspace));
    CUBLAS_CHECK(cublasLtDestroy(h->lt));
    free(h);
}

extern "C" void *lrsa_linear_cuda_stream(const lrsa_linear_cuda *h) {
    return (void *)h->stream;
}

extern "C" int lrsa_linear_cuda_cached_plans(const lrsa_linear_cuda *h) {
    return h->n_plans;
}

static cublasLtMatrixLayout_t make_layout(cudaDataType_t type, int64_t rows, int64_t cols,
                                          int64_t ld) {
    cublasLtMatrixLayout_t l;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, (uint64_t)rows, (uint64_t)cols, ld));
    return l;
}

static void set_pref_u32(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t a,
                         uint32_t v) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, a, &v, sizeof v));
}

static void destroy_plans(lrsa_linear_cuda *h) {
    for (int i = 0; i < h->n_plans; i++) {
        Plan *p = &h->plans[i];
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->a));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->b));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->c));
        CUBLAS_CHECK(cublasLtMatmulDescDestroy(p->desc));
    }
    h->n_plans = 0;
}

static Plan *find_or_build_plan(lrsa_linear_cuda *h, const PlanKey *key, const void *bias) {
    for (int i = 0; i < h->n_plans; i++)
        if (memcmp(&h->plans[i].key, key, sizeof *key) == 0) return &h->plans[i];
    if (h->n_plans == LINEAR_MAX_PLANS) destroy_plans(h);
    if (h->n_plans == h->cap_plans) {
        h->cap_plans = h->cap_plans ? 2 * h->cap_plans : 16;
        h->plans = (Plan *)lrsa_realloc(h->plans, sizeof(Plan) * (size_t)h->cap_plans);
    }
    Plan *p = &h->plans[h->n_plans];
    memset(p, 0, sizeof *p);
    p->key = *key;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = key->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = key->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (key->has_bias) {
        cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
        int32_t bias_type = CUDA_R_16BF;
        CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bias_type, sizeof bias_type));
        // the heuristic reads the bias pointer's value to judge its alignment
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    }
    // Stored (pre-transpose) shapes: op(A) is [m, k], op(B) is [k, n], D is [m, n].
    p->a = key->trans_a ? make_layout(CUDA_R_16BF, key->k, key->m, key->lda)
                        : make_layout(CUDA_R_16BF, key->m, key->k, key->lda);
    p->b = key->trans_b ? make_layout(CUDA_R_16BF, key->n, key->k, key->ldb)
                        : make_layout(CUDA_R_16BF, key->k, key->n, key->ldb);
    p->c = make_layout(key->c_fp32 ? CUDA_R_32F : CUDA_R_16BF, key->m, key->n, key->ldc);

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = h->workspace_bytes;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    // In-place split-K reduction adds partial sums in whatever order blocks finish; excluding it
    // keeps two identical runs bit-identical (the determinism test of issue 7 depends on it).
    set_pref_u32(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                 CUBLASLT_REDUCTION_SCHEME_MASK & ~CUBLASLT_REDUCTION_SCHEME_INPLACE);
    set_pref_u32(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, (uint32_t)key->align);
    set_pref_u32(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, (uint32_t)key->align);
    set_pref_u32(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, (uint32_t)key->align);
    set_pref_u32(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, (uint32_t)key->align);
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    // NOT_SUPPORTED and "0 found" mean the same thing: say which product had no algorithm.
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h->lt, p->desc, p->a, p->b, p->c, p->c, pref,
                                                       1, &result, &found);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st != CUBLAS_STATUS_SUCCESS || found == 0)
        lrsa_fatal(__FILE__, __LINE__,
                   "cuBLASLt has no algorithm (%s) for column-major m=%lld n=%lld k=%lld (transa "
                   "%d transb %d, lda %lld ldb %lld ldc %lld, %s output, bias %d, alignment %d "
                   "bytes)",
                   cublasGetStatusString(st), (long long)key->m, (long long)key->n,
                   (long long)key->k, key->trans_a, key->trans_b, (long long)key->lda,
                   (long long)key->ldb, (long long)key->ldc, key->c_fp32 ? "fp32" : "bf16",
                   key->has_bias, key->align);
    p->algo = result.algo;
    h->n_plans++;
    return p;
}

extern "C" void lrsa_gemm_bf16_cuda(lrsa_linear_cuda *h, int trans_a, int trans_b, int64_t M,
                                    int64_t N, int64_t K, float alpha, const uint16_t *A,
                                    int64_t lda, const uint16_t *B, int64_t ldb, float beta,
                                    void *C, int64_t ldc, int c_fp32, const uint16_t *bias) {
    if (M <= 0 || N <= 0) return;
    LRSA_CHECK(!bias || (beta == 0.0f && !c_fp32),
               "(a bias epilogue needs beta == 0 and a bf16 output)");
    if (K <= 0) { // an empty sum: C = beta * C; only the weight-gradient path (beta 1) gets here
        LRSA_CHECK(beta == 1.0f && !bias, "(K = 0 is only supported as a no-op accumulation)");
        return;
    }
    // Row-major C[M, N] = op(A) op(B) is column-major C^T[N, M] = op(B)^T op(A)^T.
    PlanKey key;
    memset(&key, 0, sizeof key); // padding bytes take part in the memcmp lookup
    key.trans_a = trans_b;
    key.trans_b = trans_a;
    key.m = N;
    key.n = M;
    key.k = K;
    key.lda = ldb;
    key.ldb = lda;
    key.ldc = ldc;
    key.c_fp32 = c_fp32 != 0;
    key.has_bias = bias != NULL;
    int align = LINEAR_ALIGN_MAX;
    align = min_int(align, lowest_alignment((uintptr_t)A | (uintptr_t)B));
    align = min_int(align, lowest_alignment((uintptr_t)C | (uintptr_t)bias));
    align = min_int(align, lowest_alignment((uintptr_t)(lda * 2) | (uintptr_t)(ldb * 2)));
    align = min_int(align, lowest_alignment((uintptr_t)(ldc * (c_fp32 ? 4 : 2))));
    key.align = align;
    Plan *p = find_or_build_plan(h, &key, bias);
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    CUBLAS_CHECK(cublasLtMatmul(h->lt, p->desc, &alpha, B, p->a, A, p->b, &beta, C, p->c, C, p->c,
                                &p->algo, h->workspace, h->workspace_bytes, h->stream));
}

extern "C" void lrsa_linear_forward_cuda(lrsa_linear_cuda *h, uint16_t *y, const uint16_t *x,
                                         const uint16_t *w, const uint16_t *b, int64_t N, int in,
                                         int out) {
    // y[N, out] = x[N, in] @ w[out, in]^T (+ b)
    lrsa_gemm_bf16_cuda(h, 0, 1, N, out, in, 1.0f, x, in, w, in, 0.0f, y, out, 0, b);
}

// db[o] += sum_i dy[i, o]. A block owns 32 columns; its 32 row-lanes stride over the rows and
// are then summed in a fixed tree, so the result does not depend on scheduling.
enum { BIAS_COLS = 32, BIAS_ROWS = 32 };

__global__ void bias_grad_kernel(float *db, const __nv_bfloat16 *dy, int64_t N, int out) {
    __shared__ float part[BIAS_ROWS][BIAS_COLS + 1];
    int col = blockIdx.x * BIAS_COLS + threadIdx.x;
    float s = 0.0f;
    if (col < out)
        for (int64_t i = threadIdx.y; i < N; i += BIAS_ROWS)
            s += __bfloat162float(dy[i * out + col]);
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    for (int stride = BIAS_ROWS / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.y < stride)
            part[threadIdx.y][threadIdx.x] += part[threadIdx.y + stride][threadIdx.x];
        __syncthreads();
    }
    if (threadIdx.y == 0 && col < out) db[col] += part[0][threadIdx.x];
}

extern "C" void lrsa_linear_backward_cuda(lrsa_linear_cuda *h, uint16_t *dx, float *dw, float *db,
                                          const uint16_t *dy, const uint16_t *x, const uint16_t *w,
                                          int64_t N, int in, int out) {
    if (N <= 0) return;
    if (dx) // dx[N, in] = dy[N, out] @ w[out, in]
        lrsa_gemm_bf16_cuda(h, 0, 0, N, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in, 0, NULL);
    if (dw) // dw[out, in] += dy^T @ x
        lrsa_gemm_bf16_cuda(h, 1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in, 1, NULL);
    if (db && out > 0) {
        dim3 block(BIAS_COLS, BIAS_ROWS);
        dim3 grid((unsigned)((out + BIAS_COLS - 1) / BIAS_COLS));
        bias_grad_kernel<<<grid, block, 0, h->stream>>>(db, (const __nv_bfloat16 *)dy, N, out);
        CUDA_CHECK(cudaGetLastError());
    }
}
