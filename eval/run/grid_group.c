/* One group of the grid (eval/run/grid_group.h), its samples a batch at a time: per method,
 * the batch's prefills (and the press's scoring) in shared forwards, then per budget each
 * sample's compaction and the batch's answers in shared forwards (answer NLL by teacher
 * forcing, then greedy generation). Work and records per sample are those of one sample at a
 * time; only the forwards are shared. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/press/press.h"
#include "eval/run/eval_dataset.h"
#include "eval/run/generate.h"
#include "eval/run/grid_group.h"
#include "eval/run/grid_results.h"
#include "eval/run/prefill.h"
#include "eval/run/press_notes.h"

/* ---- one sample ---- */
typedef struct sample_view {
    const int32_t *ids;
    const uint8_t *mask;
    int64_t n, prompt_len, qs; /* qs: tokens prefilled under the press */
    const char *answer;
    int64_t index;
    const char *task, *sep; /* the sample's own task; the separator of its answer's parts */
    int max_new;
    const int64_t *spans; /* the sample's needle spans (dataset rows), n_spans of them */
    int64_t n_spans;
} sample_view;

typedef struct answer_out {
    double nll_sum;
    int64_t nll_tok;
    char *text; /* generated answer (malloc'd) */
    size_t peak_bytes;
    double seconds;
} answer_out;

/* What the batch's samples are answered on: k samples, each its cache, view, logits after its
 * prefilled part, and answer. */
typedef struct answer_set {
    int k;
    lrsa_kv_cache **c;
    const sample_view **s;
    float **logits0;
    answer_out **o;
} answer_set;

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

/* Greedy answers of every sample of a: query-agnostic, the question (prompt after qs) is fed
 * first; query-aware (qs = prompt_len), decoding starts from logits0. */
static int greedy_batch(const lrsa_grid_model_ctx *mc, const answer_set *a, lrsa_err *e) {
    lrsa_gen_seq *q = lrsa_calloc((size_t)a->k, sizeof *q);
    for (int i = 0; i < a->k; i++) {
        const sample_view *s = a->s[i];
        lrsa_gen_options g = {0};
        g.max_new = s->max_new;
        g.stop_ids = mc->stop;
        g.n_stop = mc->n_stop;
        q[i] = (lrsa_gen_seq){a->c[i], s->ids, s->prompt_len, s->qs, a->logits0[i],
                              g,       NULL,   NULL,          {0}};
    }
    int rc = lrsa_generate_from_batch(&mc->m, q, a->k, e);
    for (int i = 0; i < a->k; i++) {
        if (rc == 0) {
            answer_out *o = a->o[i];
            o->peak_bytes = max_sz(o->peak_bytes, lrsa_kv_cache_live_bytes(a->c[i]));
            o->text = lrsa_tokenizer_decode(mc->tok, q[i].res.ids, q[i].res.n, 1);
        }
        free(q[i].res.ids);
    }
    free(q);
    return rc;
}

/* Query-agnostic: each cache holds the compressed context (frozen). Feeds question + answer in
 * one forward with teacher forcing for the NLL, trims back to the context, then generates from
 * the question and trims back again. */
static int answer_agnostic(const lrsa_grid_model_ctx *mc, const answer_set *a, lrsa_err *e) {
    const int V = mc->V;
    int64_t *base = lrsa_malloc((size_t)a->k * sizeof *base);
    float **logits = lrsa_malloc((size_t)a->k * sizeof *logits);
    lrsa_forward_seq *fw = lrsa_malloc((size_t)a->k * sizeof *fw);
    for (int i = 0; i < a->k; i++) {
        const sample_view *s = a->s[i];
        const int64_t nt = s->prompt_len - s->qs, na = s->n - s->prompt_len;
        base[i] = a->c[i]->seen;
        logits[i] = lrsa_malloc((size_t)(nt + na) * V * sizeof(float));
        fw[i] = (lrsa_forward_seq){a->c[i], s->ids + s->qs, nt + na, logits[i], 1, NULL};
    }
    lrsa_cached_forward_grouped(&mc->m, fw, a->k);
    for (int i = 0; i < a->k; i++) {
        const sample_view *s = a->s[i];
        answer_out *o = a->o[i];
        const int64_t nt = s->prompt_len - s->qs, na = s->n - s->prompt_len;
        o->nll_sum = 0;
        o->nll_tok = 0;
        for (int64_t k = 0; k < na; k++) {
            int64_t p = s->prompt_len + k;
            if (!s->mask[p]) continue;
            o->nll_sum += lrsa_token_nll(logits[i] + (nt + k - 1) * V, V, s->ids[p]);
            o->nll_tok++;
        }
        o->peak_bytes = lrsa_kv_cache_live_bytes(a->c[i]);
        lrsa_kv_cache_truncate(a->c[i], base[i]);
        free(logits[i]);
    }
    int rc = greedy_batch(mc, a, e);
    for (int i = 0; i < a->k; i++) lrsa_kv_cache_truncate(a->c[i], base[i]);
    free(base);
    free(logits);
    free(fw);
    return rc;
}

/* Query-aware: the whole prompt was prefilled (and compressed); logits0 = the prefill's logits
 * of its last token. The answer is fed token by token on a copy of the cache (LagKV keeps
 * compressing), then the greedy answer is generated on the cache itself. */
static int answer_aware(const lrsa_grid_model_ctx *mc, const answer_set *a, lrsa_err *e) {
    const int V = mc->V;
    lrsa_kv_cache *t = lrsa_malloc((size_t)a->k * sizeof *t);
    float *logits = lrsa_malloc((size_t)a->k * V * sizeof(float));
    lrsa_teacher_seq *tf = lrsa_malloc((size_t)a->k * sizeof *tf);
    for (int i = 0; i < a->k; i++) {
        const sample_view *s = a->s[i];
        lrsa_kv_cache_clone(&t[i], a->c[i]);
        memcpy(logits + (int64_t)i * V, a->logits0[i], (size_t)V * sizeof(float));
        tf[i] = (lrsa_teacher_seq){
            &t[i], s->ids, s->mask, s->prompt_len, s->n, logits + (int64_t)i * V, 0.0, 0};
    }
    lrsa_teacher_force_batch(&mc->m, tf, a->k);
    for (int i = 0; i < a->k; i++) {
        a->o[i]->nll_sum = tf[i].nll_sum;
        a->o[i]->nll_tok = tf[i].n_tokens;
        a->o[i]->peak_bytes = lrsa_kv_cache_live_bytes(&t[i]);
        lrsa_kv_cache_free(&t[i]);
    }
    free(t);
    free(logits);
    free(tf);
    return greedy_batch(mc, a, e);
}

static int answer_set_run(const lrsa_grid_model_ctx *mc, lrsa_press_protocol proto,
                          const answer_set *a, lrsa_err *e) {
    if (a->k == 0) return 0;
    const double t0 = lrsa_now();
    int rc = proto == LRSA_PROTOCOL_AGNOSTIC ? answer_agnostic(mc, a, e) : answer_aware(mc, a, e);
    const double each = (lrsa_now() - t0) / a->k; /* the batch's time, shared equally */
    for (int i = 0; i < a->k; i++) a->o[i]->seconds = each;
    return rc;
}

/* ---- cells ---- */
/* What the answer's first query saw of the sample's needles (has = 0: no spans). */
typedef struct needle_rates {
    int has;
    double any, tokens;
} needle_rates;

static void cell_add(lrsa_grid_cell *x, const answer_out *o, const sample_view *s, const double *kf,
                     int nkf, double full_bytes, double prefill_s, double score_s, double apply_s,
                     double shared_s, needle_rates nr) {
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
    rec->has_needle_kept = nr.has;
    rec->needle_kept = nr.any;
    rec->needle_tokens_kept = nr.tokens;
    /* the answer metrics (its separator splits multi-part references) */
    lrsa_sample_record_answer(rec, o->text, s->answer, s->sep);
    const lrsa_answer_scores a = rec->score;
    x->sc.match_all += a.match_all;
    x->sc.match_part += a.match_part;
    x->sc.exact += a.exact;
    x->sc.f1 += a.f1;
}

/* ---- one batch of samples ---- */
typedef struct batch {
    int n;              /* samples in the batch */
    int H;              /* layers x KV heads */
    sample_view *s;     /* [n] */
    float **logits0;    /* [n] -> [V]: logits after the prefilled part */
    double *kf;         /* [n * H]: kept fraction per (layer, KV head) after the press */
    const double *ones; /* [H] */
    answer_out *full;   /* [n]: the answer on the uncompressed cache, once known */
    int *have_full;
    double *full_prefill_s, *full_bytes_s;
} batch;

/* What one method's prefill left for its budgets: the uncompressed caches and scores of a
 * sweepable press (or the full cache), with times per sample. */
typedef struct method_run {
    const lrsa_grid_method *gm;
    int sweep, is_none;
    lrsa_kv_cache *base;   /* [n] */
    lrsa_press_scores *sc; /* [n] */
    /* [n]: prefill and scoring time (the batch's prefill time shared equally, plus the
     * sample's own scoring time), the scorer's own time, the full cache's bytes */
    double *t_shared, *score_s, *fbase;
} method_run;

/* One budget of one method for every sample of the batch. */
static int run_budget(const lrsa_grid_config *c, lrsa_grid_model_ctx *mc, lrsa_grid_group *g,
                      batch *bt, method_run *mr, int bi, lrsa_err *e) {
    const int NB = c->n_budgets, n = bt->n, H = bt->H;
    lrsa_grid_cell *x = &g->cells[(int64_t)(mr->gm - c->methods) * NB + bi];
    lrsa_press_spec sb;
    lrsa_grid_spec_at(mr->gm, &c->budgets[bi], g->prefill, &sb);
    sb.kvzip_prompt_ids = mc->kvzip_prompt.v;
    sb.n_kvzip_prompt = mc->kvzip_prompt.n;
    lrsa_kv_cache *cb = lrsa_calloc((size_t)n, sizeof *cb);
    int *has_cb = lrsa_calloc((size_t)n, sizeof *has_cb),
        *lag = lrsa_malloc((size_t)n * sizeof(int));
    double *apply_s = lrsa_calloc((size_t)n, sizeof(double)),
           *prefill_s = lrsa_calloc((size_t)n, sizeof(double)),
           *shared = lrsa_calloc((size_t)n, sizeof(double)),
           *fb = lrsa_calloc((size_t)n, sizeof(double));
    const double **kfp = lrsa_malloc((size_t)n * sizeof *kfp);
    answer_out *o = lrsa_calloc((size_t)n, sizeof *o);
    lrsa_kv_cache **ac = lrsa_malloc((size_t)n * sizeof *ac);
    const sample_view **as = lrsa_malloc((size_t)n * sizeof *as);
    float **al = lrsa_malloc((size_t)n * sizeof *al);
    answer_out **ao = lrsa_malloc((size_t)n * sizeof *ao);
    const int32_t **ids = lrsa_malloc((size_t)n * sizeof *ids);
    int64_t *qs = lrsa_malloc((size_t)n * sizeof *qs);
    int *keeps_all = lrsa_calloc((size_t)n, sizeof(int));
    needle_rates *nr = lrsa_calloc((size_t)n, sizeof *nr);
    int rc = 0, nl = 0;
    for (int b = 0; b < n && rc == 0; b++) {
        shared[b] = mr->t_shared[b] / NB;
        kfp[b] = bt->kf + (int64_t)b * H;
        fb[b] = mr->fbase[b];
        if (mr->is_none) {
            lrsa_kv_cache_clone(&cb[b], &mr->base[b]);
            has_cb[b] = 1;
            kfp[b] = bt->ones;
            prefill_s[b] = mr->t_shared[b];
        } else if (mr->sweep) {
            lrsa_kv_cache_clone(&cb[b], &mr->base[b]);
            has_cb[b] = 1;
            double t0 = lrsa_now();
            rc = lrsa_press_apply(&mc->m, &cb[b], &sb, &mr->sc[b], bt->kf + (int64_t)b * H, e);
            apply_s[b] = lrsa_now() - t0;
            prefill_s[b] = mr->t_shared[b] - mr->score_s[b];
        } else if (sb.lagkv.keep >= 1.0f && bt->have_full[b]) {
            /* LagKV keeping whole partitions is the full cache: reuse its answer */
            kfp[b] = bt->ones;
            prefill_s[b] = shared[b] = bt->full_prefill_s[b];
            fb[b] = bt->full_bytes_s[b];
        } else { /* LagKV: the budget shapes the prefill itself */
            rc = lrsa_press_cache_init(&cb[b], &mc->m, &sb, e);
            has_cb[b] = rc == 0;
            ac[nl] = &cb[b];
            ids[nl] = bt->s[b].ids;
            qs[nl] = bt->s[b].qs;
            al[nl] = bt->logits0[b];
            lag[nl++] = b;
        }
    }
    if (rc == 0 && nl > 0) {
        double *kfl = lrsa_malloc((size_t)nl * H * sizeof(double));
        double t0 = lrsa_now();
        rc = lrsa_press_compress_batch(&mc->m, nl, ac, &sb, ids, qs, al, 0, kfl, e);
        const double each = (lrsa_now() - t0) / nl;
        for (int i = 0; i < nl && rc == 0; i++) {
            const int b = lag[i];
            memcpy(bt->kf + (int64_t)b * H, kfl + (int64_t)i * H, (size_t)H * sizeof(double));
            prefill_s[b] = shared[b] = each;
            fb[b] = (double)bt->s[b].qs * (double)lrsa_kv_cache_bytes_per_token(&cb[b]);
        }
        free(kfl);
    }
    /* every row kept: the answer is the full cache's (not for a LagKV cache that still
     * compresses while it answers) */
    int k = 0;
    for (int b = 0; b < n && rc == 0; b++) {
        if (has_cb[b] && g->proto == LRSA_PROTOCOL_AGNOSTIC) lrsa_press_freeze(&cb[b]);
        /* the needles in the cache the answer is fed into (no cache here: LagKV kept whole
         * partitions, i.e. everything) */
        const sample_view *sv = &bt->s[b];
        if (sv->n_spans > 0) {
            nr[b] = (needle_rates){1, 1.0, 1.0};
            if (has_cb[b])
                lrsa_kv_cache_needle_rates(&cb[b], sv->spans, sv->n_spans, &nr[b].any,
                                           &nr[b].tokens);
        }
        keeps_all[b] =
            mr->sweep || mr->is_none || g->proto == LRSA_PROTOCOL_AGNOSTIC || sb.lagkv.keep >= 1.0f;
        for (int i = 0; i < H && keeps_all[b]; i++) keeps_all[b] = kfp[b][i] == 1.0;
        if (keeps_all[b] && bt->have_full[b]) {
            o[b] = bt->full[b];
            o[b].text = lrsa_strdup(bt->full[b].text);
        } else {
            ac[k] = &cb[b];
            as[k] = &bt->s[b];
            al[k] = bt->logits0[b];
            ao[k++] = &o[b];
        }
    }
    if (rc == 0) rc = answer_set_run(mc, g->proto, &(answer_set){k, ac, as, al, ao}, e);
    for (int b = 0; b < n && rc == 0; b++) {
        if (keeps_all[b] && !bt->have_full[b]) {
            bt->full[b] = o[b];
            bt->full[b].text = lrsa_strdup(o[b].text);
            bt->have_full[b] = 1;
            bt->full_prefill_s[b] = prefill_s[b];
            bt->full_bytes_s[b] = fb[b];
        }
        cell_add(x, &o[b], &bt->s[b], kfp[b], H, fb[b], prefill_s[b],
                 mr->sweep ? mr->score_s[b] : 0, apply_s[b], shared[b], nr[b]);
    }
    if (rc == 0 && mr->is_none) /* every budget of NONE is the same cache: one answer for all */
        for (int bj = bi + 1; bj < NB; bj++) {
            lrsa_grid_cell *y = &g->cells[(int64_t)(mr->gm - c->methods) * NB + bj];
            if (!y->pending) continue;
            for (int b = 0; b < n; b++)
                cell_add(y, &bt->full[b], &bt->s[b], bt->ones, H, fb[b], prefill_s[b], 0, 0,
                         shared[b], nr[b]);
        }
    for (int b = 0; b < n; b++) {
        free(o[b].text);
        if (has_cb[b]) lrsa_kv_cache_free(&cb[b]);
    }
    free(cb);
    free(has_cb);
    free(lag);
    free(apply_s);
    free(prefill_s);
    free(shared);
    free(fb);
    free(kfp);
    free(o);
    free(ac);
    free(as);
    free(al);
    free(ao);
    free(ids);
    free(qs);
    free(keeps_all);
    free(nr);
    return rc;
}

/* One method for every sample of the batch: the shared prefill (sweepable presses and the full
 * cache), then its pending budgets. */
static int run_method(const lrsa_grid_config *c, lrsa_grid_model_ctx *mc, lrsa_grid_group *g,
                      batch *bt, int mi, lrsa_err *e) {
    const int NB = c->n_budgets, n = bt->n;
    int first_b = -1;
    for (int bi = 0; bi < NB && first_b < 0; bi++)
        if (g->cells[mi * NB + bi].pending) first_b = bi;
    if (first_b < 0) return 0;
    method_run mr = {&c->methods[mi], 0, 0, NULL, NULL, NULL, NULL, NULL};
    lrsa_press_spec s0;
    lrsa_grid_spec_at(mr.gm, &c->budgets[first_b], g->prefill, &s0);
    s0.kvzip_prompt_ids = mc->kvzip_prompt.v;
    s0.n_kvzip_prompt = mc->kvzip_prompt.n;
    mr.sweep = lrsa_press_sweepable(&s0);
    mr.is_none = s0.method == LRSA_PRESS_NONE;
    mr.base = lrsa_calloc((size_t)n, sizeof *mr.base);
    mr.sc = lrsa_calloc((size_t)n, sizeof *mr.sc);
    mr.t_shared = lrsa_calloc((size_t)n, sizeof(double));
    mr.score_s = lrsa_calloc((size_t)n, sizeof(double));
    mr.fbase = lrsa_calloc((size_t)n, sizeof(double));
    int n_base = 0, rc = 0;
    if (mr.sweep || mr.is_none) {
        lrsa_kv_cache **bp = lrsa_malloc((size_t)n * sizeof *bp);
        const int32_t **ids = lrsa_malloc((size_t)n * sizeof *ids);
        int64_t *qs = lrsa_malloc((size_t)n * sizeof *qs);
        for (; n_base < n && rc == 0; n_base++) {
            bp[n_base] = &mr.base[n_base];
            ids[n_base] = bt->s[n_base].ids;
            qs[n_base] = bt->s[n_base].qs;
            rc = lrsa_press_cache_init(&mr.base[n_base], &mc->m, &s0, e);
            if (rc != 0) break;
        }
        double total = 0;
        if (rc == 0) {
            double t0 = lrsa_now();
            rc = lrsa_press_prefill_and_score_batch(&mc->m, n, bp, &s0, ids, qs, bt->logits0, 0,
                                                    mr.sc, e);
            total = lrsa_now() - t0;
        }
        for (int b = 0; b < n && rc == 0; b++) total -= mr.sc[b].score_s;
        for (int b = 0; b < n && rc == 0; b++) {
            mr.score_s[b] = mr.sc[b].score_s;
            mr.t_shared[b] = total / n + mr.score_s[b]; /* the batch's prefill, shared equally */
            mr.fbase[b] = (double)lrsa_kv_cache_live_bytes(&mr.base[b]);
        }
        free(bp);
        free(ids);
        free(qs);
    }
    for (int bi = 0; bi < NB && rc == 0; bi++) {
        if (!g->cells[mi * NB + bi].pending) continue;
        rc = run_budget(c, mc, g, bt, &mr, bi, e);
        if (mr.is_none) break; /* run_budget gave every budget its rows */
    }
    for (int b = 0; b < n_base; b++) {
        lrsa_press_scores_free(&mr.sc[b]);
        lrsa_kv_cache_free(&mr.base[b]);
    }
    free(mr.base);
    free(mr.sc);
    free(mr.t_shared);
    free(mr.score_s);
    free(mr.fbase);
    return rc;
}

/* The sample's view, or an error naming the sample when it cannot be evaluated. */
static int sample_setup(const lrsa_grid_config *c, const lrsa_grid_model_ctx *mc,
                        const lrsa_dataset *d, const lrsa_grid_group *g, int64_t si, sample_view *s,
                        lrsa_err *e) {
    const lrsa_grid_task *t = &c->tasks[g->task];
    *s = (sample_view){lrsa_dataset_ids(d, si),
                       lrsa_dataset_mask(d, si),
                       lrsa_dataset_len(d, si),
                       lrsa_dataset_prompt_len(d, si),
                       0,
                       lrsa_dataset_answer(d, si),
                       si,
                       lrsa_dataset_sample_task(d, si),
                       NULL,
                       lrsa_eval_max_new(t->max_new > 0 ? t->max_new : c->max_new, d, si),
                       NULL,
                       0};
    /* a file of synthetic samples is scored part by part like the synthetic tasks */
    s->sep = t->answer_sep[0] ? t->answer_sep : lrsa_task_answer_sep(s->task);
    s->n_spans = lrsa_dataset_needle_spans(d, si, &s->spans);
    if (s->prompt_len < 1 || s->prompt_len >= s->n)
        return lrsa_errorf(e, "%s: sample %lld has no answer after its prompt", d->path,
                           (long long)si);
    if (g->proto != LRSA_PROTOCOL_AGNOSTIC) {
        s->qs = s->prompt_len;
        return 0;
    }
    s->qs = lrsa_press_question_start(mc->tok, s->ids, s->prompt_len);
    if (s->qs < 1)
        return lrsa_errorf(e,
                           "%s: sample %lld: no context/question boundary (a \"\\n\\n\" "
                           "before the question in the last user turn) for the "
                           "query-agnostic protocol; use protocols: [query-aware] for this "
                           "task",
                           d->path, (long long)si);
    return 0;
}

int lrsa_grid_run_group(const lrsa_grid_config *c, lrsa_grid_model_ctx *mc, const lrsa_dataset *d,
                        lrsa_grid_group *g, const char *results, lrsa_grid_progress *pg,
                        lrsa_err *e) {
    const lrsa_grid_task *t = &c->tasks[g->task];
    const int B = c->batch > 1 ? c->batch : 1;
    const int H = mc->m.cfg.num_hidden_layers * mc->m.cfg.num_key_value_heads;
    int64_t ns = lrsa_dataset_size(d);
    if (t->n > 0 && t->n < ns) ns = t->n;
    double *ones = lrsa_malloc((size_t)H * sizeof(double));
    for (int i = 0; i < H; i++) ones[i] = 1.0;
    batch bt = {0,
                H,
                lrsa_calloc((size_t)B, sizeof(sample_view)),
                lrsa_calloc((size_t)B, sizeof(float *)),
                lrsa_malloc((size_t)B * H * sizeof(double)),
                ones,
                lrsa_calloc((size_t)B, sizeof(answer_out)),
                lrsa_calloc((size_t)B, sizeof(int)),
                lrsa_calloc((size_t)B, sizeof(double)),
                lrsa_calloc((size_t)B, sizeof(double))};
    for (int b = 0; b < B; b++) bt.logits0[b] = lrsa_malloc((size_t)mc->V * sizeof(float));
    char gdesc[512], line[1024];
    lrsa_grid_describe_group(c, g, gdesc, sizeof gdesc);
    { /* before the work: the methods that cannot compress these samples as asked */
        int64_t *lens = lrsa_malloc((size_t)(ns > 0 ? ns : 1) * sizeof *lens);
        for (int64_t si = 0; si < ns; si++) {
            const int64_t pl = lrsa_dataset_prompt_len(d, si);
            const int64_t qs = g->proto == LRSA_PROTOCOL_AGNOSTIC
                                   ? lrsa_press_question_start(mc->tok, lrsa_dataset_ids(d, si), pl)
                                   : pl;
            lens[si] = qs >= 1 ? qs : pl; /* a missing boundary is reported below */
        }
        lrsa_grid_warn_lengths(c, g->prefill, lens, ns,
                               g->proto == LRSA_PROTOCOL_AGNOSTIC ? "context" : "prompt", gdesc);
        free(lens);
    }
    int rc = 0;
    for (int64_t si0 = 0; si0 < ns && rc == 0; si0 += B) {
        bt.n = (int)(ns - si0 < B ? ns - si0 : B);
        for (int b = 0; b < bt.n && rc == 0; b++) {
            rc = sample_setup(c, mc, d, g, si0 + b, &bt.s[b], e);
            bt.have_full[b] = 0;
        }
        for (int mi = 0; mi < c->n_methods && rc == 0; mi++) {
            double t_method = lrsa_now();
            int pending = 0;
            for (int bi = 0; bi < c->n_budgets; bi++)
                pending |= g->cells[mi * c->n_budgets + bi].pending;
            if (!pending) continue;
            rc = run_method(c, mc, g, &bt, mi, e);
            if (rc != 0) break;
            pg->units_done += bt.n;
            if (!pg->quiet) {
                char which[64];
                if (bt.n == 1)
                    snprintf(which, sizeof which, "sample %lld/%lld", (long long)si0 + 1,
                             (long long)ns);
                else
                    snprintf(which, sizeof which, "samples %lld-%lld/%lld", (long long)si0 + 1,
                             (long long)si0 + bt.n, (long long)ns);
                snprintf(line, sizeof line, "%s | %s %s %.1fs", gdesc, which, c->methods[mi].label,
                         lrsa_now() - t_method);
                lrsa_grid_progress_line(pg, line);
            }
        }
        for (int b = 0; b < bt.n; b++) {
            free(bt.full[b].text);
            bt.full[b].text = NULL;
        }
    }
    /* every pending cell gets its line */
    for (int i = 0; i < g->n_cells && rc == 0; i++) {
        lrsa_grid_cell *x = &g->cells[i];
        if (!x->pending) continue;
        cJSON *row = lrsa_grid_cell_row(c, g, x);
        rc = lrsa_grid_append_row(results, row, e);
        cJSON_Delete(row);
        lrsa_sample_records_free(&x->recs);
        pg->cells_done++;
    }
    if (rc == 0) {
        snprintf(line, sizeof line, "%s | done (%d cells)", gdesc, g->n_pending);
        lrsa_grid_progress_line(pg, line);
    }
    for (int b = 0; b < B; b++) free(bt.logits0[b]);
    free(bt.s);
    free(bt.logits0);
    free(bt.kf);
    free(bt.full);
    free(bt.have_full);
    free(bt.full_prefill_s);
    free(bt.full_bytes_s);
    free(ones);
    return rc;
}
