/* The samples of one grid task point: a synthetic task at one (length, depth), generated with the
 * model's tokenizer and chat template exactly as `lrsa prepare --synthetic` does, or a user QA
 * file (JSONL records tokenised like `lrsa prepare --input`, or an lrsa-qa-v1 HDF5 dataset).
 * Generated datasets are written under RUN_DIR/data/ (the record of what was evaluated) and
 * reused when the grid resumes. */
#ifndef LRSA_EVAL_GRID_DATA_H
#define LRSA_EVAL_GRID_DATA_H
#include <stdint.h>

#include "base/error.h"
#include "data/dataset.h"
#include "data/haystack.h"
#include "data/tokenizer.h"
#include "eval/run/grid_config.h"

/* Opens (building it first when needed) the dataset of task t at (length, depth) for a model
 * whose tokenizer is tok; file tasks ignore length/depth. *haystack is loaded on first use
 * (start it zeroed; free it with lrsa_haystack_free when sents is set). */
int lrsa_grid_task_open(const lrsa_grid_config *c, const lrsa_grid_task *t, int64_t length,
                        double depth, const char *model_name, const lrsa_tokenizer *tok,
                        lrsa_haystack *haystack, lrsa_dataset *out, lrsa_err *e);

/* Start-up check of the synthetic tasks for one model's tokenizer: one sample of each task at
 * its shortest length is generated (and dropped), so a length too short for the task's
 * instruction, needles and question fails before any model is run. */
int lrsa_grid_check_synthetic(const lrsa_grid_config *c, const lrsa_tokenizer *tok,
                              lrsa_haystack *haystack, lrsa_err *e);

/* Start-up check of a user data file: every JSONL record parses, or the HDF5 file opens as an
 * lrsa-qa-v1 dataset. Errors name the file and line. */
int lrsa_grid_check_data_file(const char *path, lrsa_err *e);
#endif
