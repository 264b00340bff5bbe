/* A thin C layer over cuDNN's backend graph API (cudnn_graph.h): tensors, the pointwise, matmul,
 * reduction and reshape operations, one operation graph finalized into an execution plan, and
 * its execution. Every cuDNN return code is checked: a failure aborts with file:line, the call,
 * cuDNN's status string and its last error message. Only built with LRSA_HAVE_CUDNN (the
 * cuDNN attention of kernels/attention/attention_cudnn.c, docs/CUDA.md). */
#ifndef LRSA_KERNELS_DEVICE_CUDNN_GRAPH_H
#define LRSA_KERNELS_DEVICE_CUDNN_GRAPH_H
#ifdef LRSA_HAVE_CUDNN
#include <stdbool.h>
#include <stdint.h>

#include <cudnn.h>

#include "base/error.h"

void lrsa_cudnn_fail(const char *file, int line, const char *call, cudnnStatus_t st)
    __attribute__((noreturn));

#define CUDNN_CHECK(call)                                                                          \
    do {                                                                                           \
        cudnnStatus_t st_ = (call);                                                                \
        if (st_ != CUDNN_STATUS_SUCCESS) lrsa_cudnn_fail(__FILE__, __LINE__, #call, st_);          \
    } while (0)

/* Enough for the SDPA backward (about 60 descriptors). */
#define LRSA_DNN_MAX_DESCS 128
#define LRSA_DNN_MAX_OPS   48

/* One operation graph under construction, then its execution plan. Owns every descriptor. */
typedef struct lrsa_dnn_graph {
    cudnnHandle_t handle;
    cudnnBackendDescriptor_t descs[LRSA_DNN_MAX_DESCS]; /* everything to destroy */
    int n_descs;
    cudnnBackendDescriptor_t ops[LRSA_DNN_MAX_OPS];
    int n_ops;
    int64_t next_virtual_uid; /* virtual tensors get uids from 1000 up */
    cudnnBackendDescriptor_t plan;
    int64_t workspace; /* bytes the plan needs */
} lrsa_dnn_graph;

/* A tensor of a graph: its descriptor and unique id (the variant pack's key). */
typedef struct lrsa_dnn_tensor {
    cudnnBackendDescriptor_t desc;
    int64_t uid;
} lrsa_dnn_tensor;

void lrsa_dnn_graph_init(lrsa_dnn_graph *g, cudnnHandle_t handle);
void lrsa_dnn_graph_free(lrsa_dnn_graph *g);

/* A 4-d tensor: uid > 0 for one bound at execution (non-virtual), 0 for a virtual one. */
lrsa_dnn_tensor lrsa_dnn_tensor4(lrsa_dnn_graph *g, cudnnDataType_t type, int64_t uid,
                                 const int64_t dims[4], const int64_t strides[4]);
/* A [1,1,1,1] fp32 scalar passed by value (its host address goes in the variant pack). */
lrsa_dnn_tensor lrsa_dnn_scalar(lrsa_dnn_graph *g, int64_t uid);

/* y = mode(x[, b][, t]) with math precision prec; b and t may be NULL; axis < 0: not set
 * (GEN_INDEX needs it). BINARY_SELECT: y = t ? x : b. */
void lrsa_dnn_pointwise(lrsa_dnn_graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                        const lrsa_dnn_tensor *x, const lrsa_dnn_tensor *b,
                        const lrsa_dnn_tensor *t, const lrsa_dnn_tensor *y, int64_t axis);
/* c = a b over the last two dimensions (fp32 compute), batched over the first two. */
void lrsa_dnn_matmul(lrsa_dnn_graph *g, const lrsa_dnn_tensor *a, const lrsa_dnn_tensor *b,
                     const lrsa_dnn_tensor *c);
/* y = reduce(x) over the dimensions where y is smaller (fp32 compute). */
void lrsa_dnn_reduction(lrsa_dnn_graph *g, cudnnReduceTensorOp_t op, const lrsa_dnn_tensor *x,
                        const lrsa_dnn_tensor *y);
/* y: x seen with other dimensions and strides (a transpose here). */
void lrsa_dnn_reshape(lrsa_dnn_graph *g, const lrsa_dnn_tensor *x, const lrsa_dnn_tensor *y);

/* Finalizes the operation graph and makes the execution plan from the first engine
 * configuration cuDNN's heuristics (mode A, then the fallback list) offer that finalizes.
 * 0, or -1 with the reason in e (no engine supports the graph: `what` names it). A graph made
 * with a NULL handle (no GPU: cudnnCreate needs one) stops before the operation graph and
 * returns 0: its tensors and operations, each finalized as it was added, are all it checks. */
int lrsa_dnn_graph_plan(lrsa_dnn_graph *g, const char *what, lrsa_err *e);

/* Runs the plan: n (uid, device or by-value host pointer) pairs and the workspace (at least
 * g->workspace bytes), on the handle's stream. */
void lrsa_dnn_graph_execute(const lrsa_dnn_graph *g, int n, const int64_t *uids, void *const *ptrs,
                            void *workspace);
#endif
#endif
