// cuBLASLt for the emulated build (lrsa_emu_cublas.h): descriptors, layouts and preferences are
// plain records; the heuristic checks the problem the way cuBLASLt does (shapes that agree,
// leading dimensions at least the row count, types it supports) and "finds" one algorithm; the
// matmul checks that every operand lies in device memory and computes in fp32 with OpenBLAS on
// the bf16 values (column-major, as cuBLASLt), then adds the bias and rounds to the output type.
#include <cblas.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "emu_internal.h"
#include "lrsa_emu_cublas.h"

struct lrsa_emu_lt {
    int magic;
};
struct lrsa_emu_lt_desc {
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr;
    int bias_type = CUDA_R_32F;
};
struct lrsa_emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct lrsa_emu_lt_pref {
    uint64_t max_workspace = 0;
};

namespace {

constexpr uint64_t kAlgoMagic = 0x6c727361656d75ull;

size_t type_size(cudaDataType_t t) {
    return t == CUDA_R_32F ? 4 : 2;
}

float load(const void *p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    uint32_t u = (uint32_t)((const uint16_t *)p)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void store(void *p, cudaDataType_t t, size_t i, float v) {
    if (t == CUDA_R_32F)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = lrsa_emu_f32_to_bf16_bits(v);
}

size_t extent(const lrsa_emu_lt_layout *l) { // elements from the first to one past the last
    return l->cols ? (size_t)(l->cols - 1) * (size_t)l->ld + l->rows : 0;
}

// op(A) is [m, k], op(B) is [k, n], C and D are [m, n] (column-major).
cublasStatus_t check_problem(const lrsa_emu_lt_desc *desc, const lrsa_emu_lt_layout *a,
                             const lrsa_emu_lt_layout *b, const lrsa_emu_lt_layout *c,
                             const lrsa_emu_lt_layout *d) {
    uint64_t m = desc->ta == CUBLAS_OP_N ? a->rows : a->cols;
    uint64_t k = desc->ta == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t kb = desc->tb == CUBLAS_OP_N ? b->rows : b->cols;
    uint64_t n = desc->tb == CUBLAS_OP_N ? b->cols : b->rows;
    if (k != kb || c->rows != m || c->cols != n || d->rows != m || d->cols != n)
        return CUBLAS_STATUS_INVALID_VALUE;
    const lrsa_emu_lt_layout *all[] = {a, b, c, d};
    for (auto *l : all)
        if (l->ld < (int64_t)l->rows || l->ld < 1) return CUBLAS_STATUS_INVALID_VALUE;
    if (a->type != CUDA_R_16BF || b->type != CUDA_R_16BF || c->type != d->type ||
        (d->type != CUDA_R_16BF && d->type != CUDA_R_32F))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (desc->epilogue == CUBLASLT_EPILOGUE_BIAS && desc->bias_type != CUDA_R_16BF &&
        desc->bias_type != CUDA_R_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    return CUBLAS_STATUS_SUCCESS;
}

// Column-major fp32 copy of a stored matrix.
std::vector<float> to_f32(const void *p, const lrsa_emu_lt_layout *l) {
    std::vector<float> out((size_t)l->rows * l->cols);
    for (uint64_t j = 0; j < l->cols; j++)
        for (uint64_t i = 0; i < l->rows; i++)
            out[j * l->rows + i] = load(p, l->type, j * (size_t)l->ld + i);
    return out;
}

} // namespace

extern "C" {

const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS:
            return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_INVALID_VALUE:
            return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_NOT_SUPPORTED:
            return "CUBLAS_STATUS_NOT_SUPPORTED";
        default:
            return "CUBLAS_STATUS_(emulation error)";
    }
}

size_t cublasLtGetVersion(void) {
    return 130000;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    *handle = new lrsa_emu_lt{1};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType_t scale_type) {
    if (compute != CUBLAS_COMPUTE_32F || scale_type != CUDA_R_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    *desc = new lrsa_emu_lt_desc();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t bytes) {
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_TRANSA:
        case CUBLASLT_MATMUL_DESC_TRANSB: {
            if (bytes != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
            int32_t v;
            memcpy(&v, buf, 4);
            if (v != CUBLAS_OP_N && v != CUBLAS_OP_T) return CUBLAS_STATUS_INVALID_VALUE;
            (attr == CUBLASLT_MATMUL_DESC_TRANSA ? desc->ta : desc->tb) = (cublasOperation_t)v;
            return CUBLAS_STATUS_SUCCESS;
        }
        case CUBLASLT_MATMUL_DESC_EPILOGUE: {
            if (bytes != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
            uint32_t v;
            memcpy(&v, buf, 4);
            if (v != CUBLASLT_EPILOGUE_DEFAULT && v != CUBLASLT_EPILOGUE_BIAS)
                return CUBLAS_STATUS_NOT_SUPPORTED;
            desc->epilogue = (cublasLtEpilogue_t)v;
            return CUBLAS_STATUS_SUCCESS;
        }
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
            if (bytes != sizeof(void *)) return CUBLAS_STATUS_INVALID_VALUE;
            memcpy(&desc->bias, buf, sizeof(void *));
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
            if (bytes != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
            memcpy(&desc->bias_type, buf, 4);
            return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
    *layout = new lrsa_emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    *pref = new lrsa_emu_lt_pref();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t bytes) {
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (bytes != sizeof(uint64_t)) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&pref->max_workspace, buf, 8);
    } else if (bytes != sizeof(uint32_t)) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t *results,
                                              int *found) {
    (void)handle;
    *found = 0;
    if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t st = check_problem(desc, a, b, c, d);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = kAlgoMagic;
    results[0].workspaceSize = pref->max_workspace < 4096 ? pref->max_workspace : 4096;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t a, const void *B,
                              cublasLtMatrixLayout_t b, const void *beta, const void *C,
                              cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
    (void)handle;
    if (!algo || algo->data[0] != kAlgoMagic) return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t st = check_problem(desc, a, b, c, d);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (workspace_bytes)
        lrsa_emu_check_device_range(workspace, workspace_bytes, "matmul workspace");
    lrsa_emu_check_device_range(A, extent(a) * type_size(a->type), "cublasLtMatmul A");
    lrsa_emu_check_device_range(B, extent(b) * type_size(b->type), "cublasLtMatmul B");
    lrsa_emu_check_device_range(C, extent(c) * type_size(c->type), "cublasLtMatmul C");
    lrsa_emu_check_device_range(D, extent(d) * type_size(d->type), "cublasLtMatmul D");
    const int m = (int)d->rows, n = (int)d->cols;
    const int k = (int)(desc->ta == CUBLAS_OP_N ? a->cols : a->rows);
    if (desc->epilogue == CUBLASLT_EPILOGUE_BIAS) {
        if (!desc->bias) return CUBLAS_STATUS_INVALID_VALUE;
        lrsa_emu_check_device_range(
            desc->bias, (size_t)m * type_size((cudaDataType_t)desc->bias_type), "matmul bias");
    }
    float al, be;
    memcpy(&al, alpha, 4);
    memcpy(&be, beta, 4);
    // The product runs when the stream gets to it: now, or when a graph it was captured into is
    // launched; the descriptors and scalars are taken by value, as a captured matmul keeps them.
    lrsa_emu_lt_desc dc = *desc;
    lrsa_emu_lt_layout la = *a, lb = *b, lc = *c, ld = *d;
    auto product = [=]() {
        std::vector<float> fa = to_f32(A, &la), fb = to_f32(B, &lb), fc = to_f32(C, &lc);
        if (be == 0.0f) std::fill(fc.begin(), fc.end(), 0.0f); // beta 0: C is not read (may be NaN)
        if (m > 0 && n > 0 && k > 0)
            cblas_sgemm(CblasColMajor, dc.ta == CUBLAS_OP_T ? CblasTrans : CblasNoTrans,
                        dc.tb == CUBLAS_OP_T ? CblasTrans : CblasNoTrans, m, n, k, al, fa.data(),
                        (int)la.rows, fb.data(), (int)lb.rows, be, fc.data(), m);
        else
            for (auto &x : fc) x *= be;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float v = fc[(size_t)j * m + i];
                if (dc.epilogue == CUBLASLT_EPILOGUE_BIAS)
                    v += load(dc.bias, (cudaDataType_t)dc.bias_type, (size_t)i);
                store(D, ld.type, (size_t)j * ld.ld + i, v);
            }
    };
    if (lrsa_emu::enqueue(stream, product) != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
