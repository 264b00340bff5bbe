/* `lrsa report RUN_DIR`: RUN_DIR/report.md (tables) and SVG pictures from the grid's
 * results.jsonl. The rows and their aggregates are eval/report/report_set.h; the pictures are
 * drawn by eval/report/report_plots.c, the Markdown written by eval/report/report.c. */
#ifndef LRSA_EVAL_REPORT_H
#define LRSA_EVAL_REPORT_H
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "eval/report/report_set.h"

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
/* The number of keep-fraction budgets: the pictures over keep need two. */
int rp_n_keep_budgets(const rp_set *s);
/* Writes RUN_DIR/report.md and its pictures. A picture that cannot be drawn (one keep fraction,
 * one length and depth) is replaced by a line saying why, in report.md and on stdout. */
int lrsa_report_write(const char *run_dir, lrsa_err *e);
#endif
