/* Mean answer NLL and string-match accuracy over a dataset. */
#include "eval/run/eval_dataset.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/run/generate.h"
#include "eval/run/press_notes.h"
#include "eval/press/press.h"

/* Lower-case, collapse whitespace, trim; strip_punct also drops trailing .,;:!? */
static char *normalise(const char *s, int strip_punct) {
    size_t n = strlen(s);
    char *o = lrsa_malloc(n + 1);
    size_t w = 0;
    int space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isspace(ch)) {
            space = 1;
            continue;
        }
        if (space && w > 0) o[w++] = ' ';
        space = 0;
        o[w++] = (char)(ch < 128 ? tolower(ch) : ch);
    }
    while (strip_punct && w > 0 && strchr(".,;:!?", o[w - 1])) w--;
    while (w > 0 && o[w - 1] == ' ') w--;
    o[w] = '\0';
    return o;
}

int lrsa_answer_matches(const char *generated, const char *answer) {
    char *g = normalise(generated, 0), *a = normalise(answer, 1);
    int ok = a[0] != '\0' && strstr(g, a) != NULL;
    free(g);
    free(a);
    return ok;
}

/* First answer token (target-side mask), or -1. */
static int64_t first_answer(const uint8_t *mask, int64_t n) {
    for (int64_t t = 1; t < n; t++)
        if (mask[t]) return t;
    return -1;
}

static double kept_of(const lrsa_kv_cache *c) {
    const int64_t full = c->seen * c->n_layers * c->n_kv_heads;
    return full > 0 ? (double)lrsa_kv_cache_kept_rows(c) / (double)full : 1.0;
}

/* One sample of a batch: where its cache is cut, its caches and what it scored. */
typedef struct sample_job {
    int64_t i;
    const int32_t *ids;
    const uint8_t *mask;
    int64_t len, prompt_len, split;
    lrsa_kv_cache c; /* the compressed prefix (split tokens), then the answer fed on it */
    lrsa_kv_cache g; /* a copy of c before the answer, for generation (has_g) */
    int has_c, has_g;
    float *logits; /* [V] after the compressed prefix */
    double nll, kept;
    int has_needle; /* the sample has needle spans: needle_kept is measured */
    double needle_kept;
    double needle_tokens_kept; /* the share of the spans' (layer, KV head, token) rows kept */
    int64_t cnt;
    int matched;
    char *text;
} sample_job;

/* How much of sample i the press compresses: the prompt (the answer's first token when only the
 * NLL is wanted), or the context before the question under the agnostic protocol (-1 when it
 * cannot be found). */
static int64_t sample_split(const lrsa_dataset *d, int64_t i, const lrsa_press_config *press,
                            const lrsa_eval_options *o) {
    const int32_t *ids = lrsa_dataset_ids(d, i);
    const int64_t len = lrsa_dataset_len(d, i), prompt_len = lrsa_dataset_prompt_len(d, i);
    if (press->protocol == LRSA_PROTOCOL_AGNOSTIC)
        return lrsa_press_question_start(o->tok, ids, prompt_len);
    int64_t split = o->want_nll ? first_answer(lrsa_dataset_mask(d, i), len) : prompt_len;
    if (split < 0) split = prompt_len; /* answer_nll reports the missing answer */
    /* Odd data (answer mask not right after the prompt): compress the prompt for matching. */
    if (o->want_match && split != prompt_len) split = prompt_len;
    return split;
}

/* Where the sample's cache is cut: the first answer token (NLL), the prompt's end (match) or
 * the question's start (agnostic protocol). */
static int job_setup(const lrsa_dataset *d, int64_t i, const lrsa_press_config *press,
                     const lrsa_eval_options *o, int V, sample_job *j, lrsa_err *e) {
    memset(j, 0, sizeof *j);
    j->i = i;
    j->ids = lrsa_dataset_ids(d, i);
    j->mask = lrsa_dataset_mask(d, i);
    j->len = lrsa_dataset_len(d, i);
    j->prompt_len = lrsa_dataset_prompt_len(d, i);
    j->kept = 1.0;
    j->matched = -1;
    const int64_t split = sample_split(d, i, press, o);
    if (press->protocol == LRSA_PROTOCOL_AGNOSTIC && split < 1)
        return lrsa_errorf(e, "agnostic protocol: cannot find where the question starts (no "
                              "blank line in the last user turn before the question); use "
                              "--protocol aware for this data");
    j->split = split;
    j->logits = lrsa_malloc((size_t)V * sizeof(float));
    return 0;
}

static void job_free(sample_job *j) {
    if (j->has_c) lrsa_kv_cache_free(&j->c);
    if (j->has_g) lrsa_kv_cache_free(&j->g);
    free(j->logits);
    free(j->text);
}

/* The needle kept rate of a sample with spans, on its freshly compressed prefix: the cache the
 * answer's first token is fed into (what its query sees, besides itself). */
static void needle_of(const lrsa_dataset *d, sample_job *j) {
    const int64_t *rows;
    int64_t n = lrsa_dataset_needle_spans(d, j->i, &rows);
    j->has_needle =
        lrsa_kv_cache_needle_rates(&j->c, rows, n, &j->needle_kept, &j->needle_tokens_kept);
}

/* A batch of samples: compress once per sample (the prompt, or the context for the agnostic
 * protocol), then the answer NLL and the greedy answer on that cache. A frozen or full cache is
 * trimmed back to the compressed part between them; a cache that compresses while decoding
 * (LagKV under the aware protocol) is copied before the answer is fed, so the prefill is shared
 * either way. Every step runs the batch's samples in one forward. */
static int eval_batch(const lrsa_model *m, const lrsa_dataset *d, const lrsa_press_config *press,
                      const lrsa_press_spec *s, const lrsa_eval_options *o, sample_job *jobs, int B,
                      lrsa_err *e) {
    lrsa_kv_cache **caches = lrsa_malloc((size_t)B * sizeof *caches);
    const int32_t **ids = lrsa_malloc((size_t)B * sizeof *ids);
    int64_t *split = lrsa_malloc((size_t)B * sizeof *split);
    float **logits = lrsa_malloc((size_t)B * sizeof *logits);
    lrsa_nll_seq *nq = lrsa_malloc((size_t)B * sizeof *nq);
    lrsa_gen_seq *gq = lrsa_malloc((size_t)B * sizeof *gq);
    int rc = 0;
    for (int b = 0; b < B && rc == 0; b++) {
        sample_job *j = &jobs[b];
        rc = lrsa_press_cache_init(&j->c, m, s, e);
        j->has_c = rc == 0;
        caches[b] = &j->c;
        ids[b] = j->ids;
        split[b] = j->split;
        logits[b] = j->logits;
    }
    if (rc == 0) rc = lrsa_press_compress_batch(m, B, caches, s, ids, split, logits, 0, NULL, e);
    for (int b = 0; b < B && rc == 0; b++) needle_of(d, &jobs[b]);
    for (int b = 0; b < B && rc == 0; b++) {
        sample_job *j = &jobs[b];
        if (press->protocol == LRSA_PROTOCOL_AGNOSTIC) lrsa_press_freeze(&j->c);
        /* frozen or full: trimming back restores the compressed cache exactly; else copy it */
        if (o->want_nll && o->want_match && j->c.compress) {
            lrsa_kv_cache_clone(&j->g, &j->c);
            j->has_g = 1;
        }
        nq[b] = (lrsa_nll_seq){&j->c, j->ids, j->mask, j->len, j->split, j->logits, 0.0, 0};
    }
    if (rc == 0 && o->want_nll) {
        rc = lrsa_answer_nll_from_batch(m, nq, B, e);
        for (int b = 0; b < B && rc == 0; b++) {
            jobs[b].nll = nq[b].nll_sum;
            jobs[b].cnt = nq[b].n_tokens;
            jobs[b].kept = kept_of(&jobs[b].c);
        }
    }
    if (rc == 0 && o->want_match) {
        for (int b = 0; b < B; b++) {
            sample_job *j = &jobs[b];
            lrsa_kv_cache *gc = j->has_g ? &j->g : &j->c;
            if (o->want_nll && !j->has_g) lrsa_kv_cache_truncate(gc, j->split);
            lrsa_gen_options g = {0};
            g.max_new = lrsa_eval_max_new(o->max_new, d, j->i);
            g.stop_ids = o->stop_ids;
            g.n_stop = o->n_stop;
            gq[b] =
                (lrsa_gen_seq){gc, j->ids, j->prompt_len, j->split, j->logits, g, NULL, NULL, {0}};
        }
        rc = lrsa_generate_from_batch(m, gq, B, e);
        for (int b = 0; b < B && rc == 0; b++) {
            sample_job *j = &jobs[b];
            char *text = lrsa_tokenizer_decode(o->tok, gq[b].res.ids, gq[b].res.n, 1);
            j->matched = lrsa_answer_matches(text ? text : "", lrsa_dataset_answer(d, j->i));
            if (!o->want_nll) j->kept = kept_of(gq[b].cache);
            j->text = text;
        }
        for (int b = 0; b < B; b++) free(gq[b].res.ids);
    }
    free(caches);
    free(ids);
    free(split);
    free(logits);
    free(nq);
    free(gq);
    return rc;
}

static void record_sample(const lrsa_eval_options *o, const lrsa_dataset *d, int64_t i, double nll,
                          int64_t cnt, int matched, const char *text, double kept) {
    lrsa_sample_record *rec = lrsa_sample_records_push(o->records);
    rec->index = i;
    rec->task = lrsa_dataset_sample_task(d, i);
    rec->kept_fraction = kept;
    if (o->want_nll) {
        rec->has_nll = 1;
        rec->answer_tokens = cnt;
        rec->nll_sum = nll;
    }
    if (o->want_match) {
        rec->match = matched;
        rec->max_new = lrsa_eval_max_new(o->max_new, d, i);
        lrsa_sample_record_answer(rec, text ? text : "", lrsa_dataset_answer(d, i),
                                  lrsa_task_answer_sep(rec->task));
    }
}

/* "eval: sample 3/16, 21 s so far, about 86 s left", rewritten in place (a terminal's line)
 * before each batch (each sample with --batch 1). */
static void progress_line(FILE *f, int64_t i, int64_t n, double elapsed) {
    fprintf(f, "\reval: sample %lld/%lld, %.0f s so far", (long long)(i + 1), (long long)n,
            elapsed);
    if (i > 0)
        fprintf(f, ", ETA %.0f s   ", elapsed / (double)i * (double)(n - i));
    else
        fprintf(f, ", ETA after the first sample   ");
    fflush(f);
}

int lrsa_eval_dataset(const lrsa_model *m, const lrsa_dataset *d, const lrsa_press_config *press,
                      const lrsa_eval_options *o, lrsa_eval_result *r, lrsa_err *e) {
    memset(r, 0, sizeof(*r));
    if (o->want_match && !o->tok)
        return lrsa_errorf(e, "eval: the match metric needs the model's tokenizer "
                              "(tokenizer.json in the model directory)");
    if (press->protocol == LRSA_PROTOCOL_AGNOSTIC && !o->tok)
        return lrsa_errorf(e, "eval: the agnostic protocol needs the model's tokenizer to find "
                              "where each question starts");
    lrsa_press_spec s;
    lrsa_press_config_spec(press, &s);
    if (lrsa_press_spec_check(&s, e) != 0) return -1;
    int64_t n = lrsa_dataset_size(d);
    if (o->n_samples > 0 && o->n_samples < n) n = o->n_samples;
    if (n <= 0) return lrsa_errorf(e, "eval: %s has no samples", d->path);
    /* Say before the run when the press cannot compress some samples as asked. */
    int64_t *lens = lrsa_malloc((size_t)n * sizeof *lens);
    for (int64_t i = 0; i < n; i++) lens[i] = sample_split(d, i, press, o);
    lrsa_press_warn_lengths(&s, lens, n,
                            press->protocol == LRSA_PROTOCOL_AGNOSTIC ? "context" : "prompt");
    free(lens);
    double t0 = lrsa_now();
    double kept_sum = 0.0, needle_sum = 0.0;
    const int B = o->batch > 1 ? o->batch : 1, V = m->cfg.vocab_size;
    sample_job *jobs = lrsa_malloc((size_t)B * sizeof *jobs);
    int rc = 0;
    for (int64_t i0 = 0; i0 < n && rc == 0; i0 += B) {
        const int nb = (int)(n - i0 < B ? n - i0 : B);
        if (o->progress) progress_line(o->progress, i0, n, lrsa_now() - t0);
        int ready = 0;
        for (; ready < nb && rc == 0; ready++) {
            rc = job_setup(d, i0 + ready, press, o, V, &jobs[ready], e);
            if (rc != 0) lrsa_err_prefix(e, "%s, sample %lld: ", d->path, (long long)(i0 + ready));
        }
        if (rc == 0 && eval_batch(m, d, press, &s, o, jobs, nb, e) != 0) {
            if (nb == 1)
                rc = lrsa_err_prefix(e, "%s, sample %lld: ", d->path, (long long)i0);
            else
                rc = lrsa_err_prefix(e, "%s, samples %lld-%lld: ", d->path, (long long)i0,
                                     (long long)(i0 + nb - 1));
        }
        for (int b = 0; b < nb && rc == 0; b++) {
            const sample_job *j = &jobs[b];
            r->nll_sum += j->nll;
            r->nll_tokens += j->cnt;
            r->n_match += j->matched > 0;
            kept_sum += j->kept;
            if (j->has_needle) {
                r->n_needle++;
                needle_sum += j->needle_kept;
            }
            if (o->records) {
                record_sample(o, d, j->i, j->nll, j->cnt, j->matched, j->text, j->kept);
                o->records->v[o->records->n - 1].has_needle_kept = j->has_needle;
                o->records->v[o->records->n - 1].needle_kept = j->needle_kept;
                o->records->v[o->records->n - 1].needle_tokens_kept = j->needle_tokens_kept;
            }
            if (o->verbose)
                fprintf(stderr,
                        "sample %lld: len %lld  answer NLL %.4f over %lld tokens  match %d\n",
                        (long long)j->i, (long long)j->len, j->cnt ? j->nll / j->cnt : 0.0,
                        (long long)j->cnt, j->matched);
        }
        for (int b = 0; b < ready; b++) job_free(&jobs[b]);
    }
    free(jobs);
    if (rc != 0) return -1;
    if (o->progress)
        fprintf(o->progress, "\reval: %lld samples in %.1f s%24s\n", (long long)n, lrsa_now() - t0,
                "");
    r->n_samples = n;
    r->mean_nll = r->nll_tokens ? r->nll_sum / (double)r->nll_tokens : 0.0;
    r->match_rate = (double)r->n_match / (double)n;
    r->kept_fraction = kept_sum / (double)n;
    r->needle_kept = r->n_needle > 0 ? needle_sum / (double)r->n_needle : 0.0;
    r->seconds = lrsa_now() - t0;
    return 0;
}
