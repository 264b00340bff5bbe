/* Overlapped gradient reduction on the CPU (MPI): the flat gradient arena is cut into buckets
 * at the model's readiness points (lrsa_model_grad_ready_offsets), and during the backward of a
 * step's last local sample each bucket's all-reduce starts (MPI_Iallreduce) as soon as the
 * backward has finished the layers it covers, so the reduction of the late layers runs while
 * the early layers' backward still computes. Every rank starts the same buckets in the same
 * order (a rank without samples starts them all at the end), as MPI requires.
 *
 * With deterministic_reduce the bucket's per-sample gradients are first added into the double
 * buffer `acc` (exactly what the blocking path does for the whole arena) and the double buffer
 * is reduced, so the result is bit-identical to the blocking path and, as that one, to one
 * rank. Without it the float gradients are reduced in place. */
#ifndef LRSA_TRAIN_GRAD_SYNC_H
#define LRSA_TRAIN_GRAD_SYNC_H

#include <stdint.h>

#include "model/model.h"
#include "train/comm.h"

typedef struct lrsa_grad_sync {
    const lrsa_comm *comm;
    int64_t numel;
    int n_buckets;
    int64_t *lo;             /* bucket b = [lo[b], lo[b-1]) (lo[-1] = numel), backward order */
    lrsa_comm_request *reqs; /* [n_buckets] */
    int launched;            /* buckets started this step */
    int armed;               /* the current call is this rank's last sample of the step */
    int64_t done_from;       /* acc already holds this call's gradients in [done_from, numel) */
    float *grad;             /* the GRAD arena */
    double *acc;             /* deterministic_reduce's double buffer, or NULL */
    int failed;              /* a start failed inside the backward; err says why */
    lrsa_err err;
} lrsa_grad_sync;

/* Buckets of at least bucket_elems elements (whole layers; the last one takes what is left). */
void lrsa_grad_sync_init(lrsa_grad_sync *s, const lrsa_model *m, const lrsa_comm *comm,
                         int64_t bucket_elems);
void lrsa_grad_sync_free(lrsa_grad_sync *s);
/* Registers the readiness callback on ws (once). */
void lrsa_grad_sync_attach(lrsa_grad_sync *s, lrsa_workspace *ws);
/* Called before a step's first sample. */
void lrsa_grad_sync_begin(lrsa_grad_sync *s, float *grad, double *acc);
/* Called before this rank's last sample of the step: its backward starts the reductions. */
void lrsa_grad_sync_arm(lrsa_grad_sync *s);
/* Whether the last call's gradients were already moved into acc (so the caller must not). */
int lrsa_grad_sync_consumed(const lrsa_grad_sync *s);
/* Starts what has not started, waits for every bucket and, with acc, writes the rounded sums
 * into grad. The first failure is returned (all requests are still waited for). */
int lrsa_grad_sync_finish(lrsa_grad_sync *s, lrsa_err *e);

#endif
