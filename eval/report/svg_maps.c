#include "eval/report/svg_maps.h"

#include <math.h>

#include "eval/report/plot_svg.h"

void lrsa_svg_score_color(double v, char out[8]) {
    if (!isfinite(v)) {
        snprintf(out, 8, "#e0e0e0");
        return;
    }
    if (v < 0) v = 0;
    if (v > 1) v = 1;
    /* red (215,48,39) -> yellow (254,224,139) -> green (26,152,80) */
    static const double a[3][3] = {{215, 48, 39}, {254, 224, 139}, {26, 152, 80}};
    int seg = v < 0.5 ? 0 : 1;
    double t = v < 0.5 ? v / 0.5 : (v - 0.5) / 0.5;
    int c[3];
    for (int i = 0; i < 3; i++) c[i] = (int)lround(a[seg][i] + t * (a[seg + 1][i] - a[seg][i]));
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

void lrsa_svg_heatmap_panel(FILE *f, double x, double y, double w, double h,
                            const lrsa_heatmap *m) {
    const double L = x + 62, T = y + 26, pw = w - 62 - 8, ph = h - 26 - 36;
    const double cw = pw / (m->cols > 0 ? m->cols : 1), ch = ph / (m->rows > 0 ? m->rows : 1);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">", L + pw / 2,
            y + 16);
    lrsa_svg_escape(f, m->title);
    fprintf(f, "</text>\n");
    for (int r = 0; r < m->rows; r++)
        for (int c = 0; c < m->cols; c++) {
            double v = m->v[r * m->cols + c];
            char col[8];
            lrsa_svg_score_color(v, col);
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                    "stroke=\"white\"><title>%.3g</title></rect>\n",
                    L + c * cw, T + r * ch, cw, ch, col, v);
            if (m->show_values && isfinite(v) && cw >= 22 && ch >= 12)
                fprintf(f,
                        "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\" "
                        "fill=\"#222\">%.0f</text>\n",
                        L + (c + 0.5) * cw, T + (r + 0.5) * ch + 3.5, 100 * v);
        }
    for (int r = 0; r < m->rows; r++) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">", L - 4,
                T + (r + 0.5) * ch + 3.5);
        lrsa_svg_escape(f, m->row_labels[r]);
        fprintf(f, "</text>\n");
    }
    for (int c = 0; c < m->cols; c++) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">",
                L + (c + 0.5) * cw, T + ph + 13);
        lrsa_svg_escape(f, m->col_labels[c]);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">", L + pw / 2,
            T + ph + 28);
    lrsa_svg_escape(f, m->xlabel);
    fprintf(f,
            "</text>\n<text transform=\"translate(%.1f,%.1f) rotate(-90)\" "
            "text-anchor=\"middle\" font-size=\"11\">",
            x + 12, T + ph / 2);
    lrsa_svg_escape(f, m->ylabel);
    fprintf(f, "</text>\n");
}

void lrsa_svg_colorbar(FILE *f, double x, double y, double w, const char *label) {
    const int steps = 20;
    for (int i = 0; i < steps; i++) {
        char col[8];
        lrsa_svg_score_color((i + 0.5) / steps, col);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"12\" fill=\"%s\"/>\n",
                x + i * w / steps, y, w / steps + 0.5, col);
    }
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">0</text>\n"
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">100</text>\n"
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">",
            x, y + 24, x + w, y + 24, x + w + 10, y + 10);
    lrsa_svg_escape(f, label);
    fprintf(f, "</text>\n");
}
