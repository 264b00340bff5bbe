#include "train/comm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef LRSA_HAVE_MPI
#include <mpi.h>
#endif

void lrsa_shard_range(int64_t n, int rank, int world, int64_t *lo, int64_t *hi) {
    int64_t base = n / world, extra = n % world;
    *lo = rank * base + (rank < extra ? rank : extra);
    *hi = *lo + base + (rank < extra ? 1 : 0);
}

int lrsa_comm_launched(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_NTASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

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
#endif

int lrsa_comm_init(lrsa_comm *c, lrsa_err *e) {
    memset(c, 0, sizeof *c);
    c->world = 1;
#ifdef LRSA_HAVE_MPI
    int inited = 0;
    MPI_TRY(MPI_Initialized(&inited));
    if (!inited && !lrsa_comm_launched()) return 0; /* plain single-process run */
    if (!inited) {
        MPI_TRY(MPI_Init(NULL, NULL));
        c->we_initialized = 1;
    }
    /* Return codes instead of aborting, so every failure is reported with its place. */
    MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank));
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &c->world));
    c->mpi = 1;
#else
    (void)e;
#endif
    return 0;
}

void lrsa_comm_finalize(lrsa_comm *c) {
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

int lrsa_comm_allreduce_sum_f32(const lrsa_comm *c, float *buf, int64_t n, lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (c->mpi && c->world > 1)
        for (int64_t i = 0; i < n; i += MPI_CHUNK) {
            int cnt = (int)(n - i < MPI_CHUNK ? n - i : MPI_CHUNK);
            MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf + i, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
        }
#else
    (void)c, (void)buf, (void)n, (void)e;
#endif
    return 0;
}

int lrsa_comm_allreduce_sum_f64(const lrsa_comm *c, double *buf, int64_t n, lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (c->mpi && c->world > 1)
        for (int64_t i = 0; i < n; i += MPI_CHUNK) {
            int cnt = (int)(n - i < MPI_CHUNK ? n - i : MPI_CHUNK);
            MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf + i, cnt, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
        }
#else
    (void)c, (void)buf, (void)n, (void)e;
#endif
    return 0;
}

int lrsa_comm_allreduce_max_int(const lrsa_comm *c, int *buf, int n, lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (c->mpi && c->world > 1)
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
#else
    (void)c, (void)buf, (void)n, (void)e;
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
    if (!c->mpi || c->world == 1) return 0;
    int *ic = lrsa_malloc(sizeof(int) * 2 * (size_t)c->world), *id = ic + c->world;
    int rc = to_int_arrays(c, counts, displs, ic, id, e);
    if (!rc)
        rc = mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, ic, id, MPI_FLOAT,
                                      MPI_COMM_WORLD),
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
    if (!c->mpi || c->world == 1) return 0;
    int *ic = lrsa_malloc(sizeof(int) * 2 * (size_t)c->world), *id = ic + c->world;
    int rc = to_int_arrays(c, counts, displs, ic, id, e);
    if (!rc) {
        if (c->rank == root)
            rc = mpi_check(MPI_Gatherv(MPI_IN_PLACE, 0, MPI_FLOAT, all, ic, id, MPI_FLOAT, root,
                                       MPI_COMM_WORLD),
                           "MPI_Gatherv", __FILE__, __LINE__, e);
        else
            rc = mpi_check(MPI_Gatherv(mine, ic[c->rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT,
                                       root, MPI_COMM_WORLD),
                           "MPI_Gatherv", __FILE__, __LINE__, e);
    }
    free(ic);
    return rc;
#else
    (void)counts, (void)displs, (void)e;
    return 0;
#endif
}

int lrsa_comm_bcast(const lrsa_comm *c, void *buf, size_t bytes, int root, lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (c->mpi && c->world > 1)
        for (size_t i = 0; i < bytes; i += (size_t)MPI_CHUNK) {
            int cnt = (int)(bytes - i < (size_t)MPI_CHUNK ? bytes - i : (size_t)MPI_CHUNK);
            MPI_TRY(MPI_Bcast((char *)buf + i, cnt, MPI_BYTE, root, MPI_COMM_WORLD));
        }
#else
    (void)c, (void)buf, (void)bytes, (void)root, (void)e;
#endif
    return 0;
}

int lrsa_comm_barrier(const lrsa_comm *c, lrsa_err *e) {
#ifdef LRSA_HAVE_MPI
    if (c->mpi && c->world > 1) MPI_TRY(MPI_Barrier(MPI_COMM_WORLD));
#else
    (void)c, (void)e;
#endif
    return 0;
}
