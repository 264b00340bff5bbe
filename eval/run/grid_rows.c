/* The grid's output around the runs (eval/run/grid_group.h): a group's description, a finished
 * cell's results.jsonl row and the progress line. Shared by the planner (grid_run.c) and the
 * group runner (grid_group.c). */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "eval/press/press.h"
#include "eval/run/grid_group.h"
#include "eval/run/grid_results.h"
#include "eval/run/prefill.h"

void lrsa_grid_describe_group(const lrsa_grid_config *c, const lrsa_grid_group *g, char *buf,
                              size_t cap) {
    const lrsa_grid_task *t = &c->tasks[g->task];
    if (t->synthetic[0])
        snprintf(buf, cap, "%s %s L=%lld d=%g %s %s", c->models[g->model].name, t->name,
                 (long long)g->length, g->depth, lrsa_grid_protocol_name(g->proto),
                 lrsa_prefill_mode_name(g->prefill));
    else
        snprintf(buf, cap, "%s %s %s %s", c->models[g->model].name, t->name,
                 lrsa_grid_protocol_name(g->proto), lrsa_prefill_mode_name(g->prefill));
}

cJSON *lrsa_grid_cell_row(const lrsa_grid_config *c, const lrsa_grid_group *g,
                          const lrsa_grid_cell *x) {
    const lrsa_grid_task *t = &c->tasks[g->task];
    const lrsa_grid_method *m = &c->methods[x->method];
    const lrsa_grid_budget *b = &c->budgets[x->budget];
    double n = x->n > 0 ? x->n : 1;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "key", x->key);
    cJSON_AddStringToObject(r, "model", c->models[g->model].name);
    cJSON_AddStringToObject(r, "model_path", c->models[g->model].path);
    cJSON_AddStringToObject(r, "method", m->label);
    cJSON_AddStringToObject(r, "press", lrsa_press_method_name(m->spec.method));
    cJSON_AddStringToObject(r, "spec", x->spec);
    if (b->tokens > 0)
        cJSON_AddNumberToObject(r, "tokens_per_layer", (double)b->tokens);
    else
        cJSON_AddNumberToObject(r, "keep", b->keep);
    cJSON_AddStringToObject(r, "protocol", lrsa_grid_protocol_name(g->proto));
    cJSON_AddStringToObject(r, "prefill", lrsa_prefill_mode_name(g->prefill));
    lrsa_press_spec ran; /* the mode that actually ran: one forward for every press but LagKV */
    lrsa_grid_spec_at(m, b, g->prefill, &ran);
    cJSON_AddStringToObject(r, "prefill_ran", lrsa_press_prefill_label(&ran));
    cJSON_AddStringToObject(r, "device", c->device_cuda ? "cuda" : "cpu");
    cJSON_AddStringToObject(r, "task", t->name);
    if (t->synthetic[0]) {
        cJSON_AddStringToObject(r, "synthetic", t->synthetic);
        cJSON_AddNumberToObject(r, "length", (double)g->length);
        cJSON_AddNumberToObject(r, "depth", g->depth);
    } else {
        cJSON_AddStringToObject(r, "file", t->file);
    }
    cJSON_AddNumberToObject(r, "n", x->n);
    if (t->max_new > 0 || c->max_new > 0)
        cJSON_AddNumberToObject(r, "max_new", t->max_new > 0 ? t->max_new : c->max_new);
    else
        cJSON_AddStringToObject(r, "max_new", "auto");
    cJSON *mt = cJSON_AddObjectToObject(r, "metrics");
    cJSON_AddNumberToObject(mt, "string_match_all", x->sc.match_all / n);
    cJSON_AddNumberToObject(mt, "string_match_part", x->sc.match_part / n);
    cJSON_AddNumberToObject(mt, "exact_match", x->sc.exact / n);
    cJSON_AddNumberToObject(mt, "f1", x->sc.f1 / n);
    cJSON_AddNumberToObject(r, "answer_nll", x->nll_tok ? x->nll_sum / (double)x->nll_tok : 0.0);
    cJSON_AddNumberToObject(r, "answer_tokens", (double)x->nll_tok);
    cJSON_AddNumberToObject(r, "kept_fraction", x->kept / n);
    cJSON_AddNumberToObject(r, "kept_fraction_min", x->kept_min);
    cJSON_AddNumberToObject(r, "kept_fraction_max", x->kept_max);
    cJSON_AddNumberToObject(r, "context_tokens", x->ctx_tokens / n);
    cJSON_AddNumberToObject(r, "peak_cache_bytes", x->cache_bytes);
    cJSON_AddNumberToObject(r, "full_cache_bytes", x->full_bytes);
    cJSON_AddNumberToObject(r, "prefill_s", x->prefill_s / n);
    cJSON_AddNumberToObject(r, "press_s", (x->score_s + x->apply_s) / n);
    cJSON_AddNumberToObject(r, "score_s", x->score_s / n);
    /* KVzip's cost as a multiple of the prefill: its reconstruction passes / the prefill */
    cJSON_AddNumberToObject(r, "press_overhead",
                            x->prefill_s > 0 ? (x->score_s + x->apply_s) / x->prefill_s : 0.0);
    cJSON_AddNumberToObject(r, "answer_s", x->answer_s / n);
    cJSON_AddNumberToObject(r, "wall_s", x->cell_s);
    cJSON_AddStringToObject(r, "example_prediction", x->example_pred);
    cJSON_AddStringToObject(r, "example_reference", x->example_ref);
    cJSON_AddItemToObject(r, "samples", lrsa_sample_records_json(&x->recs));
    char host[512];
    lrsa_host_description(host, sizeof host);
    cJSON_AddStringToObject(r, "host", host);
    char when[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    cJSON_AddStringToObject(r, "time", when);
    return r;
}

/* ---- progress ---- */
static void fmt_eta(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0)
        snprintf(buf, cap, "?");
    else if (s < 90)
        snprintf(buf, cap, "%.0fs", s);
    else if (s < 5400)
        snprintf(buf, cap, "%.0fm", s / 60);
    else
        snprintf(buf, cap, "%.1fh", s / 3600);
}

void lrsa_grid_progress_line(const lrsa_grid_progress *p, const char *what) {
    double el = lrsa_now() - p->t0;
    double eta = p->units_done > 0 ? el / p->units_done * (p->units_total - p->units_done) : NAN;
    char es[32], ts[32];
    fmt_eta(eta, es, sizeof es);
    fmt_eta(el, ts, sizeof ts);
    fprintf(stderr, "[cell %d/%d, %s elapsed, ETA %s] %s\n", p->cells_done, p->cells_total, ts, es,
            what);
}
