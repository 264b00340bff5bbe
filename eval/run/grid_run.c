/* The grid runner (eval/run/grid.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/fileio.h"
#include "data/chat.h"
#include "eval/run/eval_dataset.h"
#include "eval/run/generate.h"
#include "eval/run/grid.h"
#include "eval/run/grid_config.h"
#include "eval/run/grid_data.h"
#include "eval/run/grid_group.h"
#include "eval/run/grid_results.h"
#include "eval/run/metrics.h"
#include "eval/run/prefill.h"
#include "eval/press/press.h"
#include "eval/press/press_kvzip.h"
#include "eval/run/sample_records.h"
#include "model/device_ops.h"

static const char GRID_HELP[] =
    "usage: lrsa eval CONFIG.yaml [key=value ...] [--dry-run] [--quiet]\n"
    "\n"
    "Runs an evaluation grid: models x methods x budgets x tasks (lengths x depths) x\n"
    "protocols x prefill modes, and appends one JSON line per cell to RUN_DIR/results.jsonl.\n"
    "Cells already in results.jsonl are skipped, so an interrupted grid resumes where it\n"
    "stopped. The whole config is checked before any work. See docs/EVAL.md and configs/eval/.\n"
    "\n"
    "  key=value    override a config key (YAML value), e.g. run_dir=runs/x tasks.n=2\n"
    "               budgets.keep=[1,0.5] methods=[none,snapkv] protocols=[query-aware]\n"
    "  --dry-run    list the cells (and which are done) and exit; runs no model\n"
    "  --quiet      no per-sample progress lines (the per-group lines remain)\n";

int lrsa_grid_is_config(const char *arg) {
    size_t n = arg ? strlen(arg) : 0;
    return (n > 5 && !strcmp(arg + n - 5, ".yaml")) || (n > 4 && !strcmp(arg + n - 4, ".yml"));
}

/* ---- per-model state ---- */
static int model_open(lrsa_grid_model_ctx *mc, const lrsa_grid_model *gm, lrsa_err *e) {
    memset(mc, 0, sizeof *mc);
    if (lrsa_model_load(&mc->m, gm->path, e) != 0)
        return lrsa_err_prefix(e, "model '%s': ", gm->name);
    mc->tok = lrsa_tokenizer_load_dir(gm->path, e);
    if (!mc->tok) {
        lrsa_model_free(&mc->m);
        return lrsa_err_prefix(e, "model '%s': ", gm->name);
    }
    lrsa_chat_format fmt = lrsa_chat_detect(mc->tok);
    mc->n_stop = lrsa_chat_stop_ids(mc->tok, fmt, mc->stop, 8);
    for (int i = 0; i < mc->m.cfg.n_eos && mc->n_stop < 16; i++)
        mc->stop[mc->n_stop++] = mc->m.cfg.eos_token_ids[i];
    mc->V = mc->m.cfg.vocab_size;
    if (lrsa_kvzip_prompt_ids(mc->tok, fmt, &mc->kvzip_prompt, e) != 0) {
        lrsa_tokenizer_free(mc->tok);
        lrsa_model_free(&mc->m);
        return lrsa_err_prefix(e, "model '%s': ", gm->name);
    }
    return 0;
}

static void model_close(lrsa_grid_model_ctx *mc) {
    lrsa_ids_free(&mc->kvzip_prompt);
    lrsa_tokenizer_free(mc->tok);
    lrsa_model_free(&mc->m);
}

static void cell_key(const lrsa_grid_config *c, const lrsa_grid_group *g, lrsa_grid_cell *x) {
    const lrsa_grid_method *m = &c->methods[x->method];
    lrsa_press_spec s;
    lrsa_grid_spec_at(m, &c->budgets[x->budget], g->prefill, &s);
    lrsa_press_describe_spec(&s, x->spec, sizeof x->spec);
    const lrsa_grid_task *t = &c->tasks[g->task];
    char point[128];
    if (t->synthetic[0])
        snprintf(point, sizeof point, "length=%lld|depth=%g|seed=%llu", (long long)g->length,
                 g->depth, (unsigned long long)t->seed);
    else
        snprintf(point, sizeof point, "file");
    char budget[64], max_new[32] = "auto"; /* auto: per sample (lrsa_eval_max_new) */
    lrsa_grid_budget_name(&c->budgets[x->budget], budget, sizeof budget);
    if (t->max_new > 0 || c->max_new > 0)
        snprintf(max_new, sizeof max_new, "%d", t->max_new > 0 ? t->max_new : c->max_new);
    snprintf(x->key, sizeof x->key, "%s|%s|%s|%s|n=%lld|max_new=%s|%s|%s|%s|%s|%s",
             c->models[g->model].name, c->models[g->model].path, t->name, point, (long long)t->n,
             max_new, lrsa_grid_protocol_name(g->proto), lrsa_prefill_mode_name(g->prefill),
             m->label, budget, x->spec);
}

/* ---- the plan ---- */
typedef struct plan {
    lrsa_grid_group *g;
    int n;
} plan;

static void plan_free(plan *p) {
    for (int i = 0; i < p->n; i++) {
        for (int k = 0; k < p->g[i].n_cells; k++) lrsa_sample_records_free(&p->g[i].cells[k].recs);
        free(p->g[i].cells);
    }
    free(p->g);
}

static void plan_build(const lrsa_grid_config *c, const lrsa_grid_rows *done, plan *p) {
    memset(p, 0, sizeof *p);
    int cap = 0;
    for (int mi = 0; mi < c->n_models; mi++)
        for (int ti = 0; ti < c->n_tasks; ti++) {
            const lrsa_grid_task *t = &c->tasks[ti];
            int nl = t->synthetic[0] ? t->n_lengths : 1, nd = t->synthetic[0] ? t->n_depths : 1;
            for (int li = 0; li < nl; li++)
                for (int di = 0; di < nd; di++)
                    for (int pi = 0; pi < c->n_protocols; pi++)
                        for (int fi = 0; fi < c->n_prefill; fi++) {
                            if (p->n == cap) {
                                cap = cap ? 2 * cap : 16;
                                p->g = lrsa_realloc(p->g, (size_t)cap * sizeof *p->g);
                            }
                            lrsa_grid_group *g = &p->g[p->n++];
                            memset(g, 0, sizeof *g);
                            g->model = mi;
                            g->task = ti;
                            g->length = t->synthetic[0] ? t->lengths[li] : 0;
                            g->depth = t->synthetic[0] ? t->depths[di] : NAN;
                            g->proto = c->protocols[pi];
                            g->prefill = c->prefill[fi];
                            g->n_cells = c->n_methods * c->n_budgets;
                            g->cells = lrsa_calloc((size_t)g->n_cells, sizeof(lrsa_grid_cell));
                            for (int k = 0; k < g->n_cells; k++) {
                                lrsa_grid_cell *x = &g->cells[k];
                                x->method = k / c->n_budgets;
                                x->budget = k % c->n_budgets;
                                cell_key(c, g, x);
                                x->pending = !lrsa_grid_rows_has_key(done, x->key);
                                g->n_pending += x->pending;
                            }
                        }
        }
}

static int write_config_copy(const lrsa_grid_config *c, int argc, char **argv, lrsa_err *e) {
    size_t n = 0;
    char *text = lrsa_read_file(c->path, &n, e);
    if (!text) return -1;
    size_t cap = n + 4096;
    char *out = lrsa_malloc(cap);
    size_t len = (size_t)snprintf(out, cap, "# lrsa eval %s", c->path);
    for (int i = 2; i < argc && len < cap; i++)
        if (strchr(argv[i], '=')) len += (size_t)snprintf(out + len, cap - len, " %s", argv[i]);
    if (len < cap) len += (size_t)snprintf(out + len, cap - len, "\n%s", text);
    free(text);
    char path[LRSA_GRID_PATH + 32];
    lrsa_path_join(path, sizeof path, c->run_dir, "config.yaml");
    int rc = lrsa_write_file_atomic(path, out, len < cap ? len : cap - 1, e);
    free(out);
    return rc;
}

static int run(int argc, char **argv, lrsa_err *e) {
    int dry = 0, quiet = 0;
    lrsa_grid_config *c = lrsa_malloc(sizeof *c);
    int rc = lrsa_grid_config_load(c, argv[1], e);
    for (int i = 2; i < argc && rc == 0; i++) {
        if (!strcmp(argv[i], "--dry-run"))
            dry = 1;
        else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (argv[i][0] == '-')
            rc = lrsa_errorf(e, "eval: unknown flag '%s' for a grid (see lrsa eval --help)",
                             argv[i]);
        else
            rc = lrsa_grid_config_override(c, argv[i], e);
    }
    if (rc == 0) rc = lrsa_grid_config_validate(c, e);
    if (rc == 0 && c->device_cuda && !dry) /* before anything is written */
        rc =
            lrsa_cuda_usable("device: cuda", "set device: cpu (or device=cpu after the config)", e);
    if (rc != 0) {
        free(c);
        return -1;
    }
    char results[LRSA_GRID_PATH + 32];
    lrsa_path_join(results, sizeof results, c->run_dir, "results.jsonl");
    lrsa_grid_rows done;
    if (lrsa_grid_rows_read(&done, results, e) != 0) {
        free(c);
        return -1;
    }
    plan p;
    plan_build(c, &done, &p);
    lrsa_grid_rows_free(&done);
    lrsa_grid_progress pg = {lrsa_now(), 0, 0, 0, 0, quiet};
    int total = 0;
    for (int i = 0; i < p.n; i++) {
        pg.cells_total += p.g[i].n_pending;
        total += p.g[i].n_cells;
        const lrsa_grid_task *t = &c->tasks[p.g[i].task];
        int methods = 0;
        for (int mi = 0; mi < c->n_methods; mi++)
            for (int bi = 0; bi < c->n_budgets; bi++)
                if (p.g[i].cells[mi * c->n_budgets + bi].pending) {
                    methods++;
                    break;
                }
        pg.units_total += (double)methods * (double)(t->n > 0 ? t->n : 100);
    }
    fprintf(stderr, "lrsa eval: grid %s: %d cells, %d done, %d to run -> %s\n", c->path, total,
            total - pg.cells_total, pg.cells_total, results);
    if (dry) {
        for (int i = 0; i < p.n; i++)
            for (int k = 0; k < p.g[i].n_cells; k++)
                printf("%s  %s\n", p.g[i].cells[k].pending ? "todo" : "done", p.g[i].cells[k].key);
        plan_free(&p);
        free(c);
        return 0;
    }
    lrsa_haystack hay = {0};
    /* the synthetic tasks must fit their lengths with every model's tokenizer: checked before
     * anything is written or any model is loaded */
    for (int mi = 0; mi < c->n_models && rc == 0 && pg.cells_total > 0; mi++) {
        lrsa_tokenizer *tok = lrsa_tokenizer_load_dir(c->models[mi].path, e);
        if (!tok) {
            rc = lrsa_err_prefix(e, "model '%s': ", c->models[mi].name);
            break;
        }
        rc = lrsa_grid_check_synthetic(c, tok, &hay, e);
        lrsa_tokenizer_free(tok);
    }
    if (rc == 0) rc = lrsa_mkdirs(c->run_dir, e);
    if (rc == 0 && pg.cells_total > 0) rc = write_config_copy(c, argc, argv, e);
    for (int mi = 0; mi < c->n_models && rc == 0; mi++) {
        int need = 0;
        for (int i = 0; i < p.n; i++) need |= p.g[i].model == mi && p.g[i].n_pending > 0;
        if (!need) continue;
        lrsa_grid_model_ctx mc;
        if (model_open(&mc, &c->models[mi], e) != 0) {
            rc = -1;
            break;
        }
        for (int i = 0; i < p.n && rc == 0; i++) {
            lrsa_grid_group *g = &p.g[i];
            if (g->model != mi || g->n_pending == 0) continue;
            lrsa_dataset d;
            rc = lrsa_grid_task_open(c, &c->tasks[g->task], g->length, g->depth, c->models[mi].name,
                                     mc.tok, &hay, &d, e);
            if (rc != 0) break;
            rc = lrsa_grid_run_group(c, &mc, &d, g, results, &pg, e);
            lrsa_dataset_close(&d);
        }
        model_close(&mc);
    }
    if (hay.sents) lrsa_haystack_free(&hay);
    if (rc == 0)
        fprintf(stderr, "lrsa eval: grid done in %.1f s; results in %s (lrsa report %s)\n",
                lrsa_now() - pg.t0, results, c->run_dir);
    plan_free(&p);
    free(c);
    return rc;
}

int lrsa_grid_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(GRID_HELP, stdout);
            return 0;
        }
    lrsa_err e = {{0}};
    if (argc < 2 || run(argc, argv, &e) != 0) {
        if (argc < 2) lrsa_errorf(&e, "eval: give a grid config (CONFIG.yaml)");
        lrsa_err_print(&e);
        return 1;
    }
    return 0;
}
