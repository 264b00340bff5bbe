/* Inside the grid runner (eval/run/grid.h): the state it shares between planning and running
 * (grid_run.c) and running one group of cells over its samples, a batch at a time
 * (grid_group.c). Not for use outside the grid. */
#ifndef LRSA_EVAL_GRID_GROUP_H
#define LRSA_EVAL_GRID_GROUP_H
#include <stdint.h>

#include <cjson/cJSON.h>

#include "data/dataset.h"
#include "data/tokenizer.h"
#include "eval/run/grid_config.h"
#include "eval/run/metrics.h"
#include "eval/run/sample_records.h"
#include "model/model.h"

/* ---- per-model state ---- */
typedef struct lrsa_grid_model_ctx {
    lrsa_model m;
    lrsa_tokenizer *tok;
    int32_t stop[16];
    int n_stop;
    lrsa_ids kvzip_prompt;
    int V;
} lrsa_grid_model_ctx;

/* ---- cells ---- */
typedef struct lrsa_grid_cell {
    int method, budget;
    char key[1024];
    char spec[512];
    int pending;
    /* sums over samples */
    int n;
    lrsa_answer_scores sc;
    double nll_sum;
    int64_t nll_tok;
    double kept, kept_min, kept_max, ctx_tokens;
    double cache_bytes, full_bytes; /* peak live bytes; full (uncompressed) bytes */
    double prefill_s, score_s, apply_s, answer_s, cell_s;
    char example_pred[160], example_ref[160];
    lrsa_sample_records recs; /* one per sample, for the row's "samples" */
} lrsa_grid_cell;

/* Every (method, budget) cell of one task point, protocol and prefill mode. */
typedef struct lrsa_grid_group {
    int model, task;
    int64_t length;
    double depth;
    lrsa_press_protocol proto;
    lrsa_prefill_mode prefill;
    lrsa_grid_cell *cells; /* [methods * budgets] */
    int n_cells, n_pending;
} lrsa_grid_group;

/* ---- progress ---- */
typedef struct lrsa_grid_progress {
    double t0, units_done, units_total;
    int cells_done, cells_total, quiet;
} lrsa_grid_progress;

/* "model task L=.. d=.. protocol prefill" */
void lrsa_grid_describe_group(const lrsa_grid_config *c, const lrsa_grid_group *g, char *buf,
                              size_t cap);
/* One results.jsonl row of a finished cell. */
cJSON *lrsa_grid_cell_row(const lrsa_grid_config *c, const lrsa_grid_group *g,
                          const lrsa_grid_cell *x);
/* "[cell i/n, elapsed, ETA] what" on stderr. */
void lrsa_grid_progress_line(const lrsa_grid_progress *p, const char *what);

/* Runs every pending cell of g over the samples of d, c->batch samples per forward, and
 * appends one row per cell to `results`. */
int lrsa_grid_run_group(const lrsa_grid_config *c, lrsa_grid_model_ctx *mc, const lrsa_dataset *d,
                        lrsa_grid_group *g, const char *results, lrsa_grid_progress *pg,
                        lrsa_err *e);
#endif
