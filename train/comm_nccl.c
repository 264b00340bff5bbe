/* The NCCL backend (comm_nccl.h). Host code in C: the CUDA runtime and NCCL APIs are C APIs.
 * Compiled, NEVER RUN ON A GPU. */
#include "train/comm_nccl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef LRSA_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>

#include "train/comm_mpi.h"
#include "train/launch_env.h"

struct lrsa_nccl {
    ncclComm_t comm;
    int device;
    double timeout_s;
    int aborted;
    cudaStream_t stream; /* the communicator's own stream (barrier) */
    int *flag;           /* device int for the barrier's all-reduce */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pause_briefly(void) {
    struct timespec ts = {0, 200 * 1000}; /* 0.2 ms: polling, not spinning a core */
    nanosleep(&ts, NULL);
}

static void abort_comm(lrsa_nccl *n) {
    if (n->aborted) return;
    n->aborted = 1;
    ncclCommAbort(n->comm); /* its own result does not matter: we are already failing */
}

/* Waits while the communicator's state is ncclInProgress (a non-blocking call still running),
 * up to the timeout. Returns the final state; a timeout is reported as ncclInProgress. */
static ncclResult_t settle(lrsa_nccl *n, ncclResult_t r) {
    double t0 = now_s();
    while (r == ncclInProgress) {
        if (now_s() - t0 > n->timeout_s) return ncclInProgress;
        pause_briefly();
        if (ncclCommGetAsyncError(n->comm, &r) != ncclSuccess) return ncclSystemError;
    }
    return r;
}

/* Checks an NCCL result (settling ncclInProgress first); any failure aborts the communicator
 * and becomes an error naming the call site. */
static int nccl_check(lrsa_nccl *n, ncclResult_t r, const char *call, const char *file, int line,
                      lrsa_err *e) {
    r = settle(n, r);
    if (r == ncclSuccess) return 0;
    const char *last = ncclGetLastError(n->comm);
    char why[600];
    if (r == ncclInProgress)
        snprintf(why, sizeof why, "no completion within %.0f s (did another rank stop?)",
                 n->timeout_s);
    else
        snprintf(why, sizeof why, "%s%s%s", ncclGetErrorString(r), last && *last ? ": " : "",
                 last ? last : "");
    abort_comm(n);
    return lrsa_errorf(e, "%s:%d: %s failed: %s; the NCCL communicator was aborted", file, line,
                       call, why);
}
#define NCCL_TRY(n, call)                                                                          \
    do {                                                                                           \
        if (nccl_check((n), (call), #call, __FILE__, __LINE__, e)) return -1;                      \
    } while (0)

static int cuda_check(cudaError_t r, const char *call, const char *file, int line, lrsa_err *e) {
    if (r == cudaSuccess) return 0;
    return lrsa_errorf(e, "%s:%d: %s failed: %s", file, line, call, cudaGetErrorString(r));
}
#define CUDA_TRY(call)                                                                             \
    do {                                                                                           \
        if (cuda_check((call), #call, __FILE__, __LINE__, e)) return -1;                           \
    } while (0)

static int nccl_type(lrsa_dtype t, ncclDataType_t *out) {
    switch (t) {
        case LRSA_F32:
            *out = ncclFloat32;
            return 0;
        case LRSA_F64:
            *out = ncclFloat64;
            return 0;
        case LRSA_BF16:
            *out = ncclBfloat16;
            return 0;
        case LRSA_F16:
            *out = ncclFloat16;
            return 0;
        case LRSA_I32:
            *out = ncclInt32;
            return 0;
        case LRSA_U8:
            *out = ncclUint8;
            return 0;
    }
    return -1;
}

/* The communicator, checked usable; NULL with an error otherwise. */
static lrsa_nccl *usable(const lrsa_comm *c, lrsa_err *e) {
    if (!c->nccl) {
        lrsa_errorf(e,
                    "%s:%d: a device collective over %d ranks needs the NCCL communicator "
                    "(lrsa_nccl_init was not called)",
                    __FILE__, __LINE__, c->world);
        return NULL;
    }
    if (c->nccl->aborted) {
        lrsa_errorf(e, "%s:%d: the NCCL communicator was aborted after an earlier failure",
                    __FILE__, __LINE__);
        return NULL;
    }
    return c->nccl;
}

int lrsa_nccl_built(void) {
    return 1;
}

/* Device choice and the unique id, agreed by all ranks before NCCL is touched. */
typedef struct bootstrap_msg {
    int ok;
    char why[256];
    ncclUniqueId id;
} bootstrap_msg;

static int pick_device(const lrsa_comm *c, int *device, lrsa_err *e) {
    int count = 0;
    cudaError_t r = cudaGetDeviceCount(&count);
    if (r != cudaSuccess) {
        cudaGetLastError();
        return lrsa_errorf(e, "rank %d: no usable CUDA device (%s)", c->rank,
                           cudaGetErrorString(r));
    }
    lrsa_launch l = {"", c->rank, c->world, c->local_rank, c->local_world};
    if (lrsa_launch_pick_device(&l, count, device, e)) return -1;
    CUDA_TRY(cudaSetDevice(*device));
    return 0;
}

int lrsa_nccl_init(lrsa_comm *c, double timeout_s, lrsa_err *e) {
    if (c->nccl) return 0;
    int device = -1;
    lrsa_err mine;
    int failed = pick_device(c, &device, &mine) != 0;
    int any = failed;
    if (lrsa_mpi_allreduce(c, &any, 1, LRSA_I32, LRSA_RED_MAX, e)) return -1;
    if (any) {
        if (failed)
            *e = mine;
        else
            lrsa_errorf(e, "another rank could not choose its CUDA device (its message is above)");
        return -1;
    }
    bootstrap_msg msg;
    memset(&msg, 0, sizeof msg);
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&msg.id);
        msg.ok = r == ncclSuccess;
        if (!msg.ok) snprintf(msg.why, sizeof msg.why, "%s", ncclGetErrorString(r));
    }
    if (lrsa_mpi_broadcast(c, &msg, (int64_t)sizeof msg, LRSA_U8, 0, e)) return -1;
    if (!msg.ok)
        return lrsa_errorf(e, "%s:%d: ncclGetUniqueId failed on rank 0: %s", __FILE__, __LINE__,
                           msg.why);
    lrsa_nccl *n = lrsa_calloc(1, sizeof *n);
    n->device = device;
    n->timeout_s = timeout_s > 0 ? timeout_s : 600;
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; /* every wait polls, so a dead peer becomes a timeout, not a hang */
    ncclResult_t r = ncclCommInitRankConfig(&n->comm, c->world, msg.id, c->rank, &config);
    int rc = nccl_check(n, r, "ncclCommInitRankConfig", __FILE__, __LINE__, e);
    if (!rc)
        rc = cuda_check(cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking),
                        "cudaStreamCreateWithFlags", __FILE__, __LINE__, e);
    if (!rc)
        rc = cuda_check(cudaMalloc((void **)&n->flag, sizeof(int)), "cudaMalloc", __FILE__,
                        __LINE__, e);
    c->nccl = n;
    if (rc) {
        abort_comm(n);
        lrsa_nccl_free(c);
        return -1;
    }
    return 0;
}

void lrsa_nccl_free(lrsa_comm *c) {
    lrsa_nccl *n = c->nccl;
    if (!n) return;
    if (!n->aborted) {
        lrsa_err e;
        /* Finalize flushes outstanding work; a failure there is reported, then we abort. */
        if (nccl_check(n, ncclCommFinalize(n->comm), "ncclCommFinalize", __FILE__, __LINE__, &e))
            lrsa_err_print(&e);
        else
            ncclCommDestroy(n->comm);
    }
    if (n->flag) cudaFree(n->flag);
    if (n->stream) cudaStreamDestroy(n->stream);
    free(n);
    c->nccl = NULL;
}

int lrsa_nccl_device(const lrsa_comm *c) {
    return c->nccl ? c->nccl->device : -1;
}

void lrsa_nccl_abort(const lrsa_comm *c) {
    if (c->nccl) abort_comm(c->nccl);
}

int lrsa_nccl_aborted(const lrsa_comm *c) {
    return c->nccl && c->nccl->aborted;
}

#define NCCL_PREP(dtype)                                                                           \
    lrsa_nccl *n = usable(c, e);                                                                   \
    ncclDataType_t nt;                                                                             \
    if (!n) return -1;                                                                             \
    if (nccl_type((dtype), &nt))                                                                   \
        return lrsa_errorf(e, "%s:%d: unknown dtype %d", __FILE__, __LINE__, (int)(dtype));

int lrsa_nccl_allreduce(const lrsa_comm *c, void *buf, int64_t n_elems, lrsa_dtype t, lrsa_redop op,
                        void *stream, lrsa_err *e) {
    NCCL_PREP(t);
    NCCL_TRY(n, ncclAllReduce(buf, buf, (size_t)n_elems, nt, op == LRSA_RED_MAX ? ncclMax : ncclSum,
                              n->comm, (cudaStream_t)stream));
    return 0;
}

int lrsa_nccl_reduce_scatter(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t,
                             void *stream, lrsa_err *e) {
    NCCL_PREP(t);
    /* in place: NCCL wants recvbuff == sendbuff + rank * recvcount */
    char *mine = (char *)buf + (size_t)c->rank * (size_t)block * lrsa_dtype_size(t);
    NCCL_TRY(
        n, ncclReduceScatter(buf, mine, (size_t)block, nt, ncclSum, n->comm, (cudaStream_t)stream));
    return 0;
}

int lrsa_nccl_allgather(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t, void *stream,
                        lrsa_err *e) {
    NCCL_PREP(t);
    const char *mine = (const char *)buf + (size_t)c->rank * (size_t)block * lrsa_dtype_size(t);
    NCCL_TRY(n, ncclAllGather(mine, buf, (size_t)block, nt, n->comm, (cudaStream_t)stream));
    return 0;
}

int lrsa_nccl_broadcast(const lrsa_comm *c, void *buf, int64_t n_elems, lrsa_dtype t, int root,
                        void *stream, lrsa_err *e) {
    NCCL_PREP(t);
    NCCL_TRY(n, ncclBroadcast(buf, buf, (size_t)n_elems, nt, root, n->comm, (cudaStream_t)stream));
    return 0;
}

int lrsa_nccl_group_start(const lrsa_comm *c, lrsa_err *e) {
    lrsa_nccl *n = usable(c, e);
    if (!n) return -1;
    NCCL_TRY(n, ncclGroupStart());
    return 0;
}

int lrsa_nccl_group_end(const lrsa_comm *c, lrsa_err *e) {
    lrsa_nccl *n = usable(c, e);
    if (!n) return -1;
    NCCL_TRY(n, ncclGroupEnd());
    return 0;
}

int lrsa_nccl_wait(const lrsa_comm *c, void *stream, lrsa_err *e) {
    lrsa_nccl *n = usable(c, e);
    if (!n) return -1;
    double t0 = now_s();
    for (;;) {
        cudaError_t q = cudaStreamQuery((cudaStream_t)stream);
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) {
            abort_comm(n);
            return lrsa_errorf(e,
                               "%s:%d: cudaStreamQuery failed: %s; the NCCL communicator was "
                               "aborted",
                               __FILE__, __LINE__, cudaGetErrorString(q));
        }
        ncclResult_t st = ncclSuccess;
        NCCL_TRY(n, ncclCommGetAsyncError(n->comm, &st));
        if (st != ncclSuccess && st != ncclInProgress)
            return nccl_check(n, st, "a collective (asynchronous error)", __FILE__, __LINE__, e);
        if (now_s() - t0 > n->timeout_s) {
            abort_comm(n);
            return lrsa_errorf(e,
                               "%s:%d: device work did not finish within %.0f s (did another rank "
                               "stop?); the NCCL communicator was aborted",
                               __FILE__, __LINE__, n->timeout_s);
        }
        pause_briefly();
    }
}

int lrsa_nccl_barrier(const lrsa_comm *c, lrsa_err *e) {
    lrsa_nccl *n = usable(c, e);
    if (!n) return -1;
    CUDA_TRY(cudaMemsetAsync(n->flag, 0, sizeof(int), n->stream));
    if (lrsa_nccl_allreduce(c, n->flag, 1, LRSA_I32, LRSA_RED_SUM, n->stream, e)) return -1;
    return lrsa_nccl_wait(c, n->stream, e);
}

#else /* built without NCCL */

static int no_nccl(lrsa_err *e) {
    return lrsa_errorf(e, "device collectives over several ranks need NCCL, and this lrsa was "
                          "built without it (configure with CUDA and NCCL: NCCL_ROOT=... or "
                          "NCCL_INCLUDE_DIR/NCCL_LIBRARY)");
}

int lrsa_nccl_built(void) {
    return 0;
}
int lrsa_nccl_init(lrsa_comm *c, double timeout_s, lrsa_err *e) {
    (void)c, (void)timeout_s;
    return no_nccl(e);
}
void lrsa_nccl_free(lrsa_comm *c) {
    (void)c;
}
int lrsa_nccl_device(const lrsa_comm *c) {
    (void)c;
    return -1;
}
void lrsa_nccl_abort(const lrsa_comm *c) {
    (void)c;
}
int lrsa_nccl_aborted(const lrsa_comm *c) {
    (void)c;
    return 0;
}
int lrsa_nccl_allreduce(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t, lrsa_redop op,
                        void *stream, lrsa_err *e) {
    (void)c, (void)buf, (void)n, (void)t, (void)op, (void)stream;
    return no_nccl(e);
}
int lrsa_nccl_reduce_scatter(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t,
                             void *stream, lrsa_err *e) {
    (void)c, (void)buf, (void)block, (void)t, (void)stream;
    return no_nccl(e);
}
int lrsa_nccl_allgather(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t, void *stream,
                        lrsa_err *e) {
    (void)c, (void)buf, (void)block, (void)t, (void)stream;
    return no_nccl(e);
}
int lrsa_nccl_broadcast(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t, int root,
                        void *stream, lrsa_err *e) {
    (void)c, (void)buf, (void)n, (void)t, (void)root, (void)stream;
    return no_nccl(e);
}
int lrsa_nccl_group_start(const lrsa_comm *c, lrsa_err *e) {
    (void)c;
    return no_nccl(e);
}
int lrsa_nccl_group_end(const lrsa_comm *c, lrsa_err *e) {
    (void)c;
    return no_nccl(e);
}
int lrsa_nccl_wait(const lrsa_comm *c, void *stream, lrsa_err *e) {
    (void)c, (void)stream;
    return no_nccl(e);
}
int lrsa_nccl_barrier(const lrsa_comm *c, lrsa_err *e) {
    (void)c;
    return no_nccl(e);
}
#endif
