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
#include "eval/run/grid_results.h"
#include "eval/run/metrics.h"
#include "eval/run/prefill.h"
#include "eval/press/press.h"
#include "eval/press/press_kvzip.h"
#include "eval/run/sample_records.h"

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
typedef struct model_ctx {
    lrsa_model m;
    lrsa_tokenizer *tok;
    int32_t stop[16];
    int n_stop;
    lrsa_ids kvzip_prompt;
    int V;
} model_ctx;

static int model_open(model_ctx *mc, const lrsa_grid_model *gm, lrsa_err *e) {
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

static void model_close(model_ctx *mc) {
    lrsa_ids_free(&mc->kvzip_prompt);
    lrsa_tokenizer_free(mc->tok);
    lrsa_model_free(&mc->m);
}

/* ---- one sample ---- */
typedef struct sample_view {
    const int32_t *ids;
    const uint8_t *mask;
    int64_t n, prompt_len, qs; /* qs: tokens prefilled under the press */
    const char *answer;
    int64_t index;
    const char *task, *sep; /* the sample's own task; the separator of its answer's parts */
    int max_new;
} sample_view;

typedef struct answer_out {
    double nll_sum;
    int64_t nll_tok;
    char *text; /* generated answer (malloc'd) */
    size_t peak_bytes;
    double seconds;
} answer_out;

static int is_stop(const model_ctx *mc, int32_t id) {
    for (int i = 0; i < mc->n_stop; i++)
        if (mc->stop[i] == id) return 1;
    return 0;
}

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

/* Greedy decoding from `logits` (of the last fed token) on c; logits is overwritten. */
static char *greedy(const model_ctx *mc, lrsa_kv_cache *c, float *logits, int max_new,
                    size_t *peak) {
    int32_t *out = lrsa_malloc((size_t)max_new * sizeof *out);
    int n = 0;
    while (n < max_new) {
        int32_t id = lrsa_argmax(logits, mc->V);
        if (is_stop(mc, id)) break;
        out[n++] = id;
        if (n == max_new) break;
        lrsa_cached_forward(&mc->m, c, &id, 1, logits, 0);
    }
    *peak = max_sz(*peak, lrsa_kv_cache_live_bytes(c));
    char *text = lrsa_tokenizer_decode(mc->tok, out, n, 1);
    free(out);
    return text;
}

/* Query-agnostic: the cache holds the compressed context (frozen). Feeds question + answer with
 * teacher forcing for the NLL, trims back to the context, then generates from the question. */
static void answer_agnostic(const model_ctx *mc, lrsa_kv_cache *c, const sample_view *s,
                            int max_new, answer_out *o) {
    double t0 = lrsa_now();
    const int V = mc->V;
    int64_t base = c->seen, nt = s->prompt_len - s->qs, na = s->n - s->prompt_len;
    float *logits = lrsa_malloc((size_t)(nt + na) * V * sizeof(float));
    lrsa_cached_forward(&mc->m, c, s->ids + s->qs, nt + na, logits, 1);
    o->nll_sum = 0;
    o->nll_tok = 0;
    for (int64_t k = 0; k < na; k++) {
        int64_t p = s->prompt_len + k;
        if (!s->mask[p]) continue;
        o->nll_sum += lrsa_token_nll(logits + (nt + k - 1) * V, V, s->ids[p]);
        o->nll_tok++;
    }
    o->peak_bytes = lrsa_kv_cache_live_bytes(c);
    lrsa_kv_cache_truncate(c, base);
    lrsa_cached_forward(&mc->m, c, s->ids + s->qs, nt, logits, 0);
    o->text = greedy(mc, c, logits, max_new, &o->peak_bytes);
    lrsa_kv_cache_truncate(c, base);
    free(logits);
    o->seconds = lrsa_now() - t0;
}

/* Query-aware: the whole prompt was prefilled (and compressed); logits0 = the prefill's logits of
 * its last token. The answer is fed token by token (LagKV keeps compressing). */
static void answer_aware(const model_ctx *mc, lrsa_kv_cache *c, const sample_view *s,
                         const float *logits0, int max_new, answer_out *o) {
    double t0 = lrsa_now();
    const int V = mc->V;
    float *logits = lrsa_malloc((size_t)V * sizeof(float));
    lrsa_kv_cache t;
    lrsa_kv_cache_clone(&t, c);
    memcpy(logits, logits0, (size_t)V * sizeof(float));
    o->nll_sum = 0;
    o->nll_tok = 0;
    for (int64_t p = s->prompt_len; p < s->n; p++) {
        if (p > s->prompt_len) lrsa_cached_forward(&mc->m, &t, &s->ids[p - 1], 1, logits, 0);
        if (!s->mask[p]) continue;
        o->nll_sum += lrsa_token_nll(logits, V, s->ids[p]);
        o->nll_tok++;
    }
    o->peak_bytes = lrsa_kv_cache_live_bytes(&t);
    lrsa_kv_cache_free(&t);
    memcpy(logits, logits0, (size_t)V * sizeof(float));
    o->text = greedy(mc, c, logits, max_new, &o->peak_bytes);
    free(logits);
    o->seconds = lrsa_now() - t0;
}

/* ---- cells ---- */
typedef struct cell {
    int method, budget;
    char key[1024];
    char spec[512];
    int pending;
    /* sums over samples */
    int n;
    lrsa_answer_scores sc;
    double nll_sum;
    int64_t nll_tok;
    double kept, kept_min, kept_max, ctx_tokens;
    double cache_bytes, full_bytes; /* peak live bytes; full (uncompressed) bytes */
    double prefill_s, score_s, apply_s, answer_s, cell_s;
    char example_pred[160], example_ref[160];
    lrsa_sample_records recs; /* one per sample, for the row's "samples" */
} cell;

typedef struct group {
    int model, task;
    int64_t length;
    double depth;
    lrsa_press_protocol proto;
    lrsa_prefill_mode prefill;
    cell *cells; /* [methods * budgets] */
    int n_cells, n_pending;
} group;

static void describe_group(const lrsa_grid_config *c, const group *g, char *buf, size_t cap) {
    const lrsa_grid_task *t = &c->tasks[g->task];
    if (t->synthetic[0])
        snprintf(buf, cap, "%s %s L=%lld d=%g %s %s", c->models[g->model].name, t->name,
                 (long long)g->length, g->depth, lrsa_grid_protocol_name(g->proto),
                 lrsa_prefill_mode_name(g->prefill));
    else
        snprintf(buf, cap, "%s %s %s %s", c->models[g->model].name, t->name,
                 lrsa_grid_protocol_name(g->proto), lrsa_prefill_mode_name(g->prefill));
}

static void cell_key(const lrsa_grid_config *c, const group *g, cell *x) {
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

static void cell_add(cell *x, const answer_out *o, const sample_view *s, const double *kf, int nkf,
                     double full_bytes, double prefill_s, double score_s, double apply_s,
                     double shared_s) {
    double mean = 0, mn = INFINITY, mx = -INFINITY;
    for (int i = 0; i < nkf; i++) {
        mean += kf[i];
        mn = fmin(mn, kf[i]);
        mx = fmax(mx, kf[i]);
    }
    mean /= nkf;
    if (x->n == 0) {
        x->kept_min = mn;
        x->kept_max = mx;
        snprintf(x->example_pred, sizeof x->example_pred, "%s", o->text);
        snprintf(x->example_ref, sizeof x->example_ref, "%s", s->answer);
    }
    x->kept_min = fmin(x->kept_min, mn);
    x->kept_max = fmax(x->kept_max, mx);
    x->n++;
    x->kept += mean;
    x->ctx_tokens += (double)s->qs;
    x->nll_sum += o->nll_sum;
    x->nll_tok += o->nll_tok;
    x->cache_bytes = fmax(x->cache_bytes, (double)o->peak_bytes);
    x->full_bytes = fmax(x->full_bytes, full_bytes);
    x->prefill_s += prefill_s;
    x->score_s += score_s;
    x->apply_s += apply_s;
    x->answer_s += o->seconds;
    x->cell_s += shared_s + apply_s + o->seconds;
    lrsa_sample_record *rec = lrsa_sample_records_push(&x->recs);
    rec->index = s->index;
    rec->task = s->task;
    rec->has_nll = 1;
    rec->answer_tokens = o->nll_tok;
    rec->nll_sum = o->nll_sum;
    rec->kept_fraction = mean;
    rec->max_new = s->max_new;
}

/* The answer metrics of the sample cell_add recorded last (its separator splits multi-part
 * references). */
static void cell_score(cell *x, const char *pred, const sample_view *s) {
    lrsa_sample_record *rec = &x->recs.v[x->recs.n - 1];
    lrsa_sample_record_answer(rec, pred, s->answer, s->sep);
    const lrsa_answer_scores a = rec->score;
    x->sc.match_all += a.match_all;
    x->sc.match_part += a.match_part;
    x->sc.exact += a.exact;
    x->sc.f1 += a.f1;
}

static cJSON *cell_row(const lrsa_grid_config *c, const group *g, const cell *x) {
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
typedef struct progress {
    double t0, units_done, units_total;
    int cells_done, cells_total, quiet;
} progress;

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

static void progress_line(const progress *p, const char *what) {
    double el = lrsa_now() - p->t0;
    double eta = p->units_done > 0 ? el / p->units_done * (p->units_total - p->units_done) : NAN;
    char es[32], ts[32];
    fmt_eta(eta, es, sizeof es);
    fmt_eta(el, ts, sizeof ts);
    fprintf(stderr, "[cell %d/%d, %s elapsed, ETA %s] %s\n", p->cells_done, p->cells_total, ts, es,
            what);
}

/* ---- one group: every pending (method, budget) cell of one task point/protocol/prefill ---- */
static int run_group(const lrsa_grid_config *c, model_ctx *mc, const lrsa_dataset *d, group *g,
                     const char *results, progress *pg, lrsa_err *e) {
    const lrsa_grid_task *t = &c->tasks[g->task];
    const int NB = c->n_budgets, H = mc->m.cfg.num_hidden_layers * mc->m.cfg.num_key_value_heads;
    int64_t ns = lrsa_dataset_size(d);
    if (t->n > 0 && t->n < ns) ns = t->n;
    double *kf = lrsa_malloc((size_t)H * sizeof(double)),
           *ones = lrsa_malloc((size_t)H * sizeof(double));
    for (int i = 0; i < H; i++) ones[i] = 1.0;
    float *logits0 = lrsa_malloc((size_t)mc->V * sizeof(float));
    char gdesc[512], line[1024];
    describe_group(c, g, gdesc, sizeof gdesc);
    int rc = 0;
    for (int64_t si = 0; si < ns && rc == 0; si++) {
        sample_view s = {lrsa_dataset_ids(d, si),
                         lrsa_dataset_mask(d, si),
                         lrsa_dataset_len(d, si),
                         lrsa_dataset_prompt_len(d, si),
                         0,
                         lrsa_dataset_answer(d, si),
                         si,
                         lrsa_dataset_sample_task(d, si),
                         NULL,
                         lrsa_eval_max_new(t->max_new > 0 ? t->max_new : c->max_new, d, si)};
        /* a file of synthetic samples is scored part by part like the synthetic tasks */
        s.sep = t->answer_sep[0] ? t->answer_sep : lrsa_task_answer_sep(s.task);
        const int max_new = s.max_new;
        if (s.prompt_len < 1 || s.prompt_len >= s.n) {
            rc = lrsa_errorf(e, "%s: sample %lld has no answer after its prompt", d->path,
                             (long long)si);
            break;
        }
        if (g->proto == LRSA_PROTOCOL_AGNOSTIC) {
            s.qs = lrsa_press_question_start(mc->tok, s.ids, s.prompt_len);
            if (s.qs < 1) {
                rc = lrsa_errorf(e,
                                 "%s: sample %lld: no context/question boundary (a \"\\n\\n\" "
                                 "before the question in the last user turn) for the "
                                 "query-agnostic protocol; use protocols: [query-aware] for this "
                                 "task",
                                 d->path, (long long)si);
                break;
            }
        } else {
            s.qs = s.prompt_len;
        }
        /* The answer on the uncompressed cache, reused by any cell that keeps every row. */
        answer_out full = {0};
        int have_full = 0;
        double full_prefill_s = 0, full_bytes_s = 0;
        for (int mi = 0; mi < c->n_methods && rc == 0; mi++) {
            int any = 0, first_b = -1;
            for (int bi = 0; bi < NB; bi++)
                if (g->cells[mi * NB + bi].pending) {
                    any = 1;
                    if (first_b < 0) first_b = bi;
                }
            if (!any) continue;
            double t_method = lrsa_now();
            const lrsa_grid_method *gm = &c->methods[mi];
            lrsa_press_spec s0;
            lrsa_grid_spec_at(gm, &c->budgets[first_b], g->prefill, &s0);
            s0.kvzip_prompt_ids = mc->kvzip_prompt.v;
            s0.n_kvzip_prompt = mc->kvzip_prompt.n;
            int sweep = lrsa_press_sweepable(&s0);
            int is_none = s0.method == LRSA_PRESS_NONE;
            lrsa_kv_cache base = {0};
            lrsa_press_scores sc = {0};
            double t_shared = 0, score_s = 0, full_bytes = 0;
            if (sweep || is_none) {
                if (lrsa_press_cache_init(&base, &mc->m, &s0, e) != 0) {
                    rc = -1;
                    break;
                }
                double t0 = lrsa_now();
                if (lrsa_press_prefill_and_score(&mc->m, &base, &s0, s.ids, s.qs, logits0, 0, &sc,
                                                 e) != 0) {
                    lrsa_kv_cache_free(&base);
                    rc = -1;
                    break;
                }
                t_shared = lrsa_now() - t0;
                score_s = sc.score_s;
                full_bytes = (double)lrsa_kv_cache_live_bytes(&base);
            }
            for (int bi = 0; bi < NB && rc == 0; bi++) {
                cell *x = &g->cells[mi * NB + bi];
                if (!x->pending) continue;
                lrsa_press_spec sb;
                lrsa_grid_spec_at(gm, &c->budgets[bi], g->prefill, &sb);
                sb.kvzip_prompt_ids = mc->kvzip_prompt.v;
                sb.n_kvzip_prompt = mc->kvzip_prompt.n;
                lrsa_kv_cache cb;
                double apply_s = 0, prefill_s = 0, shared = t_shared / NB;
                const double *kfp = kf;
                if (is_none) {
                    lrsa_kv_cache_clone(&cb, &base);
                    kfp = ones;
                    prefill_s = t_shared;
                } else if (sweep) {
                    lrsa_kv_cache_clone(&cb, &base);
                    double t0 = lrsa_now();
                    if (lrsa_press_apply(&mc->m, &cb, &sb, &sc, kf, e) != 0) {
                        lrsa_kv_cache_free(&cb);
                        rc = -1;
                        break;
                    }
                    apply_s = lrsa_now() - t0;
                    prefill_s = t_shared - score_s;
                } else if (sb.lagkv.keep >= 1.0f && have_full) {
                    /* LagKV keeping whole partitions is the full cache: reuse its answer */
                    memset(&cb, 0, sizeof cb);
                    kfp = ones;
                    prefill_s = shared = full_prefill_s;
                    full_bytes = full_bytes_s;
                } else { /* LagKV: the budget shapes the prefill itself */
                    if (lrsa_press_cache_init(&cb, &mc->m, &sb, e) != 0) {
                        rc = -1;
                        break;
                    }
                    double t0 = lrsa_now();
                    if (lrsa_press_compress(&mc->m, &cb, &sb, s.ids, s.qs, logits0, 0, kf, e) !=
                        0) {
                        lrsa_kv_cache_free(&cb);
                        rc = -1;
                        break;
                    }
                    prefill_s = shared = lrsa_now() - t0;
                    full_bytes = (double)s.qs * (double)lrsa_kv_cache_bytes_per_token(&cb);
                }
                if (g->proto == LRSA_PROTOCOL_AGNOSTIC) lrsa_press_freeze(&cb);
                /* every row kept: the answer is the full cache's (not for a LagKV cache that
                 * still compresses while it answers) */
                int keeps_all =
                    sweep || is_none || g->proto == LRSA_PROTOCOL_AGNOSTIC || sb.lagkv.keep >= 1.0f;
                for (int i = 0; i < H && keeps_all; i++) keeps_all = kfp[i] == 1.0;
                answer_out o = {0};
                if (keeps_all && have_full) {
                    o = full;
                    o.text = lrsa_strdup(full.text);
                } else {
                    if (g->proto == LRSA_PROTOCOL_AGNOSTIC)
                        answer_agnostic(mc, &cb, &s, max_new, &o);
                    else
                        answer_aware(mc, &cb, &s, logits0, max_new, &o);
                    if (keeps_all && !have_full) {
                        full = o;
                        full.text = lrsa_strdup(o.text);
                        have_full = 1;
                        full_prefill_s = prefill_s;
                        full_bytes_s = full_bytes;
                    }
                }
                cell_add(x, &o, &s, kfp, H, full_bytes, prefill_s, sweep ? score_s : 0, apply_s,
                         shared);
                cell_score(x, o.text, &s);
                free(o.text);
                lrsa_kv_cache_free(&cb);
                if (is_none) { /* every budget of NONE is the same cache: one answer for all */
                    for (int bj = bi + 1; bj < NB; bj++) {
                        cell *y = &g->cells[mi * NB + bj];
                        if (!y->pending) continue;
                        answer_out oy = full;
                        oy.text = full.text;
                        cell_add(y, &oy, &s, ones, H, full_bytes, prefill_s, 0, 0, shared);
                        cell_score(y, full.text, &s);
                    }
                    break;
                }
            }
            lrsa_press_scores_free(&sc);
            lrsa_kv_cache_free(&base);
            if (rc != 0) break;
            pg->units_done += 1;
            if (!pg->quiet) {
                snprintf(line, sizeof line, "%s | sample %lld/%lld %s %.1fs", gdesc,
                         (long long)si + 1, (long long)ns, gm->label, lrsa_now() - t_method);
                progress_line(pg, line);
            }
        }
        free(full.text);
    }
    /* every pending cell gets its line */
    for (int i = 0; i < g->n_cells && rc == 0; i++) {
        cell *x = &g->cells[i];
        if (!x->pending) continue;
        cJSON *row = cell_row(c, g, x);
        rc = lrsa_grid_append_row(results, row, e);
        cJSON_Delete(row);
        lrsa_sample_records_free(&x->recs);
        pg->cells_done++;
    }
    if (rc == 0) {
        snprintf(line, sizeof line, "%s | done (%d cells)", gdesc, g->n_pending);
        progress_line(pg, line);
    }
    free(kf);
    free(ones);
    free(logits0);
    return rc;
}

/* ---- the plan ---- */
typedef struct plan {
    group *g;
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
                            group *g = &p->g[p->n++];
                            memset(g, 0, sizeof *g);
                            g->model = mi;
                            g->task = ti;
                            g->length = t->synthetic[0] ? t->lengths[li] : 0;
                            g->depth = t->synthetic[0] ? t->depths[di] : NAN;
                            g->proto = c->protocols[pi];
                            g->prefill = c->prefill[fi];
                            g->n_cells = c->n_methods * c->n_budgets;
                            g->cells = lrsa_calloc((size_t)g->n_cells, sizeof(cell));
                            for (int k = 0; k < g->n_cells; k++) {
                                cell *x = &g->cells[k];
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
    progress pg = {lrsa_now(), 0, 0, 0, 0, quiet};
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
        model_ctx mc;
        if (model_open(&mc, &c->models[mi], e) != 0) {
            rc = -1;
            break;
        }
        for (int i = 0; i < p.n && rc == 0; i++) {
            group *g = &p.g[i];
            if (g->model != mi || g->n_pending == 0) continue;
            lrsa_dataset d;
            rc = lrsa_grid_task_open(c, &c->tasks[g->task], g->length, g->depth, c->models[mi].name,
                                     mc.tok, &hay, &d, e);
            if (rc != 0) break;
            rc = run_group(c, &mc, &d, g, results, &pg, e);
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
