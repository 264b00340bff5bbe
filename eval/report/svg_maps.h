/* SVG heat maps (the evaluation report's length x depth pictures) next to the line charts of
 * eval/report/plot_svg.h, which also provides the document frame (lrsa_svg_begin/end). */
#ifndef LRSA_EVAL_SVG_MAPS_H
#define LRSA_EVAL_SVG_MAPS_H
#include <stdio.h>

/* "#rrggbb" for v in [0, 1] on a red - yellow - green scale (0 red, 1 green); NaN: light grey. */
void lrsa_svg_score_color(double v, char out[8]);

typedef struct lrsa_heatmap {
    int rows, cols;
    const char *const *row_labels; /* [rows], drawn left of the rows (top row first) */
    const char *const *col_labels; /* [cols], drawn under the columns */
    const double *v;               /* [rows * cols] in [0, 1], NaN = no data */
    const char *title, *xlabel, *ylabel;
    int show_values; /* write the value (x100, rounded) in each cell */
} lrsa_heatmap;

/* One heat map filling the box (x, y, w, h) of a document begun with lrsa_svg_begin. */
void lrsa_svg_heatmap_panel(FILE *f, double x, double y, double w, double h, const lrsa_heatmap *m);
/* A horizontal colour bar from 0 to 1 with its label. */
void lrsa_svg_colorbar(FILE *f, double x, double y, double w, const char *label);
#endif
