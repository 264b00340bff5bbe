/* cuDNN backend graph helpers (cudnn_graph.h). Compiled, never run on a GPU. */
#include "kernels/device/cudnn_graph.h"

#ifdef LRSA_HAVE_CUDNN
#include <stdio.h>
#include <stdlib.h>

void lrsa_cudnn_fail(const char *file, int line, const char *call, cudnnStatus_t st) {
    char last[1024] = "";
    cudnnGetLastErrorString(last, sizeof last);
    lrsa_fatal(file, line, "%s failed: %s%s%s", call, cudnnGetErrorString(st), last[0] ? ": " : "",
               last);
}

/* A new descriptor of the graph (destroyed with it). */
static cudnnBackendDescriptor_t new_desc(lrsa_dnn_graph *g, cudnnBackendDescriptorType_t type) {
    LRSA_CHECK(g->n_descs < LRSA_DNN_MAX_DESCS, "(raise LRSA_DNN_MAX_DESCS)");
    cudnnBackendDescriptor_t d = NULL;
    CUDNN_CHECK(cudnnBackendCreateDescriptor(type, &d));
    g->descs[g->n_descs++] = d;
    return d;
}

static void set_desc(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                     cudnnBackendDescriptor_t value) {
    CUDNN_CHECK(cudnnBackendSetAttribute(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value));
}

static void set_type(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
                     cudnnDataType_t value) {
    CUDNN_CHECK(cudnnBackendSetAttribute(d, name, CUDNN_TYPE_DATA_TYPE, 1, &value));
}

static void add_op(lrsa_dnn_graph *g, cudnnBackendDescriptor_t op) {
    CUDNN_CHECK(cudnnBackendFinalize(op));
    LRSA_CHECK(g->n_ops < LRSA_DNN_MAX_OPS, "(raise LRSA_DNN_MAX_OPS)");
    g->ops[g->n_ops++] = op;
}

void lrsa_dnn_graph_init(lrsa_dnn_graph *g, cudnnHandle_t handle) {
    *g = (lrsa_dnn_graph){0};
    g->handle = handle;
    g->next_virtual_uid = 1000;
}

void lrsa_dnn_graph_free(lrsa_dnn_graph *g) {
    /* the plan refers to the engine configuration, the graph to its operations: last first */
    for (int i = g->n_descs - 1; i >= 0; i--)
        CUDNN_CHECK(cudnnBackendDestroyDescriptor(g->descs[i]));
    *g = (lrsa_dnn_graph){0};
}

static lrsa_dnn_tensor tensor(lrsa_dnn_graph *g, cudnnDataType_t type, int64_t uid,
                              const int64_t dims[4], const int64_t strides[4], bool by_value) {
    bool is_virtual = uid == 0;
    lrsa_dnn_tensor t = {new_desc(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR),
                         is_virtual ? g->next_virtual_uid++ : uid};
    int64_t alignment = 16;
    set_type(t.desc, CUDNN_ATTR_TENSOR_DATA_TYPE, type);
    CUDNN_CHECK(
        cudnnBackendSetAttribute(t.desc, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims));
    CUDNN_CHECK(
        cudnnBackendSetAttribute(t.desc, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides));
    CUDNN_CHECK(
        cudnnBackendSetAttribute(t.desc, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &t.uid));
    CUDNN_CHECK(cudnnBackendSetAttribute(t.desc, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64,
                                         1, &alignment));
    CUDNN_CHECK(cudnnBackendSetAttribute(t.desc, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN,
                                         1, &is_virtual));
    if (by_value)
        CUDNN_CHECK(cudnnBackendSetAttribute(t.desc, CUDNN_ATTR_TENSOR_IS_BY_VALUE,
                                             CUDNN_TYPE_BOOLEAN, 1, &by_value));
    CUDNN_CHECK(cudnnBackendFinalize(t.desc));
    return t;
}

lrsa_dnn_tensor lrsa_dnn_tensor4(lrsa_dnn_graph *g, cudnnDataType_t type, int64_t uid,
                                 const int64_t dims[4], const int64_t strides[4]) {
    return tensor(g, type, uid, dims, strides, false);
}

lrsa_dnn_tensor lrsa_dnn_scalar(lrsa_dnn_graph *g, int64_t uid) {
    static const int64_t one[4] = {1, 1, 1, 1};
    return tensor(g, CUDNN_DATA_FLOAT, uid, one, one, true);
}

void lrsa_dnn_pointwise(lrsa_dnn_graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                        const lrsa_dnn_tensor *x, const lrsa_dnn_tensor *b,
                        const lrsa_dnn_tensor *t, const lrsa_dnn_tensor *y, int64_t axis) {
    cudnnBackendDescriptor_t pw = new_desc(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    CUDNN_CHECK(cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE,
                                         1, &mode));
    set_type(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, prec);
    if (axis >= 0)
        CUDNN_CHECK(
            cudnnBackendSetAttribute(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis));
    CUDNN_CHECK(cudnnBackendFinalize(pw));
    cudnnBackendDescriptor_t op = new_desc(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x->desc);
    if (b) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b->desc);
    if (t) set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t->desc);
    set_desc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y->desc);
    add_op(g, op);
}

void lrsa_dnn_matmul(lrsa_dnn_graph *g, const lrsa_dnn_tensor *a, const lrsa_dnn_tensor *b,
                     const lrsa_dnn_tensor *c) {
    cudnnBackendDescriptor_t mm = new_desc(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    set_type(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_DATA_FLOAT);
    CUDNN_CHECK(cudnnBackendFinalize(mm));
    cudnnBackendDescriptor_t op = new_desc(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a->desc);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b->desc);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c->desc);
    set_desc(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm);
    add_op(g, op);
}

void lrsa_dnn_reduction(lrsa_dnn_graph *g, cudnnReduceTensorOp_t rop, const lrsa_dnn_tensor *x,
                        const lrsa_dnn_tensor *y) {
    cudnnBackendDescriptor_t red = new_desc(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    CUDNN_CHECK(cudnnBackendSetAttribute(red, CUDNN_ATTR_REDUCTION_OPERATOR,
                                         CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &rop));
    set_type(red, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_DATA_FLOAT);
    CUDNN_CHECK(cudnnBackendFinalize(red));
    cudnnBackendDescriptor_t op = new_desc(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x->desc);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y->desc);
    set_desc(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, red);
    add_op(g, op);
}

void lrsa_dnn_reshape(lrsa_dnn_graph *g, const lrsa_dnn_tensor *x, const lrsa_dnn_tensor *y) {
    cudnnBackendDescriptor_t op = new_desc(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    set_desc(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x->desc);
    set_desc(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y->desc);
    add_op(g, op);
}

/* The plan of one engine configuration; NULL when it does not finalize (not supported here). */
static cudnnBackendDescriptor_t try_plan(lrsa_dnn_graph *g, cudnnBackendDescriptor_t cfg) {
    cudnnBackendDescriptor_t plan = NULL;
    CUDNN_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan));
    CUDNN_CHECK(cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE,
                                         1, &g->handle));
    set_desc(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, cfg);
    if (cudnnBackendFinalize(plan) != CUDNN_STATUS_SUCCESS) {
        CUDNN_CHECK(cudnnBackendDestroyDescriptor(plan));
        return NULL;
    }
    return plan;
}

/* The engine configurations of one heuristics mode, tried in cuDNN's order; 0 when one gave a
 * plan. */
static int plan_from_heuristics(lrsa_dnn_graph *g, cudnnBackendDescriptor_t graph,
                                cudnnBackendHeurMode_t mode) {
    cudnnBackendDescriptor_t heur = new_desc(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    set_desc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
    CUDNN_CHECK(
        cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode));
    if (cudnnBackendFinalize(heur) != CUDNN_STATUS_SUCCESS) return -1;
    int64_t n = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL));
    if (n <= 0) return -1;
    if (n > 16) n = 16;
    cudnnBackendDescriptor_t cfgs[16];
    for (int64_t i = 0; i < n; i++) cfgs[i] = new_desc(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t got = 0;
    CUDNN_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, n, &got, cfgs));
    for (int64_t i = 0; i < got && i < n; i++) {
        cudnnBackendDescriptor_t plan = try_plan(g, cfgs[i]);
        if (!plan) continue;
        LRSA_CHECK(g->n_descs < LRSA_DNN_MAX_DESCS, "(raise LRSA_DNN_MAX_DESCS)");
        g->descs[g->n_descs++] = plan;
        g->plan = plan;
        CUDNN_CHECK(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                             CUDNN_TYPE_INT64, 1, &got, &g->workspace));
        return 0;
    }
    return -1;
}

int lrsa_dnn_graph_plan(lrsa_dnn_graph *g, const char *what, lrsa_err *e) {
    if (!g->handle) return 0; /* descriptors only: every operation is already finalized */
    cudnnBackendDescriptor_t graph = new_desc(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    CUDNN_CHECK(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE,
                                         1, &g->handle));
    CUDNN_CHECK(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, g->n_ops, g->ops));
    cudnnStatus_t st = cudnnBackendFinalize(graph);
    char last[1024] = "";
    if (st != CUDNN_STATUS_SUCCESS) {
        cudnnGetLastErrorString(last, sizeof last);
        return lrsa_errorf(e, "cuDNN does not accept the %s graph: %s%s%s", what,
                           cudnnGetErrorString(st), last[0] ? ": " : "", last);
    }
    if (!plan_from_heuristics(g, graph, CUDNN_HEUR_MODE_A) ||
        !plan_from_heuristics(g, graph, CUDNN_HEUR_MODE_FALLBACK))
        return 0;
    cudnnGetLastErrorString(last, sizeof last);
    return lrsa_errorf(e, "cuDNN %zu has no engine for the %s graph on this GPU%s%s",
                       cudnnGetVersion(), what, last[0] ? ": " : "", last);
}

void lrsa_dnn_graph_execute(const lrsa_dnn_graph *g, int n, const int64_t *uids, void *const *ptrs,
                            void *workspace) {
    cudnnBackendDescriptor_t pack = NULL;
    CUDNN_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64,
                                         n, uids));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                         CUDNN_TYPE_VOID_PTR, n, ptrs));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                         CUDNN_TYPE_VOID_PTR, 1, &workspace));
    CUDNN_CHECK(cudnnBackendFinalize(pack));
    CUDNN_CHECK(cudnnBackendExecute(g->handle, g->plan, pack));
    CUDNN_CHECK(cudnnBackendDestroyDescriptor(pack));
}
#else
typedef int lrsa_cudnn_graph_not_built; /* this build has no cuDNN */
#endif
