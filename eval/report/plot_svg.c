#include "eval/report/plot_svg.h"

#include <math.h>
#include <string.h>

int lrsa_nice_ticks(double lo, double hi, int target, double min_step, double *ticks, int max) {
    if (!(hi > lo)) hi = lo + 1;
    double raw = (hi - lo) / (target > 1 ? target : 1);
    double mag = pow(10.0, floor(log10(raw)));
    double step = mag;
    if (raw / mag > 5)
        step = 10 * mag;
    else if (raw / mag > 2)
        step = 5 * mag;
    else if (raw / mag > 1)
        step = 2 * mag;
    if (step < min_step) step = min_step;
    int n = 0;
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9 && n < max; v += step)
        ticks[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    return n;
}

void lrsa_svg_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

const char *lrsa_svg_color(int i) {
    static const char *const pal[10] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                        "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
    return pal[(i % 10 + 10) % 10];
}

void lrsa_svg_begin(FILE *f, double W, double H) {
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
}

void lrsa_svg_end(FILE *f) {
    fprintf(f, "</svg>\n");
}

void lrsa_svg_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel,
                    const lrsa_series *s, int ns) {
    const double W = 860, H = 520;
    /* steps are integers: no tick between two of them */
    lrsa_chart_opts o = {.w = W, .h = H, .x_min_step = 1.0};
    lrsa_svg_begin(f, W, H);
    lrsa_svg_chart_panel(f, &o, title, xlabel, ylabel, s, ns);
    lrsa_svg_end(f);
}

void lrsa_svg_chart_panel(FILE *f, const lrsa_chart_opts *o, const char *title, const char *xlabel,
                          const char *ylabel, const lrsa_series *s, int ns) {
    const double W = o->w, H = o->h, L = o->x + 80, R = 30, T = o->y + 50, B = 60;
    const int lg = o->log2_x;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
            if (lg && !(s[k].x[i] > 0)) continue;
            double xv = lg ? log2(s[k].x[i]) : s[k].x[i];
            x0 = fmin(x0, xv), x1 = fmax(x1, xv);
            y0 = fmin(y0, s[k].y[i]), y1 = fmax(y1, s[k].y[i]);
        }
    if (!isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 <= x0) x1 = x0 + 1;
    if (o->ymin < o->ymax) {
        y0 = o->ymin, y1 = o->ymax;
    } else {
        if (y1 <= y0) y0 -= 0.5, y1 += 0.5;
        double pad = (y1 - y0) * 0.05;
        y0 -= pad, y1 += pad;
    }
    if (lg) { /* a little room left and right of the outermost points */
        x0 -= 0.15 * (x1 - x0), x1 += 0.15 * (x1 - x0);
    }
    double xt[32], yt[32];
    int nxt = 0, nyt = lrsa_nice_ticks(y0, y1, 6, 0, yt, 32);
    if (o->n_xticks > 0)
        for (int i = 0; i < o->n_xticks && nxt < 32; i++) xt[nxt++] = o->xticks[i];
    else
        nxt = lrsa_nice_ticks(x0, x1, 8, o->x_min_step, xt, 32);
    const double pw = W - 80 - R, ph = H - 50 - B;
#define XV(v) (lg ? log2(v) : (v))
#define PX(v) (L + (XV(v) - x0) / (x1 - x0) * pw)
#define PY(v) (T + ph - ((v)-y0) / (y1 - y0) * ph)
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"16\">", o->x + W / 2,
            o->y + 28);
    lrsa_svg_escape(f, title);
    fprintf(f, "</text>\n");
    for (int i = 0; i < nyt; i++) {
        double y = PY(yt[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                L, y, L + pw, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6, y + 4,
                yt[i]);
    }
    for (int i = 0; i < nxt; i++) {
        if (lg && !(xt[i] > 0)) continue;
        double x = PX(xt[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x,
                T + ph, x, T + ph + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", x, T + ph + 19,
                xt[i]);
    }
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"#333\"/>\n",
            L, T, pw, ph);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">", L + pw / 2, o->y + H - 15);
    lrsa_svg_escape(f, xlabel);
    fprintf(f,
            "</text>\n<text transform=\"translate(%.0f,%.0f) rotate(-90)\" "
            "text-anchor=\"middle\">",
            o->x + 20, T + ph / 2);
    lrsa_svg_escape(f, ylabel);
    fprintf(f, "</text>\n");
    for (int k = 0; k < ns; k++) {
        if (s[k].n == 0) continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"",
                s[k].color);
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].y[i]) && (!lg || s[k].x[i] > 0))
                fprintf(f, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        fprintf(f, "\"/>\n");
        if (s[k].markers)
            for (int i = 0; i < s[k].n; i++)
                if (isfinite(s[k].y[i]) && (!lg || s[k].x[i] > 0))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                            PX(s[k].x[i]), PY(s[k].y[i]), s[k].color);
    }
    if (o->no_legend) return;
    /* legend, top right inside the plot */
    double lx = L + pw - 272, ly = T + 12;
    int shown = 0;
    for (int k = 0; k < ns; k++) shown += s[k].n > 0;
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"264\" height=\"%d\" fill=\"white\" "
            "fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
            lx - 6, ly - 6, 18 * shown + 8);
    for (int k = 0, row = 0; k < ns; k++) {
        if (s[k].n == 0) continue;
        double y = ly + 18 * row++ + 6;
        fprintf(f,
                "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                "stroke-width=\"2.5\"/>\n",
                lx, y, lx + 24, y, s[k].color);
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">", lx + 30, y + 4);
        lrsa_svg_escape(f, s[k].label);
        fprintf(f, "</text>\n");
    }
#undef XV
#undef PX
#undef PY
}
