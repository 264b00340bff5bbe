/* report.md from results.jsonl: the Markdown tables (the rows and their aggregates:
 * eval/report/report_set.c; the pictures: eval/report/report_plots.c). */
#include "eval/report/report.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "eval/run/grid_results.h"

/* ---- Markdown ---- */

typedef struct md_ctx {
    FILE *f;
    const rp_set *s;
} md_ctx;

static void cell_pct(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, " %.1f |", 100 * v);
    else
        fprintf(f, " - |");
}

static void header(FILE *f, const rp_set *s, const char *first) {
    fprintf(f, "| %s |", first);
    for (int b = 0; b < s->n_budgets; b++) fprintf(f, " %s |", s->budgets[b].label);
    fprintf(f, "\n|---|");
    for (int b = 0; b < s->n_budgets; b++) fprintf(f, "---:|");
    fprintf(f, "\n");
}

/* method x budget table of a field (pct: x100 with one decimal; else fmt). */
static void method_table(FILE *f, const rp_set *s, rp_filter base, size_t field, int pct,
                         const char *fmt, double scale) {
    header(f, s, "method");
    for (int m = 0; m < s->methods.n; m++) {
        rp_filter q = base;
        q.method = s->methods.v[m];
        if (!isfinite(rp_mean(s, &q, field))) continue;
        fprintf(f, "| %s |", s->methods.v[m]);
        for (int b = 0; b < s->n_budgets; b++) {
            q.budget = b;
            double v = rp_mean(s, &q, field);
            if (pct)
                cell_pct(f, v);
            else if (isfinite(v))
                fprintf(f, fmt, v * scale), fputs(" |", f);
            else
                fprintf(f, " - |");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n");
}

/* First answers at the smallest keep fraction: what compression does to the text. */
static void example_answers(FILE *f, const rp_set *s, rp_filter base) {
    int b = -1;
    for (int k = 0; k < s->n_budgets; k++)
        if (s->budgets[k].keep > 0) b = k; /* sorted descending: the last is the smallest */
    if (b < 0) return;
    const cJSON *const *rows = (const cJSON *const *)((lrsa_grid_rows *)s->json)->row;
    fprintf(f, "### Example answers\n\nAt keep %s, the first sample of each task:\n\n| method |",
            s->budgets[b].label);
    for (int t = 0; t < s->tasks.n; t++) fprintf(f, " %s |", s->tasks.v[t]);
    fprintf(f, "\n|---|");
    for (int t = 0; t < s->tasks.n; t++) fprintf(f, "---|");
    fprintf(f, "\n| *reference* |");
    for (int t = 0; t < s->tasks.n; t++) {
        const char *ref = "";
        for (int i = 0; i < s->n && !ref[0]; i++)
            if (!strcmp(s->r[i].task, s->tasks.v[t]))
                ref = lrsa_row_str(rows[i], "example_reference", "");
        fprintf(f, " %s |", ref);
    }
    fprintf(f, "\n");
    for (int m = 0; m < s->methods.n; m++) {
        fprintf(f, "| %s |", s->methods.v[m]);
        for (int t = 0; t < s->tasks.n; t++) {
            const char *pred = NULL;
            for (int i = 0; i < s->n && !pred; i++) {
                const rp_row *r = &s->r[i];
                if (r->budget == b && !strcmp(r->method, s->methods.v[m]) &&
                    !strcmp(r->task, s->tasks.v[t]) && rp_same(base.model, r->model) &&
                    rp_same(base.protocol, r->protocol) && rp_same(base.prefill, r->prefill))
                    pred = lrsa_row_str(rows[i], "example_prediction", "");
            }
            fputc(' ', f);
            for (const char *p = pred ? pred : "-"; *p; p++) /* one table cell: no | or newline */
                fputs(*p == '|' ? "\\|" : (*p == '\n' || *p == '\r') ? " " : (char[2]){*p, 0}, f);
            fprintf(f, " |");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n");
}

/* In place of a picture that cannot be drawn: why, in report.md and on stdout. */
static void no_picture(FILE *f, const char *what, const char *why) {
    fprintf(f, "*No %s picture: %s.*\n\n", what, why);
    printf("report: no %s picture: %s\n", what, why);
}

/* Why the pictures over the keep fraction are missing (they need two keep fractions). */
static const char *why_no_keep_axis(const rp_set *s) {
    return rp_n_keep_budgets(s) == 0
               ? "the budgets are token counts (tokens_per_layer), which have no keep axis; give "
                 "budgets.keep two or more fractions to draw one"
               : "the grid has one keep fraction; give budgets.keep two or more (e.g. [1, 1/4]) "
                 "to draw score against it";
}

static void setting_section(FILE *f, const rp_set *s, const char *run_dir, const char *model,
                            const char *protocol, const char *prefill, int many, lrsa_err *e) {
    rp_filter base = rp_any();
    base.model = model;
    base.protocol = protocol;
    base.prefill = prefill;
    if (!isfinite(rp_mean(s, &base, offsetof(rp_row, score)))) return;
    if (many)
        fprintf(f, "## %s, %s, %s prefill\n\n", model, protocol, prefill);
    else
        fprintf(f, "## Results (%s, %s, %s prefill)\n\n", model, protocol, prefill);
    char name[512];
    fprintf(f, "### Score by method and keep fraction\n\nstring-match-all (RULER: the share of the "
               "reference parts found in the answer), in %%, mean over tasks, lengths and depths "
               "(weighted by samples). Columns are the budget: the fraction of the context's KV "
               "rows kept per layer and head (1 = no compression).\n\n");
    method_table(f, s, base, offsetof(rp_row, score), 1, NULL, 1);
    if (rp_plot_score_vs_keep(s, run_dir, model, protocol, prefill, name, sizeof name, e) == 0) {
        if (name[0])
            fprintf(f, "![score vs keep fraction](%s)\n\n", name);
        else
            no_picture(f, "score-vs-keep", why_no_keep_axis(s));
    }
    for (int t = 0; t < s->tasks.n; t++) {
        rp_filter q = base;
        q.task = s->tasks.v[t];
        if (!isfinite(rp_mean(s, &q, offsetof(rp_row, score)))) continue;
        double lens[32], deps[32];
        int nl = rp_points(s, q.task, 0, lens, 32), nd = rp_points(s, q.task, 1, deps, 32);
        fprintf(f, "#### Task %s", q.task);
        if (nl > 0) {
            fprintf(f, " (lengths");
            for (int i = 0; i < nl; i++) fprintf(f, "%s%g", i ? ", " : " ", lens[i]);
            fprintf(f, "; depths");
            for (int i = 0; i < nd; i++) fprintf(f, "%s%g", i ? ", " : " ", deps[i]);
            fprintf(f, ")");
        }
        fprintf(f, "\n\n");
        method_table(f, s, q, offsetof(rp_row, score), 1, NULL, 1);
        fprintf(f, "<details><summary>other metrics: string-match-part, exact match, token F1 "
                   "(%%)</summary>\n\n");
        fprintf(f, "string-match-part:\n\n");
        method_table(f, s, q, offsetof(rp_row, match_part), 1, NULL, 1);
        fprintf(f, "exact match:\n\n");
        method_table(f, s, q, offsetof(rp_row, exact), 1, NULL, 1);
        fprintf(f, "token F1:\n\n");
        method_table(f, s, q, offsetof(rp_row, f1), 1, NULL, 1);
        fprintf(f, "</details>\n\n");
        if ((nl > 1 || nd > 1) &&
            rp_plot_heatmaps(s, run_dir, model, q.task, protocol, prefill, name, sizeof name, e) ==
                0 &&
            name[0])
            fprintf(f, "![%s: length x depth](%s)\n\n", q.task, name);
        else if (nl == 1 && nd == 1)
            no_picture(f, "length x depth heat map",
                       "the task has one length and one depth; give it two or more lengths or "
                       "depths to draw one");
    }
    fprintf(f, "### Answer NLL\n\nTeacher-forced negative log-likelihood of the reference answer "
               "(nats per token, lower is better), mean over tasks.\n\n");
    method_table(f, s, base, offsetof(rp_row, nll), 0, " %.3f", 1);
    fprintf(f, "### Kept fraction achieved\n\nKept rows / context rows after the press, mean over "
               "layers, heads and samples (budgets are per layer and head; protected sink and "
               "window rows, PyramidKV's layer budgets and LagKV's partitions make it differ "
               "from the nominal keep).\n\n");
    method_table(f, s, base, offsetof(rp_row, kept), 0, " %.3f", 1);
    fprintf(f, "### Memory\n\nPeak live K/V cache bytes while answering (MiB; float32 rows), the "
               "largest over the samples. Physical eviction: the cache holds only the kept "
               "rows.\n\n");
    method_table(f, s, base, offsetof(rp_row, peak_bytes), 0, " %.2f", 1.0 / (1024.0 * 1024.0));
    example_answers(f, s, base);
    fprintf(f, "### Time\n\nPer sample, mean over budgets: prefill (under the press, scoring "
               "inside the observed forward included), press (extra scoring passes + selection), "
               "the press time as a multiple of the prefill (KVzip's reconstruction overhead), "
               "and the total per cell.\n\n");
    fprintf(f, "| method | prefill s | press s | press / prefill | wall s per cell |\n"
               "|---|---:|---:|---:|---:|\n");
    for (int m = 0; m < s->methods.n; m++) {
        rp_filter q = base;
        q.method = s->methods.v[m];
        double p = rp_mean(s, &q, offsetof(rp_row, prefill_s));
        if (!isfinite(p)) continue;
        fprintf(f, "| %s | %.2f | %.3f | %.2fx | %.1f |\n", q.method, p,
                rp_mean(s, &q, offsetof(rp_row, press_s)),
                rp_mean(s, &q, offsetof(rp_row, overhead)),
                rp_mean(s, &q, offsetof(rp_row, wall_s)));
    }
    fprintf(f, "\n");
}

/* Models (or protocols) side by side: "a / b" cells and one picture. */
static void side_by_side_section(FILE *f, const rp_set *s, const char *run_dir, rp_by by,
                                 const char *fixed1, const char *prefill, lrsa_err *e) {
    const rp_names *l = by == RP_BY_MODEL ? &s->models : &s->protocols;
    if (l->n < 2) return;
    fprintf(f,
            "## %s side by side (%s, %s prefill)\n\nstring-match-all (%%), mean over tasks; "
            "each cell reads",
            by == RP_BY_MODEL ? "Models" : "Protocols", fixed1, prefill);
    for (int i = 0; i < l->n; i++) fprintf(f, "%s%s", i ? " / " : " ", l->v[i]);
    fprintf(f, ".\n\n");
    header(f, s, "method");
    for (int m = 0; m < s->methods.n; m++) {
        fprintf(f, "| %s |", s->methods.v[m]);
        for (int b = 0; b < s->n_budgets; b++) {
            for (int i = 0; i < l->n; i++) {
                rp_filter q = rp_any();
                q.method = s->methods.v[m];
                q.model = by == RP_BY_MODEL ? l->v[i] : fixed1;
                q.protocol = by == RP_BY_MODEL ? fixed1 : l->v[i];
                q.prefill = prefill;
                q.budget = b;
                double v = rp_mean(s, &q, offsetof(rp_row, score));
                if (isfinite(v))
                    fprintf(f, "%s%.1f", i ? " / " : " ", 100 * v);
                else
                    fprintf(f, "%s-", i ? " / " : " ");
            }
            fprintf(f, " |");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n");
    char name[512];
    if (rp_plot_side_by_side(s, run_dir, by, fixed1, prefill, name, sizeof name, e) == 0) {
        if (name[0])
            fprintf(f, "![%s side by side](%s)\n\n", by == RP_BY_MODEL ? "models" : "protocols",
                    name);
        else
            no_picture(f, by == RP_BY_MODEL ? "models side-by-side" : "protocols side-by-side",
                       why_no_keep_axis(s));
    }
}

int lrsa_report_write(const char *run_dir, lrsa_err *e) {
    rp_set s;
    if (rp_load(&s, run_dir, e) != 0) {
        rp_free(&s);
        return -1;
    }
    char path[4200];
    lrsa_path_join(path, sizeof path, run_dir, "report.md");
    lrsa_atomic_file af;
    if (lrsa_atomic_open(&af, path, e) != 0) {
        rp_free(&s);
        return -1;
    }
    FILE *f = af.f;
    char when[64], cpu[512];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);
    lrsa_host_description(cpu, sizeof cpu);
    fprintf(f, "# KV-cache compression report\n\n");
    fprintf(f, "- Results: `results.jsonl` in this folder, %d cells", s.n);
    char cfg[4200];
    lrsa_path_join(cfg, sizeof cfg, run_dir, "config.yaml");
    if (lrsa_file_exists(cfg)) fprintf(f, "; grid config: [`config.yaml`](config.yaml)");
    fprintf(f, "\n- Report written %s by `lrsa report`", when);
    if (s.hosts.n > 0) {
        fprintf(f, "; results measured on");
        for (int i = 0; i < s.hosts.n; i++) fprintf(f, "%s%s", i ? "; " : " ", s.hosts.v[i]);
    } else {
        fprintf(f, " on %s", cpu);
    }
    fprintf(f, "\n- Models:");
    for (int i = 0; i < s.models.n; i++) fprintf(f, "%s`%s`", i ? ", " : " ", s.models.v[i]);
    fprintf(f, "\n- Methods:");
    for (int i = 0; i < s.methods.n; i++) fprintf(f, "%s%s", i ? ", " : " ", s.methods.v[i]);
    fprintf(f, "\n- Tasks:");
    for (int i = 0; i < s.tasks.n; i++) fprintf(f, "%s%s", i ? ", " : " ", s.tasks.v[i]);
    fprintf(f, "\n- Protocols:");
    for (int i = 0; i < s.protocols.n; i++) fprintf(f, "%s%s", i ? ", " : " ", s.protocols.v[i]);
    fprintf(f, " (query-agnostic: the context is compressed before the question is seen; "
               "query-aware: the question is inside the compressed prompt)\n\n");
    int settings = s.models.n * s.protocols.n * s.prefills.n;
    for (int m = 0; m < s.models.n; m++)
        for (int p = 0; p < s.protocols.n; p++)
            for (int q = 0; q < s.prefills.n; q++)
                setting_section(f, &s, run_dir, s.models.v[m], s.protocols.v[p], s.prefills.v[q],
                                settings > 1, e);
    for (int p = 0; p < s.protocols.n; p++)
        for (int q = 0; q < s.prefills.n; q++)
            side_by_side_section(f, &s, run_dir, RP_BY_MODEL, s.protocols.v[p], s.prefills.v[q], e);
    for (int m = 0; m < s.models.n; m++)
        for (int q = 0; q < s.prefills.n; q++)
            side_by_side_section(f, &s, run_dir, RP_BY_PROTOCOL, s.models.v[m], s.prefills.v[q], e);
    int rc = lrsa_atomic_commit(&af, e);
    if (rc == 0) printf("report: wrote %s (%d cells)\n", path, s.n);
    rp_free(&s);
    return rc;
}
