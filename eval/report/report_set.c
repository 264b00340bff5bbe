/* The results of a grid run as a report reads them (eval/report/report_set.h): the row index
 * from results.jsonl, the distinct names and budgets, and the aggregates. */
#include "eval/report/report_set.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "eval/run/grid_results.h"

static int name_index(rp_names *l, const char *v) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], v)) return i;
    if (l->n < 64) l->v[l->n++] = v;
    return l->n - 1;
}

static void budget_label(rp_budget *b) {
    if (b->tokens > 0) {
        snprintf(b->label, sizeof b->label, "%lld tok", (long long)b->tokens);
        return;
    }
    double inv = 1.0 / b->keep;
    if (fabs(inv - lround(inv)) < 1e-9 && lround(inv) > 1)
        snprintf(b->label, sizeof b->label, "1/%ld", lround(inv));
    else
        snprintf(b->label, sizeof b->label, "%.3g", b->keep);
}

static int budget_cmp(const void *a, const void *b) {
    const rp_budget *x = a, *y = b;
    if ((x->tokens > 0) != (y->tokens > 0)) return x->tokens > 0 ? 1 : -1;
    if (x->tokens > 0) return (x->tokens > y->tokens) - (x->tokens < y->tokens);
    return (x->keep < y->keep) - (x->keep > y->keep); /* descending */
}

rp_filter rp_any(void) {
    rp_filter f = {NULL, NULL, NULL, NULL, NULL, -1, NAN, NAN};
    return f;
}

int rp_same(const char *want, const char *have) {
    return !want || !strcmp(want, have);
}

double rp_mean(const rp_set *s, const rp_filter *f, size_t field) {
    double sum = 0, w = 0;
    for (int i = 0; i < s->n; i++) {
        const rp_row *r = &s->r[i];
        if (!rp_same(f->model, r->model) || !rp_same(f->method, r->method) ||
            !rp_same(f->task, r->task) || !rp_same(f->protocol, r->protocol) ||
            !rp_same(f->prefill, r->prefill))
            continue;
        if (f->budget >= 0 && f->budget != r->budget) continue;
        if (isfinite(f->length) && f->length != r->length) continue;
        if (isfinite(f->depth) && f->depth != r->depth) continue;
        double v = *(const double *)((const char *)r + field);
        if (!isfinite(v)) continue;
        double wt = r->n > 0 ? r->n : 1;
        sum += wt * v;
        w += wt;
    }
    return w > 0 ? sum / w : NAN;
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int rp_points(const rp_set *s, const char *task, int depth, double *out, int cap) {
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->r[i].task, task)) continue;
        double v = depth ? s->r[i].depth : s->r[i].length;
        if (!isfinite(v)) continue;
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= out[j] == v;
        if (!seen && n < cap) out[n++] = v;
    }
    qsort(out, (size_t)n, sizeof *out, dbl_cmp);
    return n;
}

void rp_slug(const char *in, char *out, size_t cap) {
    size_t o = 0;
    for (; *in && o + 1 < cap; in++) {
        char ch = *in;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.';
        out[o++] = ok ? ch : '_';
    }
    out[o] = '\0';
}

int rp_load(rp_set *s, const char *run_dir, lrsa_err *e) {
    memset(s, 0, sizeof *s);
    char path[4200];
    lrsa_path_join(path, sizeof path, run_dir, "results.jsonl");
    if (!lrsa_file_exists(path))
        return lrsa_errorf(e, "%s: no results.jsonl (run `lrsa eval CONFIG.yaml` first)", run_dir);
    lrsa_grid_rows *rows = lrsa_malloc(sizeof *rows);
    if (lrsa_grid_rows_read(rows, path, e) != 0) {
        free(rows);
        return -1;
    }
    s->json = rows;
    if (rows->n == 0) return lrsa_errorf(e, "%s: no result rows", path);
    s->r = lrsa_calloc((size_t)rows->n, sizeof *s->r);
    double keeps[64];
    int64_t toks[64];
    int nb = 0;
    for (int i = 0; i < rows->n; i++) {
        const cJSON *j = rows->row[i];
        rp_row *r = &s->r[s->n++];
        r->model = lrsa_row_str(j, "model", "?");
        r->method = lrsa_row_str(j, "method", "?");
        r->task = lrsa_row_str(j, "task", "?");
        r->protocol = lrsa_row_str(j, "protocol", "?");
        r->prefill = lrsa_row_str(j, "prefill", "?");
        r->host = lrsa_row_str(j, "host", "");
        name_index(&s->models, r->model);
        name_index(&s->methods, r->method);
        name_index(&s->tasks, r->task);
        name_index(&s->protocols, r->protocol);
        name_index(&s->prefills, r->prefill);
        if (r->host[0]) name_index(&s->hosts, r->host);
        double keep = lrsa_row_num(j, "keep", 0);
        int64_t tok = (int64_t)lrsa_row_num(j, "tokens_per_layer", 0);
        int b = -1;
        for (int k = 0; k < nb; k++)
            if (keeps[k] == keep && toks[k] == tok) b = k;
        if (b < 0 && nb < 64) {
            keeps[nb] = keep;
            toks[nb] = tok;
            b = nb++;
        }
        r->budget = b; /* renumbered after sorting */
        r->length = lrsa_row_num(j, "length", NAN);
        r->depth = lrsa_row_num(j, "depth", NAN);
        r->n = lrsa_row_num(j, "n", 1);
        r->score = lrsa_row_num(j, "string_match_all", NAN);
        r->match_part = lrsa_row_num(j, "string_match_part", NAN);
        r->exact = lrsa_row_num(j, "exact_match", NAN);
        r->f1 = lrsa_row_num(j, "f1", NAN);
        r->nll = lrsa_row_num(j, "answer_nll", NAN);
        r->kept = lrsa_row_num(j, "kept_fraction", NAN);
        r->kept_min = lrsa_row_num(j, "kept_fraction_min", NAN);
        r->kept_max = lrsa_row_num(j, "kept_fraction_max", NAN);
        r->peak_bytes = lrsa_row_num(j, "peak_cache_bytes", NAN);
        r->full_bytes = lrsa_row_num(j, "full_cache_bytes", NAN);
        r->prefill_s = lrsa_row_num(j, "prefill_s", NAN);
        r->press_s = lrsa_row_num(j, "press_s", NAN);
        r->overhead = lrsa_row_num(j, "press_overhead", NAN);
        r->wall_s = lrsa_row_num(j, "wall_s", NAN);
        r->ctx_tokens = lrsa_row_num(j, "context_tokens", NAN);
    }
    for (int k = 0; k < nb; k++) {
        s->budgets[k].keep = keeps[k];
        s->budgets[k].tokens = toks[k];
    }
    s->n_budgets = nb;
    qsort(s->budgets, (size_t)nb, sizeof *s->budgets, budget_cmp);
    for (int k = 0; k < nb; k++) budget_label(&s->budgets[k]);
    for (int i = 0; i < s->n; i++) {
        int old = s->r[i].budget;
        for (int k = 0; k < nb; k++)
            if (s->budgets[k].keep == keeps[old] && s->budgets[k].tokens == toks[old])
                s->r[i].budget = k;
    }
    return 0;
}

void rp_free(rp_set *s) {
    if (s->json) {
        lrsa_grid_rows_free(s->json);
        free(s->json);
    }
    free(s->r);
    memset(s, 0, sizeof *s);
}
