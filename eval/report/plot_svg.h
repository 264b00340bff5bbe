/* A small line-chart writer in SVG: numeric axes with "nice" ticks, one polyline (with point
 * markers, optionally) per series, and a legend. Enough for training curves; the evaluation
 * report (eval/report/report*.c) puts several chart panels in one document (lrsa_svg_begin, one
 * lrsa_svg_chart_panel per panel, lrsa_svg_end). */
#ifndef LRSA_TRAIN_PLOT_SVG_H
#define LRSA_TRAIN_PLOT_SVG_H

#include <stdio.h>

typedef struct lrsa_series {
    const char *label, *color;
    const double *x, *y;
    int n;
    int markers; /* draw a dot at every point */
} lrsa_series;

/* Tick positions covering [lo, hi] at a 1-2-5 spacing of at least min_step (0: any; 1 for
 * integer axes such as steps); returns their count (<= max). */
int lrsa_nice_ticks(double lo, double hi, int target, double min_step, double *ticks, int max);
void lrsa_svg_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel,
                    const lrsa_series *s, int ns);

/* Documents with several panels. */
void lrsa_svg_begin(FILE *f, double width, double height);
void lrsa_svg_end(FILE *f);
/* Writes text with <, > and & escaped. */
void lrsa_svg_escape(FILE *f, const char *s);
/* A 10-colour palette that stays readable on white (and for most colour-blind readers). */
const char *lrsa_svg_color(int i);

typedef struct lrsa_chart_opts {
    double x, y, w, h;    /* the panel's box inside the document */
    double ymin, ymax;    /* fixed y range when ymin < ymax; else from the data (+5%) */
    const double *xticks; /* explicit x ticks (n_xticks > 0), else nice ticks */
    int n_xticks;
    double x_min_step; /* nice x ticks: smallest step (1 for integer axes, 0: any) */
    int log2_x;        /* x on a log2 scale (keep fractions 1, 1/2, 1/4, ...) */
    int no_legend;
} lrsa_chart_opts;
/* One chart inside a document begun with lrsa_svg_begin. */
void lrsa_svg_chart_panel(FILE *f, const lrsa_chart_opts *o, const char *title, const char *xlabel,
                          const char *ylabel, const lrsa_series *s, int ns);

#endif
