/* Training checkpoints in HDF5 ("lrsa-ckpt-v1"), one file per checkpoint written by rank 0:
 *   /param/<HF name>  float32, the tensor's shape   master weights, by tensor-table name
 *   /adam_m, /adam_v  float32 [numel]               AdamW moments over the flat arena (gathered
 *                                                   from the ZeRO-1 shards), in table order
 * Root attributes: format, step, adam_t, bad_in_row, bad_total, tokens_seen, loader_seed,
 * loader_epoch, loader_cursor, rng (uint64[4]), world_size, config_yaml (the resolved training
 * config), model_config_json (the model's config.json text), model_path; a LoRA run adds lora
 * and base_checksum (train/lora_ckpt.h) and its tables hold the adapter, not the model.
 * Because the moments are stored whole, a run may resume with a different number of ranks.
 * Every dataset is chunked with HDF5's Fletcher32 checksum and the file uses the 1.10 format
 * (checksummed metadata), so damage is found on load and named (file and dataset).
 * Checkpoints of older versions, without checksums, still load (lrsa_ckpt_verify says so).
 * Files are written to "<path>.tmp.<pid>", synced and renamed, so a crash leaves the previous
 * one; a failed write (e.g. a full disk) removes the temporary file and says why. */
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
    const char *lora_json, *base_checksum; /* NULL: not a LoRA run (attributes not written) */
} lrsa_ckpt_text;

/* Writes a checkpoint (rank 0). m_full / v_full: [t->numel]. On failure the message names
 * the file, what was being written, the system's reason and the size needed. */
int lrsa_ckpt_write(const char *path, const lrsa_tensor_table *t, const float *m_full,
                    const float *v_full, const lrsa_ckpt_state *s, const lrsa_ckpt_text *text,
                    lrsa_err *e);
/* Checks the checkpoint holds exactly this table's tensors with these shapes. */
int lrsa_ckpt_check_model(const char *path, const lrsa_tensor_table *t, lrsa_err *e);
/* Reads the weights into t's PARAM arena, the moment range [lo, hi) into m, v (may be NULL),
 * and the state (may be NULL). */
int lrsa_ckpt_read(const char *path, lrsa_tensor_table *t, int64_t lo, int64_t hi, float *m,
                   float *v, lrsa_ckpt_state *s, lrsa_err *e);
/* Whether the checkpoint has a root attribute: 1 yes, 0 no, -1 unreadable (with e). */
int lrsa_ckpt_has_attr(const char *path, const char *attr, lrsa_err *e);
/* A string attribute (malloc'd), or NULL with an error. */
char *lrsa_ckpt_read_string(const char *path, const char *attr, lrsa_err *e);
/* Bytes a checkpoint of this table takes on disk (weights, both moments, metadata). */
int64_t lrsa_ckpt_size_estimate(const lrsa_tensor_table *t, const lrsa_ckpt_text *text);
/* Whether the file opens as a checkpoint (cheap: the header and format attribute only). */
int lrsa_ckpt_opens(const char *path, lrsa_err *e);
/* Reads every dataset through its checksum: 0 when the whole file is sound, else an error
 * naming the file and the damaged dataset. A checkpoint without checksums (older lrsa) passes
 * with a note on stderr unless quiet_note. */
int lrsa_ckpt_verify(const char *path, int quiet_note, lrsa_err *e);

/* "DIR/step_000123.h5" */
void lrsa_ckpt_path(char *out, size_t cap, const char *ckpt_dir, int64_t step);
/* Number of step_*.h5 files in dir (readable or not). */
int lrsa_ckpt_count(const char *ckpt_dir);
/* Newest step_*.h5 in dir that opens as a checkpoint: 1 found (path in out), 0 none. Broken
 * newer files are reported on stderr and passed over. */
int lrsa_ckpt_find_latest(const char *ckpt_dir, char *out, size_t cap);

/* The `resume` setting. */
enum { LRSA_RESUME_NO = 0, LRSA_RESUME_YES = 1, LRSA_RESUME_RESTART = 2 };
/* Which checkpoint a run starts from. Returns 0 for a fresh start (no checkpoints, or mode
 * RESTART), 1 to resume from `out` (the newest checkpoint that verifies whole; when newer ones
 * do not, a warning names them and it), -1 with an error: checkpoints exist but mode is NO, or
 * none of them can be read (the message names each and how to start over). */
int lrsa_ckpt_choose_resume(const char *ckpt_dir, int mode, char *out, size_t cap, lrsa_err *e);
/* Renames every checkpoint newer than `step` to "<name>.unreadable" (after
 * lrsa_ckpt_choose_resume passed over them), so neither the cleanup nor a later resume takes
 * them for good ones. Returns how many. */
int lrsa_ckpt_set_aside_newer(const char *ckpt_dir, int64_t step);
/* Deletes every checkpoint and leftover temporary file (resume=restart); returns how many
 * checkpoints. */
int lrsa_ckpt_remove_all(const char *ckpt_dir);
/* Keeps the newest `keep` checkpoints that open and deletes older ones that open; files that
 * do not open are neither counted nor deleted. Deletes leftovers of interrupted writes. */
void lrsa_ckpt_prune(const char *ckpt_dir, int64_t keep);

#endif
