/* Training checkpoints in HDF5 ("lrsa-ckpt-v1"), one file per checkpoint written by rank 0:
 *   /param/<HF name>  float32, the tensor's shape   master weights, by tensor-table name
 *   /adam_m, /adam_v  float32 [numel]               AdamW moments over the flat arena (gathered
 *                                                   from the ZeRO-1 shards), in table order
 * Root attributes: format, step, adam_t, bad_in_row, bad_total, tokens_seen, loader_seed,
 * loader_epoch, loader_cursor, rng (uint64[4]), world_size, config_yaml (the resolved training
 * config), model_config_json (the model's config.json text), model_path.
 * Because the moments are stored whole, a run may resume with a different number of ranks.
 * Files are written to "<path>.tmp.<pid>" and renamed, so a crash leaves the previous one. */
#ifndef LRSA_TRAIN_CHECKPOINT_H
#define LRSA_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/rng.h"
#include "autograd/tensor_table.h"
#include "data/loader.h"

#define LRSA_CKPT_FORMAT "lrsa-ckpt-v1"

typedef struct lrsa_ckpt_state {
    int64_t step;   /* optimizer steps completed (attempted, skipped ones included) */
    int64_t adam_t; /* AdamW updates taken */
    int64_t bad_in_row, bad_total;
    int64_t tokens_seen;
    lrsa_loader_state loader;
    lrsa_rng rng;
    int world_size;
} lrsa_ckpt_state;

typedef struct lrsa_ckpt_text {
    const char *config_yaml, *model_config_json, *model_path;
} lrsa_ckpt_text;

/* Writes a checkpoint (rank 0). m_full / v_full: [t->numel]. */
int lrsa_ckpt_write(const char *path, const lrsa_tensor_table *t, const float *m_full,
                    const float *v_full, const lrsa_ckpt_state *s, const lrsa_ckpt_text *text,
                    lrsa_err *e);
/* Checks the checkpoint holds exactly this table's tensors with these shapes. */
int lrsa_ckpt_check_model(const char *path, const lrsa_tensor_table *t, lrsa_err *e);
/* Reads the weights into t's PARAM arena, the moment range [lo, hi) into m, v (may be NULL),
 * and the state (may be NULL). */
int lrsa_ckpt_read(const char *path, lrsa_tensor_table *t, int64_t lo, int64_t hi, float *m,
                   float *v, lrsa_ckpt_state *s, lrsa_err *e);
/* A string attribute (malloc'd), or NULL with an error. */
char *lrsa_ckpt_read_string(const char *path, const char *attr, lrsa_err *e);

/* "DIR/step_000123.h5" */
void lrsa_ckpt_path(char *out, size_t cap, const char *ckpt_dir, int64_t step);
/* Newest step_*.h5 in dir that opens as a checkpoint: 1 found (path in out), 0 none. Broken
 * newer files are reported on stderr and passed over. */
int lrsa_ckpt_find_latest(const char *ckpt_dir, char *out, size_t cap);
/* Deletes all but the newest `keep` checkpoints, and leftovers of interrupted writes. */
void lrsa_ckpt_prune(const char *ckpt_dir, int64_t keep);

#endif
