/* Shared set-up for the trainer tests: a tiny synthetic QA dataset written with the dataset
 * writer (no tokenizer needed), and a YAML config for the tiny random model. */
#ifndef LRSA_TEST_TRAIN_FIXTURE_H
#define LRSA_TEST_TRAIN_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "train/config.h"

/* n samples of a copy task (vocab 96): bos, filler, a key token hidden at a random position,
 * more filler, a question marker, then the answer (the key twice and eos), masked. Lengths
 * vary in [min_len, max_len]. Returns 0 or fails the test. */
void tf_write_dataset(const char *path, int n, int min_len, int max_len, uint64_t seed);
/* Writes DIR/train.h5 and DIR/eval.h5 and DIR/config.yaml (tiny-test settings, run_dir
 * DIR/<run>) with `extra` YAML lines appended (top-level keys or full sections). */
void tf_write_run(const char *dir, const char *run, const char *extra, char *config_path,
                  size_t cap);
/* Loads config_path and applies overrides (NULL-terminated list). */
void tf_load_config(lrsa_train_config *c, const char *config_path, const char *const *overrides);
/* Loads config_path with overrides and trains on one rank, quietly, stopping after stop_after
 * (0: the schedule's end). Returns lrsa_train_run's status (e set on -1). */
int tf_train(const char *config_path, const char *const *overrides, int64_t stop_after,
             lrsa_err *e);
/* tf_train that fails the test with the message when training fails. */
void tf_must_train(const char *config_path, const char *const *overrides, int64_t stop_after);
/* Reads every {"step":..,"loss":..} of RUN_DIR/metrics.jsonl into steps/losses (cap entries);
 * returns the count. */
int tf_read_losses(const char *run_dir, int64_t *steps, double *losses, int cap);
/* Prints "ok"/"FAIL" with `what` and the worst relative loss difference of steps [from, to]
 * between two runs' metrics; 1 when every step is in both and within tol. */
int tf_compare_losses(const char *what, const char *run_a, const char *run_b, int from, int to,
                      double tol);
/* Reads the eval records: returns the count, fills step, full and lagkv NLLs. */
int tf_read_evals(const char *run_dir, int64_t *steps, double *full, double *lagkv, int cap);
/* Whether two checkpoint files hold bit-identical weights and moments. */
int tf_ckpts_equal(const char *a, const char *b);
/* Largest |a - b| over the weights (/param/...) of two checkpoints of one model (infinity when
 * their tensors differ in shape or none is found; NaN wins). */
double tf_ckpts_param_max_diff(const char *a, const char *b);
/* Number of entries in a directory (-1 if it does not exist). */
int tf_count_entries(const char *dir);

#endif
