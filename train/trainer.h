/* The training loop: global batches from the loader, one sequence at a time through the model
 * (B = 1), gradients reduced over ranks, a skip-guard for non-finite steps, clipping, ZeRO-1
 * AdamW, the schedule, logging (terminal + RUN_DIR/metrics.jsonl), compressed answer-NLL
 * evaluation and HDF5 checkpoints with exact resume. */
#ifndef LRSA_TRAIN_TRAINER_H
#define LRSA_TRAIN_TRAINER_H

#include <stdint.h>

#include "base/error.h"
#include "train/comm.h"
#include "train/config.h"

typedef struct lrsa_train_opts {
    int64_t stop_after; /* > 0: stop (with a checkpoint) after this step, as if preempted */
    int quiet;          /* no terminal progress lines */
} lrsa_train_opts;

/* Runs (or resumes) a training run. Everything that can be wrong with the inputs (config,
 * data, model, run directory, checkpoint) is checked before anything is written.
 * Returns 0 when done, -1 on an error, 1 when a stop was requested (lrsa_train_request_stop)
 * and the run stopped at the end of a step with a checkpoint. */
int lrsa_train_run(const lrsa_train_config *cfg, const lrsa_train_opts *opts, lrsa_comm *comm,
                   lrsa_err *e);

/* Asks a running lrsa_train_run to checkpoint and stop after its current step (all ranks agree
 * at the end of each step). Async-signal-safe: the `lrsa train` command calls it from its
 * SIGTERM / SIGINT / SIGUSR1 handler, so a preempted job loses at most one step. */
void lrsa_train_request_stop(int signal_number);
/* The signal that requested the stop (0: none). */
int lrsa_train_stop_requested(void);

#endif
