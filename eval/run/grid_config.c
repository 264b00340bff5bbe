#include "eval/run/grid_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/fileio.h"
#include "base/yaml_doc.h"
#include "data/synthetic/tasks.h"
#include "eval/run/eval_dataset.h"
#include "eval/run/grid_data.h"

/* ---- small helpers ---- */

static int edit_distance(const char *a, const char *b) {
    int na = (int)strlen(a), nb = (int)strlen(b);
    if (na > 63 || nb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= na; i++) d[i][0] = i;
    for (int j = 0; j <= nb; j++) d[0][j] = j;
    for (int i = 1; i <= na; i++)
        for (int j = 1; j <= nb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[na][nb];
}

const char *lrsa_closest_word(const char *word, const char *choices, char *buf, int cap) {
    int best = 3;
    const char *p = choices;
    buf[0] = '\0';
    while (*p) {
        while (*p == ' ') p++;
        const char *q = p;
        while (*q && *q != ' ') q++;
        int n = (int)(q - p);
        if (n > 0 && n < cap && n < 64) {
            char w[64];
            memcpy(w, p, (size_t)n);
            w[n] = '\0';
            int d = edit_distance(word, w);
            size_t lcp = 0, wl = strlen(word);
            while (word[lcp] && word[lcp] == w[lcp]) lcp++;
            if (wl >= 3 && lcp == wl) d = 1;               /* a prefix ("budg") */
            if (lcp >= 4 && lcp + 1 >= wl && d > 2) d = 2; /* a typo at the end ("tokenz") */
            if (d < best) {
                best = d;
                memcpy(buf, w, (size_t)n + 1);
            }
        }
        p = q;
    }
    return buf[0] ? buf : NULL;
}

/* "FILE:LINE" of a node. */
static const char *at(char *buf, size_t cap, const char *file, const yaml_node_t *n) {
    snprintf(buf, cap, "%s:%d", file, lrsa_yaml_line(n));
    return buf;
}

static const char COMMAND_LINE[] = "command line"; /* the `file` of overrides */

/* The line recorded for a model, method or task given by node n (-1: an override). */
static int line_of(const char *file, const yaml_node_t *n) {
    return file == COMMAND_LINE ? -1 : lrsa_yaml_line(n);
}

const char *lrsa_grid_where(const lrsa_grid_config *c, int line, char *buf, size_t cap) {
    if (line > 0)
        snprintf(buf, cap, "%s:%d", c->path, line);
    else
        snprintf(buf, cap, "%s", line < 0 ? COMMAND_LINE : c->path);
    return buf;
}

static int unknown_key(const char *where, const char *key, const char *section, const char *valid,
                       lrsa_err *e) {
    char sug[64];
    const char *s = lrsa_closest_word(key, valid, sug, sizeof sug);
    return lrsa_errorf(e, "%s: unknown key '%s'%s%s%s%s (valid %s keys: %s; see docs/EVAL.md)",
                       where, key, s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "", "",
                       section, valid);
}

static const char *scalar(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int get_str(const yaml_node_t *n, const char *where, const char *key, char *out, size_t cap,
                   lrsa_err *e) {
    const char *v = scalar(n);
    if (!v)
        return lrsa_errorf(e, "%s: key '%s' must be a string, not a list or mapping", where, key);
    if (strlen(v) >= cap)
        return lrsa_errorf(e, "%s: key '%s': value too long (at most %zu characters)", where, key,
                           cap - 1);
    strcpy(out, v);
    return 0;
}

static int parse_i64_text(const char *v, const char *where, const char *key, int64_t *out,
                          lrsa_err *e) {
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno)
        return lrsa_errorf(e, "%s: key '%s' must be an integer, got '%s'", where, key,
                           v ? v : "a list or mapping");
    *out = x;
    return 0;
}

/* Numbers, with fractions like 1/8 allowed (keep fractions read better that way). */
static int parse_f64_text(const char *v, const char *where, const char *key, double *out,
                          lrsa_err *e) {
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (v && *v && end != v && *end == '/') {
        char *end2;
        double d = strtod(end + 1, &end2);
        if (end2 != end + 1 && !*end2 && d != 0) {
            x /= d;
            end = end2;
        }
    }
    if (!v || !*v || *end || errno || !isfinite(x))
        return lrsa_errorf(e, "%s: key '%s' must be a number, got '%s'", where, key,
                           v ? v : "a list or mapping");
    *out = x;
    return 0;
}

/* A scalar or a flow/block sequence of scalars -> up to cap strings (pointers into the doc). */
static int list_of(yaml_document_t *doc, yaml_node_t *n, const char *where, const char *key,
                   const char **out, int cap, int *count, lrsa_err *e) {
    *count = 0;
    if (n->type == YAML_SCALAR_NODE) {
        out[(*count)++] = scalar(n);
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return lrsa_errorf(e, "%s: key '%s' must be a list, e.g. [a, b]", where, key);
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *x = yaml_document_get_node(doc, *it);
        if (!scalar(x))
            return lrsa_errorf(e, "%s: key '%s': list items must be plain values", where, key);
        if (*count >= cap)
            return lrsa_errorf(e, "%s: key '%s': at most %d values", where, key, cap);
        out[(*count)++] = scalar(x);
    }
    return 0;
}

/* ---- press parameters (shared with `lrsa inspect`) ---- */

static const char PRESS_PARAMS[] =
    "sink window kernel pool selector alpha beta lag value_weight kvzip_chunk";

const char *lrsa_press_param_names(void) {
    return PRESS_PARAMS;
}

int lrsa_press_param_set(lrsa_press_spec *s, const char *key, const char *value, const char *where,
                         lrsa_err *e) {
    int64_t i = 0;
    double f = 0;
    if (!strcmp(key, "sink") || !strcmp(key, "window") || !strcmp(key, "kernel") ||
        !strcmp(key, "lag") || !strcmp(key, "kvzip_chunk")) {
        if (parse_i64_text(value, where, key, &i, e)) return -1;
        if (i < 0 || i > (1 << 30))
            return lrsa_errorf(e, "%s: key '%s' must be in [0, 2^30], got %lld", where, key,
                               (long long)i);
        if (!strcmp(key, "sink")) {
            s->sink = (int)i;
            s->lagkv.sink = (int)i;
        } else if (!strcmp(key, "window"))
            s->window = (int)i;
        else if (!strcmp(key, "kernel"))
            s->kernel = (int)i;
        else if (!strcmp(key, "lag"))
            s->lagkv.lag = (int)i;
        else
            s->kvzip_chunk = (int)i;
        return 0;
    }
    if (!strcmp(key, "alpha") || !strcmp(key, "beta") || !strcmp(key, "value_weight")) {
        if (parse_f64_text(value, where, key, &f, e)) return -1;
        if (!strcmp(key, "alpha"))
            s->alpha = (float)f;
        else if (!strcmp(key, "beta"))
            s->pyramid_beta = (float)f;
        else
            s->lagkv.value_weight = (float)f;
        return 0;
    }
    if (!strcmp(key, "pool")) {
        if (!value || (strcmp(value, "avg") && strcmp(value, "max")))
            return lrsa_errorf(e, "%s: key 'pool' must be avg or max, got '%s'", where,
                               value ? value : "?");
        s->pool = !strcmp(value, "max") ? LRSA_POOL_MAX : LRSA_POOL_AVG;
        return 0;
    }
    if (!strcmp(key, "selector")) {
        static const struct {
            const char *name;
            lrsa_press_selector sel;
        } sels[] = {{"uniform", LRSA_SELECT_UNIFORM},
                    {"adaptive", LRSA_SELECT_HEAD_ADAPTIVE},
                    {"head-adaptive", LRSA_SELECT_HEAD_ADAPTIVE},
                    {"layer", LRSA_SELECT_LAYER_BUDGET},
                    {"layer-budget", LRSA_SELECT_LAYER_BUDGET},
                    {"global", LRSA_SELECT_GLOBAL}};
        for (size_t i = 0; value && i < sizeof sels / sizeof sels[0]; i++)
            if (!strcmp(value, sels[i].name)) {
                s->selector = sels[i].sel;
                return 0;
            }
        return lrsa_errorf(e,
                           "%s: key 'selector' must be uniform, adaptive (AdaKV), layer or global, "
                           "got '%s'",
                           where, value ? value : "?");
    }
    return 1;
}

/* ---- sections ---- */

static void model_default_name(lrsa_grid_model *m) {
    const char *p = m->path + strlen(m->path);
    while (p > m->path && p[-1] == '/') p--;
    const char *end = p;
    while (p > m->path && p[-1] != '/') p--;
    size_t n = (size_t)(end - p);
    if (n >= sizeof m->name) n = sizeof m->name - 1;
    memcpy(m->name, p, n);
    m->name[n] = '\0';
}

static int parse_models(lrsa_grid_config *c, yaml_document_t *doc, yaml_node_t *n, const char *file,
                        lrsa_err *e) {
    char w[LRSA_GRID_PATH + 32];
    if (n->type != YAML_SEQUENCE_NODE)
        return lrsa_errorf(e, "%s: 'models' must be a list of {name, path} or paths",
                           at(w, sizeof w, file, n));
    lrsa_grid_config old = *c; /* for overrides that name existing models */
    c->n_models = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *x = yaml_document_get_node(doc, *it);
        at(w, sizeof w, file, x);
        if (c->n_models >= LRSA_GRID_MAX_MODELS)
            return lrsa_errorf(e, "%s: at most %d models", w, LRSA_GRID_MAX_MODELS);
        lrsa_grid_model *m = &c->models[c->n_models++];
        memset(m, 0, sizeof *m);
        m->line = line_of(file, x);
        if (x->type == YAML_SCALAR_NODE) {
            const char *v = scalar(x);
            int found = 0;
            for (int i = 0; i < old.n_models && !found; i++)
                if (!strcmp(old.models[i].name, v)) *m = old.models[i], found = 1;
            if (!found) {
                if (get_str(x, w, "models", m->path, sizeof m->path, e)) return -1;
                model_default_name(m);
            }
            continue;
        }
        if (x->type != YAML_MAPPING_NODE)
            return lrsa_errorf(e, "%s: a model is {name: ..., path: DIR} or a path", w);
        for (yaml_node_pair_t *p = x->data.mapping.pairs.start; p < x->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key),
                        *v = yaml_document_get_node(doc, p->value);
            const char *key = scalar(k);
            at(w, sizeof w, file, k);
            if (!key) return lrsa_errorf(e, "%s: keys must be plain names", w);
            if (!strcmp(key, "name")) {
                if (get_str(v, w, key, m->name, sizeof m->name, e)) return -1;
            } else if (!strcmp(key, "path")) {
                if (get_str(v, w, key, m->path, sizeof m->path, e)) return -1;
            } else
                return unknown_key(w, key, "model", "name path", e);
        }
        if (!m->path[0]) return lrsa_errorf(e, "%s: model needs 'path: DIR'", w);
        if (!m->name[0]) model_default_name(m);
    }
    return 0;
}

static int method_init(lrsa_grid_method *m, const char *name, const char *where, lrsa_err *e) {
    memset(m, 0, sizeof *m);
    lrsa_press_method pm;
    lrsa_err le;
    if (lrsa_press_method_parse(name, &pm, &le) != 0)
        return lrsa_errorf(e, "%s: %s", where, le.msg);
    lrsa_press_spec_defaults(&m->spec, pm);
    snprintf(m->label, sizeof m->label, "%s", name);
    return 0;
}

static int parse_methods(lrsa_grid_config *c, yaml_document_t *doc, yaml_node_t *n,
                         const char *file, lrsa_err *e) {
    char w[LRSA_GRID_PATH + 32];
    if (n->type != YAML_SEQUENCE_NODE)
        return lrsa_errorf(e, "%s: 'methods' must be a list of method names or {name: ..., params}",
                           at(w, sizeof w, file, n));
    lrsa_grid_config *old = lrsa_malloc(sizeof *old);
    *old = *c;
    c->n_methods = 0;
    int rc = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start;
         rc == 0 && it < n->data.sequence.items.top; it++) {
        yaml_node_t *x = yaml_document_get_node(doc, *it);
        at(w, sizeof w, file, x);
        if (c->n_methods >= LRSA_GRID_MAX_METHODS) {
            rc = lrsa_errorf(e, "%s: at most %d methods", w, LRSA_GRID_MAX_METHODS);
            break;
        }
        lrsa_grid_method *m = &c->methods[c->n_methods++];
        if (x->type == YAML_SCALAR_NODE) {
            const char *v = scalar(x);
            int found = 0;
            for (int i = 0; i < old->n_methods && !found; i++)
                if (!strcmp(old->methods[i].label, v)) *m = old->methods[i], found = 1;
            if (!found) rc = method_init(m, v, w, e);
            if (!found) m->line = line_of(file, x);
            continue;
        }
        if (x->type != YAML_MAPPING_NODE) {
            rc = lrsa_errorf(e, "%s: a method is a name or {name: ..., params}", w);
            break;
        }
        /* the name first: the defaults depend on it */
        const char *name = NULL;
        for (yaml_node_pair_t *p = x->data.mapping.pairs.start; p < x->data.mapping.pairs.top; p++)
            if (scalar(yaml_document_get_node(doc, p->key)) &&
                !strcmp(scalar(yaml_document_get_node(doc, p->key)), "name"))
                name = scalar(yaml_document_get_node(doc, p->value));
        if (!name) {
            rc = lrsa_errorf(e, "%s: method needs 'name:' (e.g. name: snapkv)", w);
            break;
        }
        if ((rc = method_init(m, name, w, e)) != 0) break;
        m->line = line_of(file, x);
        for (yaml_node_pair_t *p = x->data.mapping.pairs.start;
             rc == 0 && p < x->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key),
                        *v = yaml_document_get_node(doc, p->value);
            const char *key = scalar(k);
            at(w, sizeof w, file, k);
            if (!key) {
                rc = lrsa_errorf(e, "%s: keys must be plain names", w);
            } else if (!strcmp(key, "name")) {
            } else if (!strcmp(key, "label")) {
                rc = get_str(v, w, key, m->label, sizeof m->label, e);
            } else if (!strcmp(key, "compresskv_file")) {
                rc = get_str(v, w, key, m->compresskv_file, sizeof m->compresskv_file, e);
            } else {
                int st = lrsa_press_param_set(&m->spec, key, scalar(v), w, e);
                if (st == 1) {
                    char valid[256];
                    snprintf(valid, sizeof valid, "name label compresskv_file %s", PRESS_PARAMS);
                    rc = unknown_key(w, key, "method", valid, e);
                } else
                    rc = st;
            }
        }
    }
    free(old);
    return rc;
}

static int add_budgets(lrsa_grid_config *c, yaml_document_t *doc, yaml_node_t *n, const char *where,
                       int tokens, lrsa_err *e) {
    const char *v[LRSA_GRID_MAX_BUDGETS];
    int nv = 0;
    const char *key = tokens ? "budgets.tokens_per_layer" : "budgets.keep";
    if (list_of(doc, n, where, key, v, LRSA_GRID_MAX_BUDGETS, &nv, e)) return -1;
    for (int i = 0; i < nv; i++) {
        if (c->n_budgets >= LRSA_GRID_MAX_BUDGETS)
            return lrsa_errorf(e, "%s: at most %d budgets", where, LRSA_GRID_MAX_BUDGETS);
        lrsa_grid_budget *b = &c->budgets[c->n_budgets++];
        memset(b, 0, sizeof *b);
        if (tokens) {
            if (parse_i64_text(v[i], where, key, &b->tokens, e)) return -1;
            if (b->tokens <= 0)
                return lrsa_errorf(e, "%s: bad budget %s: tokens_per_layer must be > 0", where,
                                   v[i]);
        } else {
            if (parse_f64_text(v[i], where, key, &b->keep, e)) return -1;
            if (!(b->keep > 0 && b->keep <= 1))
                return lrsa_errorf(e,
                                   "%s: bad budget %s: a keep fraction must be in (0, 1] "
                                   "(e.g. 0.25 or 1/4; tokens go under tokens_per_layer)",
                                   where, v[i]);
        }
    }
    return 0;
}

static int parse_budgets(lrsa_grid_config *c, yaml_document_t *doc, yaml_node_t *n,
                         const char *file, const char *only, lrsa_err *e) {
    char w[LRSA_GRID_PATH + 32];
    at(w, sizeof w, file, n);
    if (only) { /* override of budgets.keep or budgets.tokens_per_layer: replace that kind */
        int tokens = !strcmp(only, "tokens_per_layer");
        int k = 0;
        for (int i = 0; i < c->n_budgets; i++)
            if ((c->budgets[i].tokens > 0) != tokens) c->budgets[k++] = c->budgets[i];
        c->n_budgets = k;
        return add_budgets(c, doc, n, w, tokens, e);
    }
    c->n_budgets = 0;
    if (n->type != YAML_MAPPING_NODE) return add_budgets(c, doc, n, w, 0, e); /* keep list */
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key),
                    *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar(k);
        at(w, sizeof w, file, k);
        if (key && !strcmp(key, "keep")) {
            if (add_budgets(c, doc, v, w, 0, e)) return -1;
        } else if (key && !strcmp(key, "tokens_per_layer")) {
            if (add_budgets(c, doc, v, w, 1, e)) return -1;
        } else
            return unknown_key(w, key ? key : "?", "budgets", "keep tokens_per_layer", e);
    }
    return 0;
}

static const char TASK_KEYS[] = "name synthetic file lengths depths n seed answer_sep max_new";

/* One task key (also used by `tasks.KEY=value` overrides on every task). */
static int task_key(lrsa_grid_task *t, yaml_document_t *doc, const char *key, yaml_node_t *v,
                    const char *w, lrsa_err *e) {
    if (!strcmp(key, "name")) return get_str(v, w, key, t->name, sizeof t->name, e);
    if (!strcmp(key, "synthetic")) {
        if (get_str(v, w, key, t->synthetic, sizeof t->synthetic, e)) return -1;
        if (!lrsa_synth_task_known(t->synthetic)) {
            char sug[64];
            const char *s = lrsa_closest_word(t->synthetic, lrsa_synth_task_names(), sug, 64);
            return lrsa_errorf(e, "%s: unknown synthetic task '%s'%s%s%s (tasks: %s)", w,
                               t->synthetic, s ? " (did you mean '" : "", s ? s : "",
                               s ? "'?)" : "", lrsa_synth_task_names());
        }
        return 0;
    }
    if (!strcmp(key, "file")) return get_str(v, w, key, t->file, sizeof t->file, e);
    if (!strcmp(key, "answer_sep"))
        return get_str(v, w, key, t->answer_sep, sizeof t->answer_sep, e);
    if (!strcmp(key, "lengths") || !strcmp(key, "depths")) {
        const char *vals[LRSA_GRID_MAX_POINTS];
        int nv = 0;
        if (list_of(doc, v, w, key, vals, LRSA_GRID_MAX_POINTS, &nv, e)) return -1;
        int is_len = key[0] == 'l';
        for (int i = 0; i < nv; i++) {
            if (is_len) {
                if (parse_i64_text(vals[i], w, key, &t->lengths[i], e)) return -1;
                if (t->lengths[i] < 64)
                    return lrsa_errorf(e, "%s: length %lld is too short (at least 64 tokens)", w,
                                       (long long)t->lengths[i]);
            } else {
                if (parse_f64_text(vals[i], w, key, &t->depths[i], e)) return -1;
                if (!(t->depths[i] >= 0 && t->depths[i] <= 1))
                    return lrsa_errorf(e, "%s: depth %s must be in [0, 1]", w, vals[i]);
            }
        }
        if (is_len)
            t->n_lengths = nv;
        else
            t->n_depths = nv;
        return 0;
    }
    if (!strcmp(key, "max_new")) {
        int64_t x;
        if (parse_i64_text(scalar(v), w, key, &x, e)) return -1;
        if (x < 1 || x > 4096) return lrsa_errorf(e, "%s: max_new must be in [1, 4096]", w);
        t->max_new = (int)x;
        return 0;
    }
    if (!strcmp(key, "n") || !strcmp(key, "seed")) {
        int64_t x;
        if (parse_i64_text(scalar(v), w, key, &x, e)) return -1;
        if (x < 0) return lrsa_errorf(e, "%s: key '%s' must be >= 0", w, key);
        if (key[0] == 'n')
            t->n = x;
        else
            t->seed = (uint64_t)x;
        return 0;
    }
    return unknown_key(w, key, "task", TASK_KEYS, e);
}

static int parse_tasks(lrsa_grid_config *c, yaml_document_t *doc, yaml_node_t *n, const char *file,
                       lrsa_err *e) {
    char w[LRSA_GRID_PATH + 32];
    if (n->type != YAML_SEQUENCE_NODE)
        return lrsa_errorf(e, "%s: 'tasks' must be a list of {synthetic: ...} or {file: ...}",
                           at(w, sizeof w, file, n));
    c->n_tasks = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *x = yaml_document_get_node(doc, *it);
        at(w, sizeof w, file, x);
        if (c->n_tasks >= LRSA_GRID_MAX_TASKS)
            return lrsa_errorf(e, "%s: at most %d tasks", w, LRSA_GRID_MAX_TASKS);
        lrsa_grid_task *t = &c->tasks[c->n_tasks++];
        memset(t, 0, sizeof *t);
        t->n = 4;
        t->line = line_of(file, x);
        if (x->type != YAML_MAPPING_NODE)
            return lrsa_errorf(
                e, "%s: a task is a mapping, e.g. {synthetic: passkey, lengths: [1024]}", w);
        for (yaml_node_pair_t *p = x->data.mapping.pairs.start; p < x->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key),
                        *v = yaml_document_get_node(doc, p->value);
            at(w, sizeof w, file, k);
            if (!scalar(k)) return lrsa_errorf(e, "%s: keys must be plain names", w);
            if (task_key(t, doc, scalar(k), v, w, e)) return -1;
        }
        at(w, sizeof w, file, x);
        if (!!t->synthetic[0] == !!t->file[0])
            return lrsa_errorf(
                e, "%s: a task needs exactly one of 'synthetic: TASK' or 'file: PATH'", w);
        if (t->synthetic[0]) {
            if (t->n_lengths == 0)
                return lrsa_errorf(e, "%s: synthetic task '%s' needs 'lengths: [TOKENS, ...]'", w,
                                   t->synthetic);
            if (t->n_depths == 0) t->depths[t->n_depths++] = 0.5;
            if (!t->name[0]) strcpy(t->name, t->synthetic); /* 32 < 64 bytes */
            /* RULER scores multi-part answers part by part */
            if (!t->answer_sep[0]) strcpy(t->answer_sep, ", ");
        } else {
            if (t->n_lengths || t->n_depths)
                return lrsa_errorf(e,
                                   "%s: 'lengths'/'depths' apply to synthetic tasks only; a "
                                   "file task uses its samples as they are",
                                   w);
            if (!t->name[0]) {
                const char *b = strrchr(t->file, '/');
                b = b ? b + 1 : t->file;
                snprintf(t->name, sizeof t->name, "%.*s", (int)strcspn(b, "."), b);
            }
        }
        for (int i = 0; i < c->n_tasks - 1; i++)
            if (!strcmp(c->tasks[i].name, t->name))
                return lrsa_errorf(e, "%s: two tasks are named '%s'; give one a 'name:'", w,
                                   t->name);
    }
    return 0;
}

static int parse_enum_list(yaml_document_t *doc, yaml_node_t *n, const char *w, const char *key,
                           const char *a, const char *b, int *out, int *count, lrsa_err *e) {
    const char *v[2];
    int nv = 0;
    if (list_of(doc, n, w, key, v, 2, &nv, e)) return -1;
    for (int i = 0; i < nv; i++) {
        if (!strcmp(v[i], a))
            out[i] = 0;
        else if (!strcmp(v[i], b))
            out[i] = 1;
        else
            return lrsa_errorf(e, "%s: key '%s': '%s' is not %s or %s", w, key, v[i], a, b);
    }
    if (nv == 2 && out[0] == out[1]) nv = 1;
    *count = nv;
    return 0;
}

static const char TOP_KEYS[] =
    "run_dir haystack models methods budgets tasks protocols prefill max_new batch device";

/* One top-level key (file or override). sub: the part after "key." for overrides, or NULL. */
static int top_key(lrsa_grid_config *c, yaml_document_t *doc, const char *key, const char *sub,
                   yaml_node_t *v, const char *file, const char *w, lrsa_err *e) {
    if (sub && strcmp(key, "budgets") && strcmp(key, "tasks"))
        return lrsa_errorf(e, "%s: '%s.%s': only budgets.* and tasks.* take a sub-key", w, key,
                           sub);
    if (!strcmp(key, "run_dir")) return get_str(v, w, key, c->run_dir, sizeof c->run_dir, e);
    if (!strcmp(key, "haystack")) {
        c->haystack_line = line_of(file, v);
        return get_str(v, w, key, c->haystack, sizeof c->haystack, e);
    }
    if (!strcmp(key, "models")) return parse_models(c, doc, v, file, e);
    if (!strcmp(key, "methods")) return parse_methods(c, doc, v, file, e);
    if (!strcmp(key, "budgets")) {
        if (sub && strcmp(sub, "keep") && strcmp(sub, "tokens_per_layer"))
            return unknown_key(w, sub, "budgets", "keep tokens_per_layer", e);
        return parse_budgets(c, doc, v, file, sub, e);
    }
    if (!strcmp(key, "tasks")) {
        if (!sub) return parse_tasks(c, doc, v, file, e);
        if (!strcmp(sub, "name") || !strcmp(sub, "file") || !strcmp(sub, "synthetic"))
            return lrsa_errorf(e, "%s: tasks.%s cannot be set on every task at once", w, sub);
        for (int i = 0; i < c->n_tasks; i++)
            if (task_key(&c->tasks[i], doc, sub, v, w, e)) return -1;
        return 0;
    }
    if (!strcmp(key, "protocols"))
        return parse_enum_list(doc, v, w, key, "query-aware", "query-agnostic", (int *)c->protocols,
                               &c->n_protocols, e);
    if (!strcmp(key, "prefill"))
        return parse_enum_list(doc, v, w, key, "chunked", "oneshot", (int *)c->prefill,
                               &c->n_prefill, e);
    if (!strcmp(key, "max_new")) {
        int64_t x;
        if (parse_i64_text(scalar(v), w, key, &x, e)) return -1;
        if (x < 1 || x > 4096) return lrsa_errorf(e, "%s: max_new must be in [1, 4096]", w);
        c->max_new = (int)x;
        return 0;
    }
    if (!strcmp(key, "batch")) {
        int64_t x;
        if (parse_i64_text(scalar(v), w, key, &x, e)) return -1;
        if (x < 1 || x > LRSA_EVAL_BATCH_MAX)
            return lrsa_errorf(e, "%s: batch must be in [1, %d] (samples per forward)", w,
                               LRSA_EVAL_BATCH_MAX);
        c->batch = (int)x;
        return 0;
    }
    if (!strcmp(key, "device")) {
        const char *d = scalar(v);
        if (!d || (strcmp(d, "cpu") && strcmp(d, "cuda")))
            return lrsa_errorf(e, "%s: device must be cpu or cuda", w);
        c->device_cuda = !strcmp(d, "cuda");
        c->device_line = line_of(file, v);
        return 0;
    }
    return unknown_key(w, key, "top-level", TOP_KEYS, e);
}

static void defaults(lrsa_grid_config *c) {
    memset(c, 0, sizeof *c);
    c->protocols[0] = LRSA_PROTOCOL_AGNOSTIC;
    c->n_protocols = 1;
    c->prefill[0] = LRSA_PREFILL_CHUNKED;
    c->n_prefill = 1;
    c->max_new = 0; /* per sample: its reference answer's tokens + 16 (lrsa_eval_max_new) */
    c->batch = LRSA_EVAL_BATCH;
    c->budgets[0].keep = 1.0;
    c->n_budgets = 1;
}

int lrsa_grid_config_parse(lrsa_grid_config *c, const char *text, size_t n, const char *where,
                           lrsa_err *e) {
    defaults(c);
    snprintf(c->path, sizeof c->path, "%s", where);
    yaml_document_t doc;
    if (lrsa_yaml_load(&doc, text, n, where, e)) return -1;
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = lrsa_errorf(e,
                         "%s: the grid config must be a mapping (run_dir:, models:, methods:, "
                         "budgets:, tasks:; see configs/eval/)",
                         where);
    } else {
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
             rc == 0 && p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key),
                        *v = yaml_document_get_node(&doc, p->value);
            char w[LRSA_GRID_PATH + 32];
            at(w, sizeof w, where, k);
            if (!scalar(k))
                rc = lrsa_errorf(e, "%s: keys must be plain names", w);
            else
                rc = top_key(c, &doc, scalar(k), NULL, v, where, w, e);
        }
    }
    yaml_document_delete(&doc);
    return rc;
}

int lrsa_grid_config_load(lrsa_grid_config *c, const char *path, lrsa_err *e) {
    size_t n;
    char *text = lrsa_read_file(path, &n, e);
    if (!text) return lrsa_err_prefix(e, "reading the grid config: ");
    int rc = lrsa_grid_config_parse(c, text, n, path, e);
    free(text);
    return rc;
}

int lrsa_grid_config_override(lrsa_grid_config *c, const char *assignment, lrsa_err *e) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return lrsa_errorf(e,
                           "command line: '%s' is not an override; write key=value, e.g. "
                           "budgets.keep=[1,0.5] or tasks.n=2",
                           assignment);
    char key[128];
    size_t kn = (size_t)(eq - assignment);
    if (kn >= sizeof key) return lrsa_errorf(e, "command line: key too long in '%s'", assignment);
    memcpy(key, assignment, kn);
    key[kn] = '\0';
    char *dot = strchr(key, '.');
    if (dot) *dot = '\0';
    yaml_document_t doc;
    const char *value = eq + 1;
    if (lrsa_yaml_load(&doc, value, strlen(value), COMMAND_LINE, e)) return -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc;
    if (!root)
        rc = lrsa_errorf(e, "command line: '%s' has no value", assignment);
    else
        rc = top_key(c, &doc, key, dot ? dot + 1 : NULL, root, COMMAND_LINE, COMMAND_LINE, e);
    yaml_document_delete(&doc);
    return rc;
}
