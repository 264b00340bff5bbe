/* The results of a grid run (results.jsonl) as `lrsa report` reads them: one flattened row per
 * result, the distinct models, methods, tasks, protocols, prefill modes and budgets, and
 * sample-weighted aggregates over filtered rows. Shared by the Markdown writer
 * (eval/report/report.c) and the pictures (eval/report/report_plots.c). */
#ifndef LRSA_EVAL_REPORT_SET_H
#define LRSA_EVAL_REPORT_SET_H
#include <stddef.h>
#include <stdint.h>

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
/* Does a filter's string field match: want is NULL (any) or equal to have? */
int rp_same(const char *want, const char *have);
/* Sample-weighted mean of a field (offsetof(rp_row, field)) over the matching rows; NaN if none. */
double rp_mean(const rp_set *s, const rp_filter *f, size_t field);
/* Distinct lengths / depths of a task (ascending). */
int rp_points(const rp_set *s, const char *task, int depth, double *out, int cap);

int rp_load(rp_set *s, const char *run_dir, lrsa_err *e);
void rp_free(rp_set *s);

/* A file-name-safe version of a label. */
void rp_slug(const char *in, char *out, size_t cap);
#endif
