/* The evaluation grid's configuration: a YAML file (libyaml) plus `key=value` overrides from the
 * command line. docs/EVAL.md documents every key; configs/eval/ holds examples.
 *
 *   run_dir: runs/eval/baselines         # results.jsonl, report, prepared data
 *   models:   [{name: base, path: models/smollm2-135m-instruct}, ...]
 *   methods:  [{name: snapkv, window: 32, kernel: 5}, {name: knorm}, ...]
 *   budgets:  {keep: [1, 0.5, 0.25, 0.125], tokens_per_layer: [128]}
 *   tasks:    [{synthetic: passkey, lengths: [1024], depths: [0.1, 0.5, 0.9], n: 4},
 *              {name: myqa, file: data/qa.jsonl, n: 20, answer_sep: ""}]
 *   protocols: [query-agnostic, query-aware]
 *   prefill:  [chunked]
 *   max_new: 32
 *   batch: 4                             # samples per forward (memory grows with it)
 *   device: cpu                          # or cuda: the GPU cache (methods none and lagkv)
 *
 * Everything is validated when the config is loaded (lrsa_grid_config_validate), before any
 * model is read: unknown keys (with the closest valid key as a suggestion), wrong types, bad
 * budgets, unknown methods or press parameters out of range, missing model directories, data
 * files and CompressKV files. Errors name the file, the line and the fix. */
#ifndef LRSA_EVAL_GRID_CONFIG_H
#define LRSA_EVAL_GRID_CONFIG_H
#include <stdint.h>

#include "base/error.h"
#include "eval/press/press.h"

#define LRSA_GRID_MAX_MODELS  8
#define LRSA_GRID_MAX_METHODS 32
#define LRSA_GRID_MAX_BUDGETS 32
#define LRSA_GRID_MAX_TASKS   16
#define LRSA_GRID_MAX_POINTS  32 /* lengths or depths of one task */
#define LRSA_GRID_PATH        4096

typedef struct lrsa_grid_model {
    char name[64]; /* label in results and reports (default: the directory's last component) */
    char path[LRSA_GRID_PATH];
    int line; /* where it was given: its line in the file, -1 = the command line */
} lrsa_grid_model;

typedef struct lrsa_grid_method {
    char label[64];       /* default: the method name */
    lrsa_press_spec spec; /* keep = 1; the budget is set per cell */
    char compresskv_file[LRSA_GRID_PATH];
    int line; /* as lrsa_grid_model's */
} lrsa_grid_method;

typedef struct lrsa_grid_budget {
    double keep;    /* in (0, 1], or 0 when tokens is set */
    int64_t tokens; /* tokens per layer (per KV head), or 0 */
} lrsa_grid_budget;

typedef struct lrsa_grid_task {
    char name[64];             /* default: the synthetic task, or the file's base name */
    char synthetic[32];        /* a `lrsa prepare --synthetic` task, or "" */
    char file[LRSA_GRID_PATH]; /* a JSONL QA file or an lrsa-qa-v1 HDF5 dataset, or "" */
    int64_t lengths[LRSA_GRID_MAX_POINTS];
    int n_lengths;
    double depths[LRSA_GRID_MAX_POINTS];
    int n_depths;
    int64_t n;           /* samples per (length, depth) cell; files: the first n (0 = all) */
    uint64_t seed;       /* synthetic generation */
    char answer_sep[16]; /* splits a reference answer into parts for string-match-all */
    int max_new;         /* generation budget for this task's answers (0: the grid's max_new) */
    int line;            /* as lrsa_grid_model's */
} lrsa_grid_task;

typedef struct lrsa_grid_config {
    char path[LRSA_GRID_PATH]; /* the YAML file (for messages) */
    char run_dir[LRSA_GRID_PATH];
    char haystack[LRSA_GRID_PATH]; /* "" = the default search ($LRSA_CACHE/haystack, ...) */
    int haystack_line;             /* as lrsa_grid_model's */
    lrsa_grid_model models[LRSA_GRID_MAX_MODELS];
    int n_models;
    lrsa_grid_method methods[LRSA_GRID_MAX_METHODS];
    int n_methods;
    lrsa_grid_budget budgets[LRSA_GRID_MAX_BUDGETS];
    int n_budgets;
    lrsa_grid_task tasks[LRSA_GRID_MAX_TASKS];
    int n_tasks;
    lrsa_press_protocol protocols[2];
    int n_protocols;
    lrsa_prefill_mode prefill[2];
    int n_prefill;
    int max_new;     /* generation budget per answer */
    int batch;       /* samples evaluated together, one forward for all (LRSA_EVAL_BATCH default) */
    int device_cuda; /* device: cuda, the model and the cache on the GPU (eval/run/eval_gpu.h) */
    int device_line; /* as lrsa_grid_model's */
} lrsa_grid_config;

/* Loads a YAML file (defaults for absent optional keys). */
int lrsa_grid_config_load(lrsa_grid_config *c, const char *path, lrsa_err *e);
/* Parses YAML text; `where` names it in messages. */
int lrsa_grid_config_parse(lrsa_grid_config *c, const char *text, size_t n, const char *where,
                           lrsa_err *e);
/* Applies one `key=value` override; value is YAML (e.g. `budgets.keep=[1,0.5]`,
 * `tasks.n=2` sets every task's n, `methods=[snapkv,knorm]` keeps only those labels,
 * `models=[base]` likewise). */
int lrsa_grid_config_override(lrsa_grid_config *c, const char *assignment, lrsa_err *e);
/* Required keys, ranges, budgets against every method, and every path that must exist. */
int lrsa_grid_config_validate(const lrsa_grid_config *c, lrsa_err *e);
/* "FILE:LINE" for a line of the config file, "command line" for -1, FILE for 0 (a default). */
const char *lrsa_grid_where(const lrsa_grid_config *c, int line, char *buf, size_t cap);

/* The spec of a method at a budget (keep or tokens_per_layer set from b) and prefill mode. */
void lrsa_grid_spec_at(const lrsa_grid_method *m, const lrsa_grid_budget *b,
                       lrsa_prefill_mode prefill, lrsa_press_spec *s);
/* "keep=0.25" or "tokens=128". */
const char *lrsa_grid_budget_name(const lrsa_grid_budget *b, char *buf, int cap);
/* "query-agnostic" or "query-aware" (the names the config and the results use). */
const char *lrsa_grid_protocol_name(lrsa_press_protocol p);

/* Sets one press parameter of a spec by its config/flag name (sink, window, kernel, pool,
 * selector, alpha, beta, lag, value_weight, kvzip_chunk; compresskv_file is handled by the
 * caller). Shared with `lrsa inspect`. Returns 1 if `key` is not a press parameter. */
int lrsa_press_param_set(lrsa_press_spec *s, const char *key, const char *value, const char *where,
                         lrsa_err *e);
/* Space-separated list of the press parameter names (for messages and help). */
const char *lrsa_press_param_names(void);
/* The closest of the space-separated `choices` to `word` (edit distance <= 2 or a prefix
 * match), or NULL. Used for "did you mean" suggestions. */
const char *lrsa_closest_word(const char *word, const char *choices, char *buf, int cap);
#endif
