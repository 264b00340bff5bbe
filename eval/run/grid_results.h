/* RUN_DIR/results.jsonl: one JSON object per line, one line per grid cell (a model x method x
 * budget x protocol x prefill x task point, aggregated over its samples). Lines are appended
 * with one write(2) each on an O_APPEND descriptor and fsync'd, so a crash leaves complete lines
 * (plus at most one torn last line, which readers skip with a warning). Every line carries a
 * "key" naming its cell; a resumed grid skips the cells whose key is already there. */
#ifndef LRSA_EVAL_GRID_RESULTS_H
#define LRSA_EVAL_GRID_RESULTS_H
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "base/error.h"

/* The rows of a results file, parsed. A missing file gives zero rows (not an error). */
typedef struct lrsa_grid_rows {
    cJSON **row; /* [n] objects (owned) */
    int n;
    int torn; /* lines skipped because they were not complete JSON objects */
} lrsa_grid_rows;

int lrsa_grid_rows_read(lrsa_grid_rows *r, const char *path, lrsa_err *e);
void lrsa_grid_rows_free(lrsa_grid_rows *r);
/* Is a row with this "key" present? */
int lrsa_grid_rows_has_key(const lrsa_grid_rows *r, const char *key);
/* Appends one row (printed unformatted on one line + '\n') to the file. */
int lrsa_grid_append_row(const char *path, const cJSON *row, lrsa_err *e);

/* "CPU model, N cores, Linux RELEASE" of this machine (labels every row with where it ran). */
void lrsa_host_description(char *out, size_t cap);

/* Row field access with defaults (for the report). */
const char *lrsa_row_str(const cJSON *row, const char *key, const char *def);
double lrsa_row_num(const cJSON *row, const char *key, double def);
#endif
