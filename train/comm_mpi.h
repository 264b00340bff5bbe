/* The MPI backend of comm.h: collectives on host buffers (the comm.h conventions, without a
 * stream). comm.c dispatches to these; comm_nccl.c uses them to bootstrap NCCL. lrsa_comm_init,
 * _split, _barrier, the non-blocking all-reduce and the uneven gathers of comm.h are MPI-only
 * and live in comm_mpi.c too. */
#ifndef LRSA_TRAIN_COMM_MPI_H
#define LRSA_TRAIN_COMM_MPI_H

#include "train/comm.h"

int lrsa_mpi_allreduce(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t, lrsa_redop op,
                       lrsa_err *e);
int lrsa_mpi_reduce_scatter(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t,
                            lrsa_err *e);
int lrsa_mpi_allgather(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t, lrsa_err *e);
int lrsa_mpi_broadcast(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t, int root,
                       lrsa_err *e);
/* MPI_Finalize when lrsa_comm_init called MPI_Init. */
void lrsa_mpi_finalize(lrsa_comm *c);

#endif
