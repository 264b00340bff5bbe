/* Progress for people (one terminal line per log step) and for programs (RUN_DIR/metrics.jsonl,
 * one JSON object per line: {"step":..,"loss":..} for training, {"step":..,"eval_nll_full":..}
 * for evaluations). `lrsa plot` reads the same file. */
#ifndef LRSA_TRAIN_TRAIN_LOG_H
#define LRSA_TRAIN_TRAIN_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

typedef struct lrsa_step_record {
    int64_t step, max_steps;
    double loss, gnorm, lr, tok_per_s, eta_s, elapsed_s;
    int64_t tokens, n_target, skipped_total;
    int skipped; /* this step was skipped (non-finite) */
    /* LRSA samples with needle spans in this step: the mean over them of the fraction of
     * (layer, KV head, span) triples whose needle the answer's first query could see */
    int has_needle_kept;
    double needle_kept;
    /* the salience loss is on: the mean of its aux over the step's samples with needle spans
     * (the loss above includes attention.salience.weight x this) */
    int has_salience;
    double salience_loss;
} lrsa_step_record;

typedef struct lrsa_eval_record {
    int64_t step, samples, tokens;
    double nll_full, nll_lagkv; /* mean per answer token */
    double keep;
} lrsa_eval_record;

/* "4m12s", "1h03m", "12s" */
void lrsa_format_duration(char *out, size_t cap, double seconds);
void lrsa_log_step_line(FILE *f, const lrsa_step_record *r);
void lrsa_log_eval_line(FILE *f, const lrsa_eval_record *r);
int lrsa_metrics_append_step(FILE *f, const lrsa_step_record *r);
int lrsa_metrics_append_eval(FILE *f, const lrsa_eval_record *r);
/* Keeps only the lines with "step" <= last_step (a resumed run rewrites what followed its
 * checkpoint). Atomic; a missing file is fine. */
int lrsa_metrics_truncate_after(const char *path, int64_t last_step, lrsa_err *e);

#endif
