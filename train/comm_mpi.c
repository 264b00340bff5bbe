/* The MPI backend of the communication interface (comm.h): launch and bootstrap, and every
 * collective on host buffers. Every MPI call runs under MPI_ERRORS_RETURN and is checked. */
#include "train/comm_mpi.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/launch_env.h"

#ifdef LRSA_HAVE_MPI
#include <mpi.h>
#endif

#ifdef LRSA_HAVE_MPI
/* Turns an MPI return code into an lrsa_err naming the call site. */
static int mpi_check(int rc, const char *call, const char *file, int line, lrsa_err *e) {
    if (rc == MPI_SUCCESS) return 0;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "code %d", rc);
    return lrsa_errorf(e, "%s:%d: %s failed: %s", file, line, call, s);
}
#define MPI_TRY(call)                                                                              \
    do {                                                                                           \
        if (mpi_check((call), #call, __FILE__, __LINE__, e)) return -1;                            \
    } while (0)

/* MPI counts are int: big buffers go in pieces. */
#define MPI_CHUNK ((int64_t)1 << 28)

static MPI_Comm mpi_comm(const lrsa_comm *c) {
    return c->sub ? MPI_Comm_f2c(c->mpi_handle) : MPI_COMM_WORLD;
}

/* Whether a host collective has anything to do. */
static int host_active(const lrsa_comm *c) {
    return c->mpi && c->world > 1;
}

static int mpi_type(lrsa_dtype t, MPI_Datatype *out, lrsa_err *e) {
    switch (t) {
        case LRSA_F32:
            *out = MPI_FLOAT;
            return 0;
        case LRSA_F64:
            *out = MPI_DOUBLE;
            return 0;
        case LRSA_I32:
            *out = MPI_INT;
            return 0;
        case LRSA_U8:
            *out = MPI_BYTE;
            return 0;
        case LRSA_BF16:
        case LRSA_F16:
            break;
    }
    return lrsa_errorf(e, "%s:%d: %s collectives exist only on device buffers (NCCL)", __FILE__,
                       __LINE__, lrsa_dtype_name(t));
}

/* Splits off the ranks of this node (MPI_COMM_TYPE_SHARED) to learn the local rank. */
static int mpi_local_rank(lrsa_comm *c, lrsa_err *e) {
    MPI_Comm node;
    MPI_TRY(
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    int rc = mpi_check(MPI_Comm_rank(node, &c->local_rank), "MPI_Comm_rank", __FILE__, __LINE__, e);
    if (!rc)
        rc =
            mpi_check(MPI_Comm_size(node, &c->local_world), "MPI_Comm_size", __FILE__, __LINE__, e);
    MPI_Comm_free(&node);
    return rc;
}
#endif

int lrsa_comm_init(lrsa_comm *c, lrsa_err *e) {
    memset(c, 0, sizeof *c);
    c->world = c->local_world = 1;
    lrsa_launch l;
    if (lrsa_launch_read(&l, NULL, NULL, e)) return -1;
    snprintf(c->launcher, sizeof c->launcher, "%s", l.launcher);
    int launched = strcmp(l.launcher, "none") != 0;
#ifdef LRSA_HAVE_MPI
    int inited = 0;
    MPI_TRY(MPI_Initialized(&inited));
    if (!inited && !launched && !getenv("PMIX_RANK")) return 0; /* plain single process */
    if (!inited) {
        MPI_TRY(MPI_Init(NULL, NULL));
        c->we_initialized = 1;
    }
    /* Return codes instead of aborting, so every failure is reported with its place. */
    MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank));
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &c->world));
    c->mpi = 1;
    if (launched && !inited && (l.rank != c->rank || l.world != c->world))
        return lrsa_errorf(e,
                           "%s started rank %d of %d, but MPI_Init reports rank %d of %d: the MPI "
                           "library does not match the launcher (with srun, use --mpi=pmix and an "
                           "Open MPI built with Slurm/PMIx support, or start with mpirun)",
                           l.launcher, l.rank, l.world, c->rank, c->world);
    if (l.local_rank >= 0 && l.local_world >= 0) {
        c->local_rank = l.local_rank;
        c->local_world = l.local_world;
    } else if (mpi_local_rank(c, e)) {
        return -1;
    }
#else
    if (l.world > 1)
        return lrsa_errorf(e,
                           "%s started %d ranks, but this lrsa was built without MPI "
                           "(-DLRSA_MPI=OFF): rebuild with MPI, or run one process",
                           l.launcher, l.world);
#endif
    return 0;
}

void lrsa_mpi_finalize(lrsa_comm *c) {
#ifdef LRSA_HAVE_MPI
    if (c->we_initialized) {
        /* Nothing to return to at exit: a failure is reported and otherwise ignored. */
        int fin = 0;
        lrsa_err err;
        lrsa_err *e = &err;
        if (mpi_check(MPI_Finalized(&fin), "MPI_Finalized", __FILE__, __LINE__, e) ||
            (!fin && mpi_check(MPI_Finalize(), "MPI_Finalize", __FILE__, __LINE__, e)))
            lrsa_err_print(e);
    }
#endif
    c->we_initialized = 0;
}

int lrsa_comm_split(const lrsa_comm *c, int color, int key, lrsa_comm *sub, lrsa_err *e) {
    memset(sub, 0, sizeof *sub);
    sub->world = sub->local_world = 1;
    snprintf(sub->launcher, sizeof sub->launcher, "%s", c->launcher);
#ifdef LRSA_HAVE_MPI
    if (!c->mpi) return 0;
    MPI_Comm out;
    MPI_TRY(MPI_Comm_split(mpi_comm(c), color, key, &out));
    MPI_TRY(MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN));
    MPI_TRY(MPI_Comm_rank(out, &sub->rank));
    MPI_TRY(MPI_Comm_size(out, &sub->world));
    sub->mpi = 1;
    sub->sub = 1;
    sub->mpi_handle = (int)MPI_Comm_c2f(out);
    sub->local_rank = c->local_rank; /* the node is the same; only the peers changed */
    sub->local_world = c->local_world;
#else
    (void)c, (void)color, (void)key, (void)e;
#endif
    return 0;
}

void lrsa_comm_free_sub(lrsa_comm *sub) {
#ifdef LRSA_HAVE_MPI
    if (sub->sub) {
        MPI_Comm h = MPI_Comm_f2c(sub->mpi_handle);
        MPI_Comm_free(&h);
    }
#endif
    memset(sub, 0, sizeof *sub);
}

int lrsa_mpi_allreduce(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t, lrsa_redop op,
                       lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (!host_active(c)) return 0;
    MPI_Datatype dt = MPI_DATATYPE_NULL;
    if (mpi_type(t, &dt, e)) return -1;
    size_t es = lrsa_dtype_size(t);
    for (int64_t i = 0; i < n; i += MPI_CHUNK) {
        int cnt = (int)(n - i < MPI_CHUNK ? n - i : MPI_CHUNK);
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)i * es, cnt, dt,
                              op == LRSA_RED_MAX ? MPI_MAX : MPI_SUM, mpi_comm(c)));
    }
#else
    (void)buf, (void)n, (void)t, (void)op, (void)e;
#endif
    return 0;
}

int lrsa_mpi_reduce_scatter(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t,
                            lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (!host_active(c) || block == 0) return 0;
    MPI_Datatype dt = MPI_DATATYPE_NULL;
    if (mpi_type(t, &dt, e)) return -1;
    if (block > INT_MAX)
        return lrsa_errorf(e, "%s:%d: a reduce-scatter block of %lld elements exceeds one MPI call",
                           __FILE__, __LINE__, (long long)block);
    /* MPI_IN_PLACE leaves the result at the front; NCCL's convention puts it at rank*block. */
    MPI_TRY(MPI_Reduce_scatter_block(MPI_IN_PLACE, buf, (int)block, dt, MPI_SUM, mpi_comm(c)));
    size_t es = lrsa_dtype_size(t);
    if (c->rank > 0) memmove((char *)buf + (size_t)(c->rank * block) * es, buf, (size_t)block * es);
#else
    (void)buf, (void)block, (void)t, (void)e;
#endif
    return 0;
}

int lrsa_mpi_allgather(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t, lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (!host_active(c) || block == 0) return 0;
    MPI_Datatype dt = MPI_DATATYPE_NULL;
    if (mpi_type(t, &dt, e)) return -1;
    if (block > INT_MAX)
        return lrsa_errorf(e, "%s:%d: an all-gather block of %lld elements exceeds one MPI call",
                           __FILE__, __LINE__, (long long)block);
    MPI_TRY(MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)block, dt, mpi_comm(c)));
#else
    (void)buf, (void)block, (void)t, (void)e;
#endif
    return 0;
}

int lrsa_mpi_broadcast(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t, int root,
                       lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (!host_active(c)) return 0;
    MPI_Datatype dt = MPI_DATATYPE_NULL;
    if (mpi_type(t, &dt, e)) return -1;
    size_t es = lrsa_dtype_size(t);
    for (int64_t i = 0; i < n; i += MPI_CHUNK) {
        int cnt = (int)(n - i < MPI_CHUNK ? n - i : MPI_CHUNK);
        MPI_TRY(MPI_Bcast((char *)buf + (size_t)i * es, cnt, dt, root, mpi_comm(c)));
    }
#else
    (void)buf, (void)n, (void)t, (void)root, (void)e;
#endif
    return 0;
}

int lrsa_comm_barrier(const lrsa_comm *c, lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (host_active(c)) MPI_TRY(MPI_Barrier(mpi_comm(c)));
#else
    (void)c, (void)e;
#endif
    return 0;
}

/* ---- Non-blocking all-reduce ----------------------------------------------------------- */

int lrsa_comm_iallreduce(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t,
                         lrsa_comm_request *req, lrsa_err *e) {
    req->n = 0;
#ifdef LRSA_HAVE_MPI
    if (!host_active(c)) return 0;
    MPI_Datatype dt = MPI_DATATYPE_NULL;
    if (mpi_type(t, &dt, e)) return -1;
    size_t es = lrsa_dtype_size(t);
    for (int64_t i = 0; i < n; i += MPI_CHUNK) {
        if (req->n == (int)(sizeof req->handles / sizeof req->handles[0]))
            return lrsa_errorf(e, "%s:%d: a non-blocking all-reduce of %lld elements is too big",
                               __FILE__, __LINE__, (long long)n);
        int cnt = (int)(n - i < MPI_CHUNK ? n - i : MPI_CHUNK);
        MPI_Request r;
        MPI_TRY(MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)i * es, cnt, dt, MPI_SUM,
                               mpi_comm(c), &r));
        req->handles[req->n++] = (int)MPI_Request_c2f(r);
    }
#else
    (void)c, (void)buf, (void)n, (void)t, (void)e;
#endif
    return 0;
}

int lrsa_comm_test(const lrsa_comm *c, lrsa_comm_request *req, int *done, lrsa_err *e) {
    (void)c;
    *done = 1;
#ifdef LRSA_HAVE_MPI
    while (req->n > 0) {
        MPI_Request r = MPI_Request_f2c(req->handles[req->n - 1]);
        int flag = 0;
        MPI_TRY(MPI_Test(&r, &flag, MPI_STATUS_IGNORE));
        if (!flag) {
            *done = 0;
            return 0;
        }
        req->n--;
    }
#else
    (void)req, (void)e;
#endif
    return 0;
}

int lrsa_comm_wait(const lrsa_comm *c, lrsa_comm_request *req, lrsa_err *e) {
    (void)c;
#ifdef LRSA_HAVE_MPI
    while (req->n > 0) {
        MPI_Request r = MPI_Request_f2c(req->handles[req->n - 1]);
        MPI_TRY(MPI_Wait(&r, MPI_STATUS_IGNORE));
        req->n--;
    }
#else
    (void)req, (void)e;
#endif
    return 0;
}

#ifdef LRSA_HAVE_MPI
static int to_int_arrays(const lrsa_comm *c, const int64_t *counts, const int64_t *displs, int *ic,
                         int *id, lrsa_err *e) {
    for (int r = 0; r < c->world; r++) {
        if (counts[r] > INT_MAX || displs[r] > INT_MAX)
            return lrsa_errorf(e,
                               "%s:%d: a shard of %lld elements exceeds what one MPI call "
                               "moves (2^31-1)",
                               __FILE__, __LINE__, (long long)counts[r]);
        ic[r] = (int)counts[r];
        id[r] = (int)displs[r];
    }
    return 0;
}
#endif

int lrsa_comm_allgatherv_f32(const lrsa_comm *c, float *buf, const int64_t *counts,
                             const int64_t *displs, lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (!host_active(c)) return 0;
    int *ic = lrsa_malloc(sizeof(int) * 2 * (size_t)c->world), *id = ic + c->world;
    int rc = to_int_arrays(c, counts, displs, ic, id, e);
    if (!rc)
        rc = mpi_check(
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, ic, id, MPI_FLOAT, mpi_comm(c)),
            "MPI_Allgatherv", __FILE__, __LINE__, e);
    free(ic);
    return rc;
#else
    (void)c, (void)buf, (void)counts, (void)displs, (void)e;
    return 0;
#endif
}

int lrsa_comm_gatherv_f32(const lrsa_comm *c, const float *mine, float *all, const int64_t *counts,
                          const int64_t *displs, int root, lrsa_err *e) {
    if (c->rank == root && counts[root] > 0)
        memmove(all + displs[root], mine, sizeof(float) * (size_t)counts[root]);
#ifdef LRSA_HAVE_MPI
    if (!host_active(c)) return 0;
    int *ic = lrsa_malloc(sizeof(int) * 2 * (size_t)c->world), *id = ic + c->world;
    int rc = to_int_arrays(c, counts, displs, ic, id, e);
    if (!rc) {
        if (c->rank == root)
            rc = mpi_check(
                MPI_Gatherv(MPI_IN_PLACE, 0, MPI_FLOAT, all, ic, id, MPI_FLOAT, root, mpi_comm(c)),
                "MPI_Gatherv", __FILE__, __LINE__, e);
        else
            rc = mpi_check(MPI_Gatherv(mine, ic[c->rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT,
                                       root, mpi_comm(c)),
                           "MPI_Gatherv", __FILE__, __LINE__, e);
    }
    free(ic);
    return rc;
#else
    (void)counts, (void)displs, (void)e;
    return 0;
#endif
}
