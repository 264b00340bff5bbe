/* Mean answer NLL and string-match accuracy over a dataset. */
#include "eval/eval_dataset.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/fileio.h"
#include "eval/generate.h"

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

int lrsa_eval_dataset(const lrsa_model *m, const lrsa_dataset *d, const lrsa_press_config *press,
                      const lrsa_eval_options *o, lrsa_eval_result *r, lrsa_err *e) {
    memset(r, 0, sizeof(*r));
    if (o->want_match && !o->tok)
        return lrsa_errorf(e, "eval: the match metric needs the model's tokenizer "
                              "(tokenizer.json in the model directory)");
    int64_t n = lrsa_dataset_size(d);
    if (o->n_samples > 0 && o->n_samples < n) n = o->n_samples;
    if (n <= 0) return lrsa_errorf(e, "eval: %s has no samples", d->path);
    double t0 = lrsa_now();
    lrsa_kv_cache c;
    if (lrsa_kv_cache_for_model(&c, m, press, e) != 0) return -1;
    double kept_sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t *ids = lrsa_dataset_ids(d, i);
        const uint8_t *mask = lrsa_dataset_mask(d, i);
        const int64_t len = lrsa_dataset_len(d, i);
        double nll = 0.0;
        int64_t cnt = 0;
        int matched = -1;
        if (o->want_nll) {
            lrsa_kv_cache_reset(&c);
            if (lrsa_answer_nll_cache(m, &c, ids, mask, len, press->prefill, &nll, &cnt, e) != 0)
                goto fail_sample;
            r->nll_sum += nll;
            r->nll_tokens += cnt;
            int64_t full = c.seen * c.n_layers * c.n_kv_heads;
            kept_sum += full > 0 ? (double)lrsa_kv_cache_kept_rows(&c) / (double)full : 1.0;
        }
        if (o->want_match) {
            lrsa_kv_cache_reset(&c);
            lrsa_gen_options g = {0};
            int64_t n_target = lrsa_dataset_n_target(d, i);
            g.max_new = o->max_new > 0 ? o->max_new : (int)n_target + 16;
            g.stop_ids = o->stop_ids;
            g.n_stop = o->n_stop;
            lrsa_gen_result gr;
            if (lrsa_generate(m, &c, ids, lrsa_dataset_prompt_len(d, i), press->prefill, &g, NULL,
                              NULL, &gr, e) != 0)
                goto fail_sample;
            char *text = lrsa_tokenizer_decode(o->tok, gr.ids, gr.n, 1);
            matched = lrsa_answer_matches(text ? text : "", lrsa_dataset_answer(d, i));
            r->n_match += matched;
            if (!o->want_nll) {
                int64_t full = c.seen * c.n_layers * c.n_kv_heads;
                kept_sum += full > 0 ? (double)lrsa_kv_cache_kept_rows(&c) / (double)full : 1.0;
            }
            free(text);
            free(gr.ids);
        }
        if (o->verbose)
            fprintf(stderr, "sample %lld: len %lld  answer NLL %.4f over %lld tokens  match %d\n",
                    (long long)i, (long long)len, cnt ? nll / cnt : 0.0, (long long)cnt, matched);
        continue;
    fail_sample:
        lrsa_kv_cache_free(&c);
        return lrsa_err_prefix(e, "%s, sample %lld: ", d->path, (long long)i);
    }
    lrsa_kv_cache_free(&c);
    r->n_samples = n;
    r->mean_nll = r->nll_tokens ? r->nll_sum / (double)r->nll_tokens : 0.0;
    r->match_rate = (double)r->n_match / (double)n;
    r->kept_fraction = kept_sum / (double)n;
    r->seconds = lrsa_now() - t0;
    return 0;
}
