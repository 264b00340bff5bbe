/* The data-parallel communication layer: one interface, two backends.
 *
 *   all-reduce, reduce-scatter, all-gather, broadcast, barrier
 *
 * on host buffers go through MPI (CPU tensors); on device buffers (LRSA_COMM_DEVICE) through
 * NCCL, enqueued on a CUDA stream (comm_nccl.h creates the job's one NCCL communicator, its
 * unique id broadcast over MPI). Launched by mpirun or srun (launch_env.h) the job is
 * MPI_COMM_WORLD; a plain `lrsa train` is one rank and every collective is a no-op. Every MPI
 * and NCCL call is checked; a failure becomes an lrsa_err naming file:line and the library's
 * error string (NCCL failures also abort the communicator, so no rank waits forever).
 *
 * Equal-block collectives (reduce-scatter, all-gather) are in place, NCCL's convention: the
 * buffer holds world blocks of `block` elements and rank r's block is buf[r*block ..]. */
#ifndef LRSA_TRAIN_COMM_H
#define LRSA_TRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "autograd/tensor.h"
#include "base/error.h"

typedef struct lrsa_nccl lrsa_nccl;

typedef struct lrsa_comm {
    int rank, world;
    int mpi;                     /* 1: host collectives go through MPI */
    int we_initialized;          /* 1: lrsa_comm_init called MPI_Init, so finalize must too */
    int local_rank, local_world; /* on this node (which GPU a rank uses) */
    int sub;                     /* 1: mpi_handle is a sub-communicator (lrsa_comm_split) */
    int mpi_handle;              /* MPI_Comm as MPI_Comm_c2f gives it; unused when !sub */
    char launcher[16];           /* launch_env.h: none, openmpi, slurm, pmi */
    lrsa_nccl *nccl;             /* device collectives; NULL until lrsa_nccl_init */
} lrsa_comm;

/* Element types: autograd/tensor.h's lrsa_dtype (F32, F64, I32, U8 on both backends; BF16 on
 * device buffers only, MPI has no bf16 type). */

typedef enum lrsa_redop { LRSA_RED_SUM = 0, LRSA_RED_MAX } lrsa_redop;

/* Where a collective's buffer lives. DEVICE collectives take a cudaStream_t (as void *; NULL is
 * the legacy default stream) and return once enqueued. */
typedef enum lrsa_mem { LRSA_MEM_HOST = 0, LRSA_MEM_DEVICE } lrsa_mem;

/* Whether the environment says a launcher (mpirun/srun) started this process. */
int lrsa_comm_launched(void);
/* Reads the launch environment and starts MPI when launched (or uses MPI already initialised
 * by the caller, e.g. a test); checks that MPI's rank and size agree with the launcher's. */
int lrsa_comm_init(lrsa_comm *c, lrsa_err *e);
/* Frees the NCCL communicator (if any), then finalizes MPI if lrsa_comm_init started it. */
void lrsa_comm_finalize(lrsa_comm *c);
/* The ranks with the same color form a new communicator (ordered by key); sub->nccl is NULL.
 * Collective over c. Free with lrsa_comm_free_sub. */
int lrsa_comm_split(const lrsa_comm *c, int color, int key, lrsa_comm *sub, lrsa_err *e);
void lrsa_comm_free_sub(lrsa_comm *sub);

/* ---- The five collectives, on either backend ------------------------------------------- */
int lrsa_comm_allreduce(const lrsa_comm *c, lrsa_mem mem, void *buf, int64_t n, lrsa_dtype t,
                        lrsa_redop op, void *stream, lrsa_err *e);
/* In place: buf holds world blocks; afterwards rank r's block holds the sum of every rank's
 * block r (the other blocks are left undefined). */
int lrsa_comm_reduce_scatter(const lrsa_comm *c, lrsa_mem mem, void *buf, int64_t block,
                             lrsa_dtype t, void *stream, lrsa_err *e);
/* In place: rank r's block buf[r*block ..] is copied into every rank's buffer. */
int lrsa_comm_allgather(const lrsa_comm *c, lrsa_mem mem, void *buf, int64_t block, lrsa_dtype t,
                        void *stream, lrsa_err *e);
int lrsa_comm_broadcast(const lrsa_comm *c, lrsa_mem mem, void *buf, int64_t n, lrsa_dtype t,
                        int root, void *stream, lrsa_err *e);
/* Every rank waits for every other (host side; device work already enqueued is not waited
 * for). */
int lrsa_comm_barrier(const lrsa_comm *c, lrsa_err *e);

/* ---- Non-blocking host all-reduce (MPI_Iallreduce), for overlapping with compute -------- */
typedef struct lrsa_comm_request {
    int n;          /* outstanding MPI requests (a buffer above INT_MAX elements takes several) */
    int handles[8]; /* MPI_Request as MPI_Request_c2f gives it */
} lrsa_comm_request;
/* Starts the in-place sum of buf[0, n) (n <= 8 * INT_MAX); buf must not be touched until
 * lrsa_comm_wait. One rank: completes at once. */
int lrsa_comm_iallreduce(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t,
                         lrsa_comm_request *req, lrsa_err *e);
/* Lets MPI progress the request; *done = 1 when it has completed. */
int lrsa_comm_test(const lrsa_comm *c, lrsa_comm_request *req, int *done, lrsa_err *e);
int lrsa_comm_wait(const lrsa_comm *c, lrsa_comm_request *req, lrsa_err *e);

/* ---- Host shorthands the CPU trainer uses ---------------------------------------------- */
int lrsa_comm_allreduce_sum_f32(const lrsa_comm *c, float *buf, int64_t n, lrsa_err *e);
int lrsa_comm_allreduce_sum_f64(const lrsa_comm *c, double *buf, int64_t n, lrsa_err *e);
/* In-place maximum of ints (agreeing on a failure: any rank's 1 wins). */
int lrsa_comm_allreduce_max_int(const lrsa_comm *c, int *buf, int n, lrsa_err *e);
/* In-place all-gather of uneven parts: rank r owns buf[displs[r] .. displs[r]+counts[r]) and
 * afterwards every rank holds every part. */
int lrsa_comm_allgatherv_f32(const lrsa_comm *c, float *buf, const int64_t *counts,
                             const int64_t *displs, lrsa_err *e);
/* Gathers every rank's part (mine[0 .. counts[rank])) into all[displs[r] ..] on root; `all`
 * is only used on root. */
int lrsa_comm_gatherv_f32(const lrsa_comm *c, const float *mine, float *all, const int64_t *counts,
                          const int64_t *displs, int root, lrsa_err *e);
int lrsa_comm_bcast(const lrsa_comm *c, void *buf, size_t bytes, int root, lrsa_err *e);

/* The contiguous shard [*lo, *hi) of n elements that rank r owns (balanced, in rank order). */
void lrsa_shard_range(int64_t n, int rank, int world, int64_t *lo, int64_t *hi);

#endif
