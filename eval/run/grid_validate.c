/* The evaluation grid's config, checked before any model is read (lrsa_grid_config_validate),
 * and the names and press specs the grid derives from it (eval/run/grid_config.h; the YAML
 * parsing is eval/run/grid_config.c). */
#include <stdio.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/run/grid_config.h"
#include "eval/run/grid_data.h"

int lrsa_grid_config_validate(const lrsa_grid_config *c, lrsa_err *e) {
    const char *f = c->path;
    if (!c->run_dir[0])
        return lrsa_errorf(e, "%s: required key run_dir is missing (where results.jsonl goes)", f);
    if (c->n_models == 0) return lrsa_errorf(e, "%s: required key models is missing", f);
    if (c->n_methods == 0) return lrsa_errorf(e, "%s: required key methods is missing", f);
    if (c->n_tasks == 0) return lrsa_errorf(e, "%s: required key tasks is missing", f);
    if (c->n_budgets == 0) return lrsa_errorf(e, "%s: budgets is empty", f);
    char p[LRSA_GRID_PATH + 32], w[LRSA_GRID_PATH + 32];
    for (int i = 0; i < c->n_models; i++) {
        f = lrsa_grid_where(c, c->models[i].line, w, sizeof w);
        lrsa_path_join(p, sizeof p, c->models[i].path, "config.json");
        if (!lrsa_file_exists(p))
            return lrsa_errorf(
                e,
                "%s: model '%s': %s has no config.json (a Hugging Face model "
                "directory: tools/fetch-model.sh makes the default one, `lrsa export` a tuned one)",
                f, c->models[i].name, c->models[i].path);
        lrsa_path_join(p, sizeof p, c->models[i].path, "tokenizer.json");
        if (!lrsa_file_exists(p))
            return lrsa_errorf(e,
                               "%s: model '%s': %s has no tokenizer.json (needed for the chat "
                               "template and answers)",
                               f, c->models[i].name, c->models[i].path);
        for (int j = 0; j < i; j++)
            if (!strcmp(c->models[i].name, c->models[j].name))
                return lrsa_errorf(e, "%s: two models are named '%s'; give one a 'name:'", f,
                                   c->models[i].name);
    }
    for (int i = 0; i < c->n_methods; i++) {
        const lrsa_grid_method *m = &c->methods[i];
        f = lrsa_grid_where(c, m->line, w, sizeof w);
        for (int j = 0; j < i; j++)
            if (!strcmp(m->label, c->methods[j].label))
                return lrsa_errorf(e, "%s: two methods are labelled '%s'; give one a 'label:'", f,
                                   m->label);
        if (m->spec.method == LRSA_PRESS_COMPRESSKV) {
            if (!m->compresskv_file[0])
                return lrsa_errorf(e,
                                   "%s: method '%s' (compresskv) needs compresskv_file: FILE "
                                   "(written by `lrsa compresskv`)",
                                   f, m->label);
            if (!lrsa_file_exists(m->compresskv_file))
                return lrsa_errorf(e, "%s: method '%s': compresskv_file %s does not exist", f,
                                   m->label, m->compresskv_file);
        }
        if (c->device_cuda && m->spec.method != LRSA_PRESS_NONE &&
            m->spec.method != LRSA_PRESS_LAGKV) {
            char dw[LRSA_GRID_PATH + 32];
            return lrsa_errorf(e,
                               "%s: method '%s' (%s) runs on the CPU only, and %s sets device: "
                               "cuda (the GPU cache runs none and lagkv); set device: cpu or "
                               "drop the method",
                               f, m->label, lrsa_press_method_name(m->spec.method),
                               lrsa_grid_where(c, c->device_line, dw, sizeof dw));
        }
        for (int b = 0; b < c->n_budgets; b++) {
            if (m->spec.method == LRSA_PRESS_LAGKV && c->budgets[b].tokens > 0)
                return lrsa_errorf(e,
                                   "%s: method '%s' (lagkv) takes keep fractions only (its "
                                   "budget is the kept share of each partition); drop "
                                   "budgets.tokens_per_layer or use lagkv-kvpress",
                                   f, m->label);
            lrsa_press_spec s;
            lrsa_grid_spec_at(m, &c->budgets[b], c->prefill[0], &s);
            lrsa_err le;
            char bn[64];
            if (lrsa_press_spec_check(&s, &le) != 0)
                return lrsa_errorf(e, "%s: method '%s' at budget %s: %s", f, m->label,
                                   lrsa_grid_budget_name(&c->budgets[b], bn, sizeof bn), le.msg);
        }
    }
    for (int i = 0; i < c->n_tasks; i++) {
        const lrsa_grid_task *t = &c->tasks[i];
        f = lrsa_grid_where(c, t->line, w, sizeof w);
        if (t->file[0] && !lrsa_file_exists(t->file))
            return lrsa_errorf(e, "%s: task '%s': data file %s does not exist", f, t->name,
                               t->file);
        if (t->file[0]) {
            size_t n = strlen(t->file);
            int ok = (n > 6 && !strcmp(t->file + n - 6, ".jsonl")) ||
                     (n > 3 && !strcmp(t->file + n - 3, ".h5")) ||
                     (n > 5 && !strcmp(t->file + n - 5, ".hdf5"));
            if (!ok)
                return lrsa_errorf(e,
                                   "%s: task '%s': %s must be a .jsonl QA file or an .h5 "
                                   "dataset from `lrsa prepare`",
                                   f, t->name, t->file);
            if (lrsa_grid_check_data_file(t->file, e) != 0)
                return lrsa_err_prefix(e, "%s: task '%s': ", f, t->name);
        }
        if (t->synthetic[0] && t->n < 1)
            return lrsa_errorf(e, "%s: task '%s': n must be >= 1 samples per cell", f, t->name);
    }
    if (c->haystack[0] && !lrsa_is_dir(c->haystack))
        return lrsa_errorf(e, "%s: haystack %s is not a directory",
                           lrsa_grid_where(c, c->haystack_line, w, sizeof w), c->haystack);
    return 0;
}

void lrsa_grid_spec_at(const lrsa_grid_method *m, const lrsa_grid_budget *b,
                       lrsa_prefill_mode prefill, lrsa_press_spec *s) {
    *s = m->spec;
    s->prefill = prefill;
    s->keep = b->tokens > 0 ? 0.0 : b->keep;
    s->tokens_per_layer = b->tokens > 0 ? b->tokens : 0;
    /* LagKV's budget is the fraction of each partition it keeps */
    if (s->method == LRSA_PRESS_LAGKV && b->tokens == 0) s->lagkv.keep = (float)b->keep;
    if (m->compresskv_file[0]) s->compresskv_file = m->compresskv_file;
}

const char *lrsa_grid_budget_name(const lrsa_grid_budget *b, char *buf, int cap) {
    if (b->tokens > 0)
        snprintf(buf, (size_t)cap, "tokens=%lld", (long long)b->tokens);
    else
        snprintf(buf, (size_t)cap, "keep=%.6g", b->keep);
    return buf;
}

const char *lrsa_grid_protocol_name(lrsa_press_protocol p) {
    return p == LRSA_PROTOCOL_AWARE ? "query-aware" : "query-agnostic";
}
