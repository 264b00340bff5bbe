/* The data-parallel communication layer: rank, world size and the collectives the trainer
 * needs. Built with LRSA_HAVE_MPI and launched by mpirun/srun it uses MPI_COMM_WORLD; a plain
 * `lrsa train` (no launcher in the environment) is one rank and every collective is a copy or a
 * no-op. Every MPI call is checked; a failure becomes an lrsa_err naming file:line and the MPI
 * error string.
 *
 * GPU seam: the trainer only calls these functions on host buffers. A CUDA build adds an NCCL
 * communicator (bootstrapped by broadcasting its unique id with lrsa_comm_bcast) and device-
 * buffer variants next to them; nothing else in the trainer changes. */
#ifndef LRSA_TRAIN_COMM_H
#define LRSA_TRAIN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct lrsa_comm {
    int rank, world;
    int mpi;            /* 1: collectives go through MPI */
    int we_initialized; /* 1: lrsa_comm_init called MPI_Init, so finalize must too */
} lrsa_comm;

/* Whether the environment says a launcher (mpirun/srun) started this process. */
int lrsa_comm_launched(void);
/* Starts MPI when launched (or when already initialised by the caller, e.g. a test). */
int lrsa_comm_init(lrsa_comm *c, lrsa_err *e);
void lrsa_comm_finalize(lrsa_comm *c);

/* In-place sums over all ranks. */
int lrsa_comm_allreduce_sum_f32(const lrsa_comm *c, float *buf, int64_t n, lrsa_err *e);
int lrsa_comm_allreduce_sum_f64(const lrsa_comm *c, double *buf, int64_t n, lrsa_err *e);
/* In-place maximum of ints (agreeing on a failure: any rank's 1 wins). */
int lrsa_comm_allreduce_max_int(const lrsa_comm *c, int *buf, int n, lrsa_err *e);
/* In-place all-gather: rank r owns buf[displs[r] .. displs[r]+counts[r]) and afterwards every
 * rank holds every part. */
int lrsa_comm_allgatherv_f32(const lrsa_comm *c, float *buf, const int64_t *counts,
                             const int64_t *displs, lrsa_err *e);
/* Gathers every rank's part (mine[0 .. counts[rank])) into all[displs[r] ..] on root; `all`
 * is only used on root. */
int lrsa_comm_gatherv_f32(const lrsa_comm *c, const float *mine, float *all, const int64_t *counts,
                          const int64_t *displs, int root, lrsa_err *e);
int lrsa_comm_bcast(const lrsa_comm *c, void *buf, size_t bytes, int root, lrsa_err *e);
int lrsa_comm_barrier(const lrsa_comm *c, lrsa_err *e);

/* The contiguous shard [*lo, *hi) of n elements that rank r owns (balanced, in rank order). */
void lrsa_shard_range(int64_t n, int rank, int world, int64_t *lo, int64_t *hi);

#endif
