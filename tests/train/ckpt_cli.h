/* Helpers of the checkpoint fault tests: `lrsa train` as a user runs it, and the checks made
 * on a run directory afterwards. */
#ifndef LRSA_TESTS_CKPT_CLI_H
#define LRSA_TESTS_CKPT_CLI_H

#include <stdint.h>

/* A fresh test directory dir (named after tag) with a tiny training setup (tf_write_run): its
 * config cfg, run_dir = dir/run and ckpt_dir = run_dir/ckpt. */
void cc_new_run(const char *tag, char dir[4096], char cfg[4200], char run_dir[4200],
                char ckpt_dir[4300]);
/* Size of a file in bytes, -1 when it does not exist. */
int64_t cc_file_size(const char *path);
/* Whether ckpt_dir holds a leftover temporary file of an interrupted write (".tmp."). */
int cc_has_leftover(const char *ckpt_dir);
/* Runs `[env] lrsa train CFG ARGS --quiet` (env: "VAR=value ..." or NULL); returns the exit
 * status, the output (stdout and stderr) in *out (malloc'd). */
int cc_train(const char *env, const char *cfg, const char *args, char **out);
/* cc_train that must succeed. */
void cc_must_train(const char *cfg, const char *args);
/* Fails unless `what` occurs in out. */
void cc_expect_in(const char *out, const char *what);
/* Fails unless the steps logged in run_dir/metrics.jsonl are exactly 1..last, each once. */
void cc_expect_steps_once(const char *run_dir, int64_t last);
/* The size of one checkpoint of the run configured by cfg: trains one step into dir/probe. */
int64_t cc_probe_ckpt_size(const char *dir, const char *cfg);

#endif
