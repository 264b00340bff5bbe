/* `lrsa report RUN_DIR`: RUN_DIR/report.md (tables) and SVG pictures from the grid's
 * results.jsonl. Shared between the Markdown writer (eval/report/report.c) and the pictures
 * (eval/report/report_plots.c). */
#ifndef LRSA_EVAL_REPORT_H
#define LRSA_EVAL_REPORT_H
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

/* One results row, flattened. */
typedef struct rp_row {
    const char *model, *method, *task, *protocol, *prefill, *host;
    int budget;           /* index into rp_set.budgets */
    double length, depth; /* NaN for file tasks */
    double n;
    double score, match_part, exact, f1; /* score = string_match_all */
    double nll, kept, kept_min, kept_max;
    double peak_bytes, full_bytes, prefill_s, press_s, overhead, wall_s, ctx_tokens;
} rp_row;

/* A list of distinct strings in order of first appearance. */
typedef struct rp_names {
    const char *v[64];
    int n;
} rp_names;

typedef struct rp_budget {
    double keep;    /* > 0 for keep-fraction budgets */
    int64_t tokens; /* > 0 for token budgets */
    char label[32]; /* "1", "1/2", "0.3", "128 tok" */
} rp_budget;

typedef struct rp_set {
    rp_row *r;
    int n;
    rp_names models, methods, tasks, protocols, prefills, hosts;
    rp_budget budgets[64]; /* sorted: keep fractions descending, then token budgets ascending */
    int n_budgets;
    void *json; /* the parsed rows (owns the strings) */
} rp_set;

/* The filter of an aggregate: NULL / -1 / NaN = any. */
typedef struct rp_filter {
    const char *model, *method, *task, *protocol, *prefill;
    int budget;
    double length, depth;
} rp_filter;

rp_filter rp_any(void);
/* Sample-weighted mean of a field (offsetof(rp_row, field)) over the matching rows; NaN if none. */
double rp_mean(const rp_set *s, const rp_filter *f, size_t field);
/* Distinct lengths / depths of a task (ascending). */
int rp_points(const rp_set *s, const char *task, int depth, double *out, int cap);

int rp_load(rp_set *s, const char *run_dir, lrsa_err *e);
void rp_free(rp_set *s);

/* Pictures; each returns the file name written into run_dir (static buffer) or NULL if nothing
 * to draw. score_vs_keep: one panel per task plus the mean, one line per method. */
int rp_plot_score_vs_keep(const rp_set *s, const char *run_dir, const char *model,
                          const char *protocol, const char *prefill, char *name, size_t cap,
                          lrsa_err *e);
/* length x depth heat maps: rows = methods, columns = keep fractions, one small map each. */
int rp_plot_heatmaps(const rp_set *s, const char *run_dir, const char *model, const char *task,
                     const char *protocol, const char *prefill, char *name, size_t cap,
                     lrsa_err *e);
/* Models (with protocol = fixed1) or protocols (with model = fixed1) side by side: one panel
 * each, mean score over tasks vs keep. */
typedef enum rp_by { RP_BY_MODEL = 0, RP_BY_PROTOCOL } rp_by;
int rp_plot_side_by_side(const rp_set *s, const char *run_dir, rp_by by, const char *fixed1,
                         const char *prefill, char *name, size_t cap, lrsa_err *e);
/* Writes RUN_DIR/report.md and its pictures. */
int lrsa_report_write(const char *run_dir, lrsa_err *e);
/* A file-name-safe version of a label. */
void rp_slug(const char *in, char *out, size_t cap);
#endif
