/* ZeRO-1 over buckets: which part of the flat parameter arena each rank owns on the GPU path.
 *
 * The arena is cut into communication buckets at the model's gradient-readiness points
 * (lrsa_model_grad_ready_offsets), in backward order (bucket 0 ends the arena), each at least
 * bucket_elems long. Every bucket is a whole number of units of world * align elements, so NCCL's
 * reduce-scatter and all-gather (equal blocks) apply to it directly: rank r owns the piece
 * [lo + r*piece, lo + (r+1)*piece) of every bucket. A bucket's start is a readiness point rounded
 * up to a unit, so it holds only gradients that are final when that point is reached; the arena
 * is padded at its end to a whole unit (the padding stays zero).
 *
 * A rank's shard is the concatenation of its pieces, bucket by bucket ("local" order): its fp32
 * master weights and AdamW moments live there. Checkpoints hold whole arrays; the gather and
 * extract functions convert, so a run resumes on any number of ranks (or on the CPU). Pure host
 * code: the layout is tested on the CPU. */
#ifndef LRSA_TRAIN_ZERO_LAYOUT_H
#define LRSA_TRAIN_ZERO_LAYOUT_H

#include <stdint.h>

#include "train/comm.h"

typedef struct lrsa_zero_bucket {
    int64_t lo, hi; /* arena range, hi - lo = world * piece */
    int64_t piece;  /* elements each rank owns of it */
    int64_t local;  /* where this bucket's piece starts in a rank's shard */
} lrsa_zero_bucket;

typedef struct lrsa_zero_layout {
    int world, rank;
    int64_t numel;  /* real elements */
    int64_t padded; /* arena length with the padding: a whole number of units */
    int n_buckets;
    lrsa_zero_bucket *b; /* backward order: b[0].hi == padded, b[n-1].lo == 0 */
    int64_t shard;       /* elements of a rank's shard (the same on every rank) */
} lrsa_zero_layout;

/* ready: the readiness offsets in backward order, ending with 0. align: piece granularity in
 * elements (64 keeps every piece 128-byte aligned in bf16). */
void lrsa_zero_layout_init(lrsa_zero_layout *L, const int64_t *ready, int n_ready, int64_t numel,
                           int world, int rank, int64_t bucket_elems, int64_t align);
void lrsa_zero_layout_free(lrsa_zero_layout *L);
/* The buckets whose gradients are all final once the backward reached `offset`: b[0 .. n). */
int lrsa_zero_buckets_ready(const lrsa_zero_layout *L, int64_t offset);
/* The buckets holding any weight below `end` (what the forward reads before it reaches `end`,
 * model/weights_needed.h), counted in forward order: b[n_buckets - 1], b[n_buckets - 2], ..
 * (n of them). */
int lrsa_zero_buckets_needed(const lrsa_zero_layout *L, int64_t end);

/* local[j] = full[the arena element of shard slot j] (0 for padding): this rank's shard of a
 * whole array (weights from the host table, moments from a checkpoint). */
void lrsa_zero_extract(const lrsa_zero_layout *L, const float *full, float *local);
/* The reverse for one rank r's shard: writes the real elements of full it owns. */
void lrsa_zero_scatter_into(const lrsa_zero_layout *L, int r, const float *local, float *full);
/* Collects every rank's shard into the whole array full[numel]: on root only (root >= 0; full
 * is not touched elsewhere), or on every rank (root = -1). Host buffers, MPI. */
int lrsa_zero_gather(const lrsa_comm *c, const lrsa_zero_layout *L, const float *local, float *full,
                     int root, lrsa_err *e);

#endif
