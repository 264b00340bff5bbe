/* Mean answer NLL and string-match accuracy over a dataset. */
#include "eval/run/eval_dataset.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "eval/run/generate.h"
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

/* One sample: compress once (the prompt, or the context for the agnostic protocol), then the
 * answer NLL and the greedy answer on that cache, trimming back to the compressed part between
 * them (a cache that compresses while decoding, LagKV under the aware protocol, is compressed
 * again instead). */
static int eval_sample(const lrsa_model *m, const lrsa_dataset *d, int64_t i,
                       const lrsa_press_config *press, const lrsa_press_spec *s,
                       const lrsa_eval_options *o, lrsa_eval_result *r, double *kept,
                       double *nll_out, int64_t *cnt_out, int *matched, char **text_out,
                       lrsa_err *e) {
    const int32_t *ids = lrsa_dataset_ids(d, i);
    const uint8_t *mask = lrsa_dataset_mask(d, i);
    const int64_t len = lrsa_dataset_len(d, i), prompt_len = lrsa_dataset_prompt_len(d, i);
    int64_t split = o->want_nll ? first_answer(mask, len) : prompt_len;
    if (split < 0) split = prompt_len; /* answer_nll reports the missing answer */
    if (press->protocol == LRSA_PROTOCOL_AGNOSTIC) {
        split = lrsa_press_question_start(o->tok, ids, prompt_len);
        if (split < 1)
            return lrsa_errorf(e, "agnostic protocol: cannot find where the question starts (no "
                                  "blank line in the last user turn before the question); use "
                                  "--protocol aware for this data");
    }
    if (o->want_match && press->protocol == LRSA_PROTOCOL_AWARE && split != prompt_len) {
        /* Odd data (answer mask not right after the prompt): compress the prompt for matching. */
        split = prompt_len;
    }
    const int V = m->cfg.vocab_size;
    lrsa_kv_cache c;
    if (lrsa_press_cache_init(&c, m, s, e) != 0) return -1;
    float *logits = lrsa_malloc((size_t)V * sizeof(float));
    int rc = lrsa_press_compress(m, &c, s, ids, split, logits, 0, NULL, e);
    if (rc == 0 && press->protocol == LRSA_PROTOCOL_AGNOSTIC) lrsa_press_freeze(&c);
    int reuse = !c.compress; /* frozen: trimming back restores the compressed cache exactly */
    if (rc == 0 && o->want_nll) {
        rc = lrsa_answer_nll_from(m, &c, ids, mask, len, split, logits, nll_out, cnt_out, e);
        if (rc == 0) {
            r->nll_sum += *nll_out;
            r->nll_tokens += *cnt_out;
            *kept = kept_of(&c);
        }
    }
    if (rc == 0 && o->want_match) {
        if (o->want_nll) {
            if (reuse) {
                lrsa_kv_cache_truncate(&c, split);
            } else {
                lrsa_kv_cache_free(&c);
                rc = lrsa_press_cache_init(&c, m, s, e);
                if (rc == 0) rc = lrsa_press_compress(m, &c, s, ids, split, logits, 0, NULL, e);
            }
        }
        lrsa_gen_options g = {0};
        g.max_new = lrsa_eval_max_new(o->max_new, d, i);
        g.stop_ids = o->stop_ids;
        g.n_stop = o->n_stop;
        lrsa_gen_result gr = {0};
        if (rc == 0)
            rc = lrsa_generate_from(m, &c, ids, prompt_len, split, logits, &g, NULL, NULL, &gr, e);
        if (rc == 0) {
            char *text = lrsa_tokenizer_decode(o->tok, gr.ids, gr.n, 1);
            *matched = lrsa_answer_matches(text ? text : "", lrsa_dataset_answer(d, i));
            r->n_match += *matched;
            if (!o->want_nll) *kept = kept_of(&c);
            if (text_out && text) {
                *text_out = text;
                text = NULL;
            }
            free(text);
        }
        free(gr.ids);
    }
    free(logits);
    lrsa_kv_cache_free(&c);
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
    double t0 = lrsa_now();
    double kept_sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double nll = 0.0, kept = 1.0;
        int64_t cnt = 0;
        int matched = -1;
        char *text = NULL;
        if (eval_sample(m, d, i, press, &s, o, r, &kept, &nll, &cnt, &matched,
                        o->records ? &text : NULL, e) != 0)
            return lrsa_err_prefix(e, "%s, sample %lld: ", d->path, (long long)i);
        kept_sum += kept;
        if (o->records) record_sample(o, d, i, nll, cnt, matched, text, kept);
        free(text);
        if (o->verbose)
            fprintf(stderr, "sample %lld: len %lld  answer NLL %.4f over %lld tokens  match %d\n",
                    (long long)i, (long long)lrsa_dataset_len(d, i), cnt ? nll / cnt : 0.0,
                    (long long)cnt, matched);
    }
    r->n_samples = n;
    r->mean_nll = r->nll_tokens ? r->nll_sum / (double)r->nll_tokens : 0.0;
    r->match_rate = (double)r->n_match / (double)n;
    r->kept_fraction = kept_sum / (double)n;
    r->seconds = lrsa_now() - t0;
    return 0;
}
