/* The plan of a synthetic dataset: which task and which target length each sample gets.
 *
 * Task mixtures (`--synthetic passkey,vartrack,...`): the samples are cut into blocks of k (the
 * number of tasks); each block holds every task once, in an order drawn afresh per block. So
 * every task gets n/k samples (the first n mod k tasks of the last block's order one more), and
 * every prefix of the dataset (`lrsa eval --n N`) is as balanced as N allows.
 *
 * Length ranges (`--length LO:HI`): each sample's target is drawn uniformly from [LO, HI].
 *
 * Both draw from their own RNG streams (derived from the seed), never from the stream that
 * generates the samples, so a single task at one length consumes exactly the random numbers it
 * always did (same arguments, same file). */
#ifndef LRSA_DATA_SYNTHETIC_PLAN_H
#define LRSA_DATA_SYNTHETIC_PLAN_H
#include <stdint.h>

#include "base/error.h"

#define LRSA_SYNTH_MAX_MIX 16

typedef struct lrsa_synth_tasks {
    char name[LRSA_SYNTH_MAX_MIX][32];
    int n;
} lrsa_synth_tasks;

/* Parses "passkey" or "passkey,niah-multikey,..." (known tasks, no repeats, at most 16). Errors
 * name the flag and list the tasks. */
int lrsa_synth_tasks_parse(const char *list, lrsa_synth_tasks *t, lrsa_err *e);

typedef struct lrsa_synth_plan {
    int64_t n;
    int *task;       /* [n] index into the task list */
    int64_t *length; /* [n] target tokens */
} lrsa_synth_plan;

/* n samples over n_tasks tasks; lengths uniform in [length, length_max] (length_max <= length:
 * all `length`). */
void lrsa_synth_plan_make(lrsa_synth_plan *p, int64_t n, int n_tasks, int64_t length,
                          int64_t length_max, uint64_t seed);
void lrsa_synth_plan_free(lrsa_synth_plan *p);
#endif
