#include "train/plot_svg.h"

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

static void escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

void lrsa_svg_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel,
                    const lrsa_series *s, int ns) {
    const double W = 860, H = 520, L = 80, R = 30, T = 50, B = 60;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
            x0 = fmin(x0, s[k].x[i]), x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]), y1 = fmax(y1, s[k].y[i]);
        }
    if (!isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y0 -= 0.5, y1 += 0.5;
    double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
    double xt[32], yt[32];
    /* steps are integers: no tick between two of them */
    int nxt = lrsa_nice_ticks(x0, x1, 8, 1.0, xt, 32), nyt = lrsa_nice_ticks(y0, y1, 6, 0, yt, 32);
    const double pw = W - L - R, ph = H - T - B;
#define PX(v) (L + ((v)-x0) / (x1 - x0) * pw)
#define PY(v) (T + ph - ((v)-y0) / (y1 - y0) * ph)
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n",
            W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", W / 2);
    escape(f, title);
    fprintf(f, "</text>\n");
    for (int i = 0; i < nyt; i++) {
        double y = PY(yt[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                L, y, L + pw, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", L - 6, y + 4,
                yt[i]);
    }
    for (int i = 0; i < nxt; i++) {
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
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">", L + pw / 2, H - 15);
    escape(f, xlabel);
    fprintf(f,
            "</text>\n<text transform=\"translate(20,%.0f) rotate(-90)\" "
            "text-anchor=\"middle\">",
            T + ph / 2);
    escape(f, ylabel);
    fprintf(f, "</text>\n");
    for (int k = 0; k < ns; k++) {
        if (s[k].n == 0) continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"",
                s[k].color);
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].y[i])) fprintf(f, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        fprintf(f, "\"/>\n");
        if (s[k].markers)
            for (int i = 0; i < s[k].n; i++)
                if (isfinite(s[k].y[i]))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                            PX(s[k].x[i]), PY(s[k].y[i]), s[k].color);
    }
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
        escape(f, s[k].label);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
}
