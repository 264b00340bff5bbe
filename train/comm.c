/* The communication interface (comm.h): the launch check, the dispatch of the five
 * collectives to the MPI backend (host buffers, comm_mpi.c) or the NCCL backend (device
 * buffers, comm_nccl.c), and the host shorthands the CPU trainer uses. */
#include "train/comm.h"

#include <stdlib.h>
#include <string.h>

#include "train/comm_mpi.h"
#include "train/comm_nccl.h"
#include "train/launch_env.h"

void lrsa_shard_range(int64_t n, int rank, int world, int64_t *lo, int64_t *hi) {
    int64_t base = n / world, extra = n % world;
    *lo = rank * base + (rank < extra ? rank : extra);
    *hi = *lo + base + (rank < extra ? 1 : 0);
}

int lrsa_comm_launched(void) {
    lrsa_launch l;
    if (lrsa_launch_read(&l, NULL, NULL, NULL)) return 1; /* a launcher, badly set up */
    return strcmp(l.launcher, "none") != 0 || getenv("PMIX_RANK") != NULL;
}

void lrsa_comm_finalize(lrsa_comm *c) {
    lrsa_nccl_free(c);
    lrsa_mpi_finalize(c);
}

/* ---- The five collectives: device buffers to NCCL, host buffers to MPI ----------------- */

/* One rank without an NCCL communicator has nothing to communicate. */
static int device_noop(const lrsa_comm *c) {
    return !c->nccl && c->world == 1;
}

int lrsa_comm_allreduce(const lrsa_comm *c, lrsa_mem mem, void *buf, int64_t n, lrsa_dtype t,
                        lrsa_redop op, void *stream, lrsa_err *e) {
    if (mem == LRSA_MEM_HOST) return lrsa_mpi_allreduce(c, buf, n, t, op, e);
    return device_noop(c) ? 0 : lrsa_nccl_allreduce(c, buf, n, t, op, stream, e);
}

int lrsa_comm_reduce_scatter(const lrsa_comm *c, lrsa_mem mem, void *buf, int64_t block,
                             lrsa_dtype t, void *stream, lrsa_err *e) {
    if (mem == LRSA_MEM_HOST) return lrsa_mpi_reduce_scatter(c, buf, block, t, e);
    return device_noop(c) ? 0 : lrsa_nccl_reduce_scatter(c, buf, block, t, stream, e);
}

int lrsa_comm_allgather(const lrsa_comm *c, lrsa_mem mem, void *buf, int64_t block, lrsa_dtype t,
                        void *stream, lrsa_err *e) {
    if (mem == LRSA_MEM_HOST) return lrsa_mpi_allgather(c, buf, block, t, e);
    return device_noop(c) ? 0 : lrsa_nccl_allgather(c, buf, block, t, stream, e);
}

int lrsa_comm_broadcast(const lrsa_comm *c, lrsa_mem mem, void *buf, int64_t n, lrsa_dtype t,
                        int root, void *stream, lrsa_err *e) {
    if (mem == LRSA_MEM_HOST) return lrsa_mpi_broadcast(c, buf, n, t, root, e);
    return device_noop(c) ? 0 : lrsa_nccl_broadcast(c, buf, n, t, root, stream, e);
}

/* ---- Host shorthands ------------------------------------------------------------------- */

int lrsa_comm_allreduce_sum_f32(const lrsa_comm *c, float *buf, int64_t n, lrsa_err *e) {
    return lrsa_comm_allreduce(c, LRSA_MEM_HOST, buf, n, LRSA_F32, LRSA_RED_SUM, NULL, e);
}

int lrsa_comm_allreduce_sum_f64(const lrsa_comm *c, double *buf, int64_t n, lrsa_err *e) {
    return lrsa_comm_allreduce(c, LRSA_MEM_HOST, buf, n, LRSA_F64, LRSA_RED_SUM, NULL, e);
}

int lrsa_comm_allreduce_max_int(const lrsa_comm *c, int *buf, int n, lrsa_err *e) {
    return lrsa_comm_allreduce(c, LRSA_MEM_HOST, buf, n, LRSA_I32, LRSA_RED_MAX, NULL, e);
}

int lrsa_comm_bcast(const lrsa_comm *c, void *buf, size_t bytes, int root, lrsa_err *e) {
    return lrsa_comm_broadcast(c, LRSA_MEM_HOST, buf, (int64_t)bytes, LRSA_U8, root, NULL, e);
}
