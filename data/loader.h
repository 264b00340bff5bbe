/* The batch loader: forms GLOBAL batches by a token budget from a dataset, in a shuffled order
 * that depends only on (seed, epoch), and tells each data-parallel rank its shard.
 *
 * - Global batch: samples are taken in the epoch's shuffled order and added while the sum of
 *   their lengths stays <= tokens_per_batch; a sample longer than the budget forms a batch alone.
 *   Every rank computes the same global batch (same dataset, seed, budget), so the loss
 *   normaliser (total answer tokens of the global batch, `n_target`) is known everywhere without
 *   communication.
 * - Shard: entry i of the global batch (in batch order) belongs to rank i % world. A rank may get
 *   no sample (then it contributes zero loss and zero gradients but still joins collectives).
 * - Micro-batching / gradient accumulation within a rank's shard is the trainer's business.
 * - Epochs: when the order is exhausted the epoch counter increases and a new order is drawn
 *   (seed mixed with the epoch); a global batch never spans two epochs.
 * - Checkpoint: the state is (seed, epoch, cursor); restoring it continues identically.
 */
#ifndef LRSA_DATA_LOADER_H
#define LRSA_DATA_LOADER_H
#include <stdint.h>

#include "base/error.h"
#include "data/dataset.h"

typedef struct lrsa_loader_state {
    uint64_t seed;
    int64_t epoch;  /* 0-based epoch of the next batch */
    int64_t cursor; /* position in the epoch's order of the next sample */
} lrsa_loader_state;

typedef struct lrsa_loader {
    const lrsa_dataset *ds;
    int64_t tokens_per_batch;
    int rank, world;
    int shuffle; /* 0 = dataset order every epoch (evaluation) */
    lrsa_loader_state st;
    int64_t *order;      /* [n] the current epoch's order */
    int64_t order_epoch; /* epoch `order` was drawn for (-1 = none) */
} lrsa_loader;

typedef struct lrsa_global_batch {
    int64_t epoch;    /* the epoch this batch belongs to */
    int64_t n;        /* samples in the global batch */
    int64_t *samples; /* [n] dataset indices, in batch order (same on every rank) */
    int64_t n_tokens; /* sum of lengths over the global batch */
    int64_t n_target; /* sum of loss_mask over the global batch: the loss normaliser */
    int64_t n_local;  /* this rank's share */
    int64_t *local;   /* [n_local] dataset indices for this rank: samples[i], i % world == rank */
    int64_t cap;      /* allocated entries (internal) */
} lrsa_global_batch;

/* tokens_per_batch > 0, 0 <= rank < world. Errors (empty dataset, bad arguments) name the flag. */
int lrsa_loader_init(lrsa_loader *l, const lrsa_dataset *ds, int64_t tokens_per_batch,
                     uint64_t seed, int shuffle, int rank, int world, lrsa_err *e);
void lrsa_loader_free(lrsa_loader *l);
/* Fills gb with the next global batch (always succeeds on a valid loader: epochs wrap). */
int lrsa_loader_next(lrsa_loader *l, lrsa_global_batch *gb);
void lrsa_global_batch_free(lrsa_global_batch *gb);
/* Number of global batches one epoch makes (depends on the epoch's order). */
int64_t lrsa_loader_batches_in_epoch(lrsa_loader *l, int64_t epoch);

/* The checkpointable state, and restoring it (checks cursor <= n). */
lrsa_loader_state lrsa_loader_state_get(const lrsa_loader *l);
int lrsa_loader_restore(lrsa_loader *l, const lrsa_loader_state *s, lrsa_err *e);
#endif
