/* A small line-chart writer in SVG: numeric axes with "nice" ticks, one polyline (with point
 * markers, optionally) per series, and a legend. Enough for training curves. */
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

#endif
