/* The report's pictures: score vs keep fraction (one line per method, one panel per task), the
 * length x depth heat maps (methods x keep fractions), and models side by side. Built from the
 * shared SVG writers (eval/report/plot_svg.h line charts, eval/report/svg_maps.h heat maps). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/report/report.h"
#include "eval/report/svg_maps.h"
#include "eval/report/plot_svg.h"

enum { PANEL_W = 520, PANEL_H = 340, LEGEND_W = 190 };

static int open_svg(lrsa_atomic_file *af, const char *run_dir, const char *name, lrsa_err *e) {
    char path[4200];
    lrsa_path_join(path, sizeof path, run_dir, name);
    return lrsa_atomic_open(af, path, e);
}

/* The keep-fraction budgets (token budgets have no place on a keep axis). */
static int keep_budgets(const rp_set *s, int *idx, double *keep) {
    int n = 0;
    for (int b = 0; b < s->n_budgets; b++)
        if (s->budgets[b].keep > 0) {
            idx[n] = b;
            keep[n++] = s->budgets[b].keep;
        }
    return n;
}

int rp_n_keep_budgets(const rp_set *s) {
    int idx[64];
    double keep[64];
    return keep_budgets(s, idx, keep);
}

/* The uncompressed reference ("none") is black; the other methods take the palette in order, so
 * ten compressing methods get ten distinct colours. */
static const char *method_color(const rp_set *s, int m) {
    if (!strcmp(s->methods.v[m], "none")) return "#111111";
    int k = 0;
    for (int i = 0; i < m; i++) k += strcmp(s->methods.v[i], "none") != 0;
    return lrsa_svg_color(k);
}

/* A legend column: one coloured line + label per method. */
static void legend(FILE *f, const rp_set *s, double x, double y) {
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-weight=\"bold\">method</text>\n", x, y);
    for (int m = 0; m < s->methods.n; m++) {
        double yy = y + 20 + 20 * m;
        fprintf(f,
                "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                "stroke-width=\"3\"/>\n<circle cx=\"%.0f\" cy=\"%.0f\" r=\"3.5\" fill=\"%s\"/>\n",
                x, yy - 4, x + 26, yy - 4, method_color(s, m), x + 13, yy - 4, method_color(s, m));
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">", x + 34, yy);
        lrsa_svg_escape(f, s->methods.v[m]);
        fprintf(f, "</text>\n");
    }
}

/* One panel: mean score (%) vs keep of every method under filter q. */
static void score_panel(FILE *f, const rp_set *s, rp_filter q, double x, double y,
                        const char *title) {
    int idx[64];
    double keep[64];
    int nk = keep_budgets(s, idx, keep);
    double *ys = lrsa_malloc((size_t)(s->methods.n * nk + 1) * sizeof *ys);
    double *xs = lrsa_malloc((size_t)(s->methods.n * nk + 1) * sizeof *xs);
    lrsa_series *ser = lrsa_calloc((size_t)s->methods.n + 1, sizeof *ser);
    for (int m = 0; m < s->methods.n; m++) {
        q.method = s->methods.v[m];
        for (int k = 0; k < nk; k++) {
            q.budget = idx[k];
            ys[m * nk + k] = 100 * rp_mean(s, &q, offsetof(rp_row, score));
        }
        /* dodge: each method's points shift sideways by a few percent of a halving, so lines
         * with equal scores stay visible (the values themselves are exact) */
        for (int k = 0; k < nk; k++)
            xs[m * nk + k] = keep[k] * exp2(0.035 * (m - 0.5 * (s->methods.n - 1)));
        ser[m] =
            (lrsa_series){s->methods.v[m], method_color(s, m), xs + m * nk, ys + m * nk, nk, 1};
    }
    lrsa_chart_opts o = {.x = x,
                         .y = y,
                         .w = PANEL_W,
                         .h = PANEL_H,
                         .ymin = -4,
                         .ymax = 104,
                         .xticks = keep,
                         .n_xticks = nk,
                         .log2_x = 1,
                         .no_legend = 1};
    lrsa_svg_chart_panel(f, &o, title, "keep fraction (log scale)", "string-match-all (%)", ser,
                         s->methods.n);
    free(ser);
    free(ys);
    free(xs);
}

int rp_plot_score_vs_keep(const rp_set *s, const char *run_dir, const char *model,
                          const char *protocol, const char *prefill, char *name, size_t cap,
                          lrsa_err *e) {
    int idx[64];
    double keep[64];
    name[0] = '\0';
    if (keep_budgets(s, idx, keep) < 2) return 0;
    char a[128], b[64], c[64];
    rp_slug(model, a, sizeof a);
    rp_slug(protocol, b, sizeof b);
    rp_slug(prefill, c, sizeof c);
    snprintf(name, cap, "score_vs_keep_%s_%s_%s.svg", a, b, c);
    /* panels: the mean over tasks, then each task; two columns */
    int panels = 1 + s->tasks.n, cols = panels > 1 ? 2 : 1, rows = (panels + cols - 1) / cols;
    double W = cols * PANEL_W + LEGEND_W, H = 40 + rows * PANEL_H;
    int leg_h = 40 + 20 * s->methods.n;
    if (H < leg_h + 60) H = leg_h + 60;
    lrsa_atomic_file af;
    if (open_svg(&af, run_dir, name, e) != 0) return -1;
    FILE *f = af.f;
    lrsa_svg_begin(f, W, H);
    fprintf(f, "<text x=\"%.0f\" y=\"26\" text-anchor=\"middle\" font-size=\"18\">", W / 2);
    lrsa_svg_escape(f, "Answer score vs KV-cache keep fraction: ");
    lrsa_svg_escape(f, model);
    fprintf(f, ", %s, %s prefill</text>\n", protocol, prefill);
    rp_filter q = rp_any();
    q.model = model;
    q.protocol = protocol;
    q.prefill = prefill;
    for (int p = 0; p < panels; p++) {
        double x = (p % cols) * PANEL_W, y = 40 + (p / cols) * PANEL_H;
        rp_filter qt = q;
        char title[160];
        if (p == 0) {
            snprintf(title, sizeof title, "mean over %d task%s", s->tasks.n,
                     s->tasks.n == 1 ? "" : "s");
        } else {
            qt.task = s->tasks.v[p - 1];
            snprintf(title, sizeof title, "task %s", qt.task);
        }
        score_panel(f, s, qt, x, y, title);
    }
    legend(f, s, cols * PANEL_W + 10, 80);
    lrsa_svg_end(f);
    return lrsa_atomic_commit(&af, e);
}

int rp_plot_side_by_side(const rp_set *s, const char *run_dir, rp_by by, const char *fixed1,
                         const char *prefill, char *name, size_t cap, lrsa_err *e) {
    int idx[64];
    double keep[64];
    const rp_names *panels = by == RP_BY_MODEL ? &s->models : &s->protocols;
    name[0] = '\0';
    if (panels->n < 2 || keep_budgets(s, idx, keep) < 2) return 0;
    char b[128], c[64];
    rp_slug(fixed1, b, sizeof b);
    rp_slug(prefill, c, sizeof c);
    snprintf(name, cap, "%s_side_by_side_%s_%s.svg", by == RP_BY_MODEL ? "models" : "protocols", b,
             c);
    double W = panels->n * PANEL_W + LEGEND_W, H = 40 + PANEL_H;
    int leg_h = 40 + 20 * s->methods.n;
    if (H < leg_h + 60) H = leg_h + 60;
    lrsa_atomic_file af;
    if (open_svg(&af, run_dir, name, e) != 0) return -1;
    FILE *f = af.f;
    lrsa_svg_begin(f, W, H);
    fprintf(f,
            "<text x=\"%.0f\" y=\"26\" text-anchor=\"middle\" font-size=\"18\">%s side by "
            "side: mean score over tasks vs keep fraction (",
            W / 2, by == RP_BY_MODEL ? "Models" : "Protocols");
    lrsa_svg_escape(f, fixed1);
    fprintf(f, ", %s prefill)</text>\n", prefill);
    for (int i = 0; i < panels->n; i++) {
        rp_filter q = rp_any();
        q.prefill = prefill;
        if (by == RP_BY_MODEL) {
            q.model = panels->v[i];
            q.protocol = fixed1;
        } else {
            q.protocol = panels->v[i];
            q.model = fixed1;
        }
        char title[160];
        snprintf(title, sizeof title, "%s %s", by == RP_BY_MODEL ? "model" : "protocol",
                 panels->v[i]);
        score_panel(f, s, q, i * PANEL_W, 40, title);
    }
    legend(f, s, panels->n * PANEL_W + 10, 80);
    lrsa_svg_end(f);
    return lrsa_atomic_commit(&af, e);
}

int rp_plot_heatmaps(const rp_set *s, const char *run_dir, const char *model, const char *task,
                     const char *protocol, const char *prefill, char *name, size_t cap,
                     lrsa_err *e) {
    double lens[32], deps[32];
    int nl = rp_points(s, task, 0, lens, 32), nd = rp_points(s, task, 1, deps, 32);
    name[0] = '\0';
    if (nl == 0 || nd == 0) return 0;
    char a[128], t[128], b[64], c[64];
    rp_slug(model, a, sizeof a);
    rp_slug(task, t, sizeof t);
    rp_slug(protocol, b, sizeof b);
    rp_slug(prefill, c, sizeof c);
    snprintf(name, cap, "heatmap_%s_%s_%s_%s.svg", a, t, b, c);
    const double CW = 190, CH = 150, LW = 120, TOP = 60;
    int nb = s->n_budgets, nm = s->methods.n;
    double W = LW + nb * CW + 20, H = TOP + nm * CH + 50;
    lrsa_atomic_file af;
    if (open_svg(&af, run_dir, name, e) != 0) return -1;
    FILE *f = af.f;
    lrsa_svg_begin(f, W, H);
    fprintf(f, "<text x=\"%.0f\" y=\"24\" text-anchor=\"middle\" font-size=\"17\">", W / 2);
    lrsa_svg_escape(f, task);
    fprintf(f, ": string-match-all (%%) by context length (x) and needle depth (y)</text>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"44\" text-anchor=\"middle\" font-size=\"12\">", W / 2);
    lrsa_svg_escape(f, model);
    fprintf(f, ", %s, %s prefill; rows: methods, columns: keep fraction</text>\n", protocol,
            prefill);
    char lbuf[32][16], dbuf[32][16];
    const char *ll[32], *dl[32];
    for (int i = 0; i < nl; i++) snprintf(lbuf[i], 16, "%g", lens[i]), ll[i] = lbuf[i];
    for (int i = 0; i < nd; i++) snprintf(dbuf[i], 16, "%g", deps[i]), dl[i] = dbuf[i];
    double *v = lrsa_malloc((size_t)(nl * nd) * sizeof *v);
    for (int bi = 0; bi < nb; bi++) {
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"13\" "
                "font-weight=\"bold\">keep %s</text>\n",
                LW + bi * CW + 62 + (CW - 70) / 2, TOP + 14, s->budgets[bi].label);
    }
    for (int m = 0; m < nm; m++) {
        fprintf(f,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\" font-size=\"13\" "
                "font-weight=\"bold\">",
                LW - 8, TOP + m * CH + CH / 2);
        lrsa_svg_escape(f, s->methods.v[m]);
        fprintf(f, "</text>\n");
        for (int bi = 0; bi < nb; bi++) {
            rp_filter q = rp_any();
            q.model = model;
            q.task = task;
            q.protocol = protocol;
            q.prefill = prefill;
            q.method = s->methods.v[m];
            q.budget = bi;
            for (int di = 0; di < nd; di++)
                for (int li = 0; li < nl; li++) {
                    q.length = lens[li];
                    q.depth = deps[di];
                    v[di * nl + li] = rp_mean(s, &q, offsetof(rp_row, score));
                }
            /* axis names once: depth on the first column, length on the last row */
            lrsa_heatmap hm = {
                nd, nl, dl, ll, v, "", m == nm - 1 ? "context length" : "", bi == 0 ? "depth" : "",
                1};
            lrsa_svg_heatmap_panel(f, LW + bi * CW, TOP + m * CH, CW, CH, &hm);
        }
    }
    free(v);
    lrsa_svg_colorbar(f, LW, H - 34, 200, "string-match-all (%); grey: no data");
    lrsa_svg_end(f);
    return lrsa_atomic_commit(&af, e);
}
