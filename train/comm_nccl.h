/* The NCCL backend of the communication interface (comm.h): collectives on device buffers.
 *
 * One communicator per job, made by lrsa_nccl_init over the ranks of an lrsa_comm: each rank
 * takes the CUDA device its local rank names (launch_env.h), rank 0 makes the unique id and MPI
 * broadcasts it (MPI is only the bootstrap; no transport of our own). The communicator is
 * non-blocking, so every wait has a deadline: init, each enqueue and lrsa_nccl_wait poll
 * ncclCommGetAsyncError and give up after timeout_s. Any failure (an NCCL error, an
 * asynchronous error reported by a peer's death, a timeout) aborts the communicator with
 * ncclCommAbort, so the rank returns an error naming file:line instead of hanging; the other
 * ranks' operations then fail or time out the same way.
 *
 * Built without CUDA or without NCCL (LRSA_HAVE_NCCL unset), lrsa_nccl_init returns an error
 * saying so and the device collectives of a multi-rank comm fail the same way.
 * Status: compiled against NCCL 2.28 (CUDA 13), NEVER RUN ON A GPU. */
#ifndef LRSA_TRAIN_COMM_NCCL_H
#define LRSA_TRAIN_COMM_NCCL_H

#include "train/comm.h"

/* Whether this build has the NCCL backend. */
int lrsa_nccl_built(void);
/* Creates c->nccl (collective over c: every rank calls it). timeout_s > 0 bounds every wait.
 * Agrees across ranks on failure, so no rank is left waiting in the bootstrap. */
int lrsa_nccl_init(lrsa_comm *c, double timeout_s, lrsa_err *e);
/* Finalizes and destroys the communicator (no-op when there is none or it was aborted). */
void lrsa_nccl_free(lrsa_comm *c);
/* The CUDA device this rank's communicator uses (-1 without one). */
int lrsa_nccl_device(const lrsa_comm *c);
/* Aborts the communicator now (a caller's own failure path); later calls fail. */
void lrsa_nccl_abort(const lrsa_comm *c);
/* Whether the communicator was aborted (by a failure, a timeout or lrsa_nccl_abort). */
int lrsa_nccl_aborted(const lrsa_comm *c);

/* The device collectives behind comm.h's LRSA_MEM_DEVICE calls (same arguments and in-place
 * conventions), enqueued on `stream` (a cudaStream_t; NULL = legacy default stream). */
int lrsa_nccl_allreduce(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t, lrsa_redop op,
                        void *stream, lrsa_err *e);
int lrsa_nccl_reduce_scatter(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t,
                             void *stream, lrsa_err *e);
int lrsa_nccl_allgather(const lrsa_comm *c, void *buf, int64_t block, lrsa_dtype t, void *stream,
                        lrsa_err *e);
int lrsa_nccl_broadcast(const lrsa_comm *c, void *buf, int64_t n, lrsa_dtype t, int root,
                        void *stream, lrsa_err *e);
/* ncclGroupStart/End: collectives between them are launched together (one per bucket). */
int lrsa_nccl_group_start(const lrsa_comm *c, lrsa_err *e);
int lrsa_nccl_group_end(const lrsa_comm *c, lrsa_err *e);
/* Waits until `stream` is idle, polling for NCCL errors; on an error or after the timeout the
 * communicator is aborted and an error returned. */
int lrsa_nccl_wait(const lrsa_comm *c, void *stream, lrsa_err *e);
/* Every rank's device work on the communicator's own stream done: a one-element all-reduce
 * waited for with the timeout. */
int lrsa_nccl_barrier(const lrsa_comm *c, lrsa_err *e);

#endif
