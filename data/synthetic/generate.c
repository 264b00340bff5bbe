/* Synthetic sample generation: haystack filling and needle placement (see synthetic.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "data/synthetic/needle_spans.h"
#include "data/synthetic/plan.h"
#include "data/synthetic/synthetic.h"
#include "data/synthetic/tasks.h"

/* Growable string. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = (b->n + l + 1) * 2;
        b->s = lrsa_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

/* Tokens of " " + sentence i, cached (the context joins sentences with single spaces). */
static int64_t sent_tokens(const lrsa_sample_builder *b, const lrsa_haystack *h, int32_t *cache,
                           int64_t i, lrsa_err *e) {
    if (cache[i] >= 0) return cache[i];
    size_t l = strlen(h->sents[i]);
    char *s = lrsa_malloc(l + 2);
    s[0] = ' ';
    memcpy(s + 1, h->sents[i], l + 1);
    lrsa_ids ids = {0};
    int rc = lrsa_tokenizer_encode(b->tok, s, l + 1, &ids, e);
    free(s);
    if (rc != 0) return -1;
    cache[i] = (int32_t)ids.n;
    lrsa_ids_free(&ids);
    return cache[i];
}

/* Builds the user text with k haystack sentences from `start`, the needles at the boundaries
 * closest to their depths (cum[j] = tokens of the first j sentences). */
static char *compose(const lrsa_synth_item *it, const int64_t *needle_tokens,
                     const lrsa_haystack *h, int64_t start, int64_t k, const int64_t *cum) {
    sbuf b = {0};
    sb_add(&b, it->instruction);
    sb_add(&b, "\n\n");
    /* Boundary of each needle: the one that puts its first token closest to depth * (all
     * context tokens, needles included), counting the needles placed before it. Depths are
     * sorted, so boundaries are non-decreasing. */
    int64_t at[LRSA_SYNTH_MAX_NEEDLES], total = cum[k], before = 0, lo = 0;
    for (int i = 0; i < it->n_needles; i++) total += needle_tokens[i];
    for (int i = 0; i < it->n_needles; i++) {
        double target = it->depth[i] * (double)total;
        int64_t best = lo;
        for (int64_t j = lo + 1; j <= k; j++)
            if (fabs((double)(cum[j] + before) - target) <
                fabs((double)(cum[best] + before) - target))
                best = j;
        at[i] = lo = best;
        before += needle_tokens[i];
    }
    int next = 0, first = 1;
    for (int64_t j = 0; j <= k; j++) {
        while (next < it->n_needles && at[next] == j) {
            if (!first) sb_add(&b, " ");
            sb_add(&b, it->needles[next++]);
            first = 0;
        }
        if (j == k) break;
        if (!first) sb_add(&b, " ");
        sb_add(&b, h->sents[(start + j) % h->n]);
        first = 0;
    }
    sb_add(&b, "\n\n");
    sb_add(&b, it->question);
    return b.s;
}

static int build(const lrsa_sample_builder *b, const char *user, const char *answer, lrsa_sample *s,
                 lrsa_err *e) {
    lrsa_chat_msg msgs[2] = {{"user", user}, {"assistant", answer}};
    return lrsa_sample_build(b, msgs, 2, s, e);
}

/* The answer-bearing needles' token spans of the sample just added (the writer's last). */
static int add_needle_spans(lrsa_dataset_writer *w, const lrsa_tokenizer *tok, const lrsa_sample *s,
                            const lrsa_synth_item *it, lrsa_err *e) {
    int64_t spans[LRSA_SYNTH_MAX_NEEDLES][2];
    int n = 0;
    if (lrsa_synth_needle_spans(tok, s->ids.v, s->prompt_len, it, spans, &n, e) != 0) return -1;
    int64_t i = lrsa_dataset_writer_count(w) - 1;
    for (int j = 0; j < n; j++)
        if (lrsa_dataset_writer_add_span(w, i, spans[j][0], spans[j][1], e) != 0) return -1;
    return 0;
}

static int one_sample(const lrsa_synth_config *cfg, const char *task, int64_t length,
                      const lrsa_sample_builder *b, const lrsa_haystack *h, int32_t *cache,
                      lrsa_rng *r, int64_t index, lrsa_dataset_writer *w, lrsa_err *e) {
    double depth = cfg->n_depths > 0 ? cfg->depths[index % cfg->n_depths] : lrsa_rng_uniform(r);
    lrsa_synth_item it;
    lrsa_synth_task_make(task, r, depth, &it);
    int64_t start = (int64_t)lrsa_rng_below(r, (uint64_t)h->n);

    /* The sample without any haystack tells how many tokens the haystack may take. */
    int64_t zero = 0, needle_tokens[LRSA_SYNTH_MAX_NEEDLES];
    for (int i = 0; i < it.n_needles; i++) {
        lrsa_ids ids = {0};
        char buf[300];
        snprintf(buf, sizeof buf, " %s", it.needles[i]);
        if (lrsa_tokenizer_encode(b->tok, buf, strlen(buf), &ids, e) != 0) return -1;
        needle_tokens[i] = ids.n;
        lrsa_ids_free(&ids);
    }
    char *user = compose(&it, needle_tokens, h, start, 0, &zero);
    lrsa_sample s;
    int rc = build(b, user, it.answer, &s, e);
    free(user);
    if (rc != 0) return -1;
    int64_t base = s.ids.n;
    lrsa_sample_free(&s);
    if (base > length && cfg->length_max > cfg->length)
        return lrsa_errorf(e,
                           "--length %lld:%lld: sample %lld drew %lld tokens, too few for task "
                           "%s: the question, needles and answer alone take %lld tokens; raise "
                           "the low end to %lld or more",
                           (long long)cfg->length, (long long)cfg->length_max, (long long)index,
                           (long long)length, task, (long long)base, (long long)base + 64);
    if (base > length)
        return lrsa_errorf(e,
                           "--length %lld is too small for task %s: the question, needles and "
                           "answer alone take %lld tokens; use --length %lld or more",
                           (long long)length, task, (long long)base, (long long)base + 64);

    /* Take sentences while the estimated total stays within the target. */
    int64_t cap = 1024, k = 0;
    int64_t *cum = lrsa_malloc((size_t)cap * sizeof(int64_t));
    cum[0] = 0;
    for (;;) {
        int64_t t = sent_tokens(b, h, cache, (start + k) % h->n, e);
        if (t < 0) {
            free(cum);
            return -1;
        }
        if (base + cum[k] + t > length) break;
        if (k + 2 > cap) {
            cap *= 2;
            cum = lrsa_realloc(cum, (size_t)cap * sizeof(int64_t));
        }
        cum[k + 1] = cum[k] + t;
        k++;
    }
    /* Token counts are not exactly additive across sentence joins: build, and drop sentences
     * from the end until the real sample fits. */
    for (;;) {
        user = compose(&it, needle_tokens, h, start, k, cum);
        rc = build(b, user, it.answer, &s, e);
        free(user);
        if (rc != 0) break;
        if (s.ids.n <= length || k == 0) {
            rc = lrsa_dataset_writer_add(w, s.ids.v, s.mask.v, s.ids.n, s.prompt_len, it.answer, e);
            if (rc == 0) rc = add_needle_spans(w, b->tok, &s, &it, e);
            lrsa_sample_free(&s);
            break;
        }
        int64_t over = s.ids.n - length;
        lrsa_sample_free(&s);
        int64_t drop_to = k;
        while (drop_to > 0 && cum[k] - cum[drop_to] < over) drop_to--;
        k = drop_to;
    }
    free(cum);
    return rc;
}

int lrsa_synth_generate(const lrsa_synth_config *cfg, const lrsa_sample_builder *b,
                        const lrsa_haystack *h, lrsa_dataset_writer *w, lrsa_err *e) {
    lrsa_synth_tasks tasks;
    if (lrsa_synth_tasks_parse(cfg->task, &tasks, e) != 0) return -1;
    if (cfg->n <= 0) return lrsa_errorf(e, "--n must be a positive number of samples");
    if (cfg->length <= 0) return lrsa_errorf(e, "--length must be a positive token count");
    for (int i = 0; i < cfg->n_depths; i++)
        if (!(cfg->depths[i] >= 0.0 && cfg->depths[i] <= 1.0))
            return lrsa_errorf(e, "--depth/--depths: %g is not a fraction in [0, 1]",
                               cfg->depths[i]);
    if (h->n <= 0) return lrsa_errorf(e, "the haystack has no sentences");
    int32_t *cache = lrsa_malloc((size_t)h->n * sizeof(int32_t));
    for (int64_t i = 0; i < h->n; i++) cache[i] = -1;
    lrsa_synth_plan plan;
    lrsa_synth_plan_make(&plan, cfg->n, tasks.n, cfg->length, cfg->length_max, cfg->seed);
    lrsa_rng r;
    lrsa_rng_seed(&r, cfg->seed);
    int rc = 0;
    for (int64_t i = 0; i < cfg->n && rc == 0; i++) {
        const char *task = tasks.name[plan.task[i]];
        rc = one_sample(cfg, task, plan.length[i], b, h, cache, &r, i, w, e);
        if (rc == 0 && tasks.n > 1)
            lrsa_dataset_writer_set_task(w, lrsa_dataset_writer_count(w) - 1, task);
    }
    lrsa_synth_plan_free(&plan);
    free(cache);
    return rc;
}
