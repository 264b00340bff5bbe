/* Warnings for presses that do less than their settings say (see press_notes.h). */
#include "eval/run/press_notes.h"

#include <stdio.h>

#include "eval/run/grid_config.h"

int64_t lrsa_lagkv_min_compressed_len(const lrsa_lagkv_params *p) {
    return (int64_t)p->sink + 2 * (int64_t)p->lag;
}

int lrsa_lagkv_short_note(const lrsa_lagkv_params *p, const int64_t *lens, int64_t n,
                          const char *what, const char *effect, const char *sink_name,
                          const char *lag_name, char *buf, size_t cap) {
    const int64_t need = lrsa_lagkv_min_compressed_len(p);
    int64_t n_short = 0, lo = 0, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        if (lens[i] >= need) continue;
        if (n_short == 0 || lens[i] < lo) lo = lens[i];
        if (n_short == 0 || lens[i] > hi) hi = lens[i];
        n_short++;
    }
    if (n_short == 0) return 0;
    int k = n == 1 ? snprintf(buf, cap, "the %s (%lld tokens) is", what, (long long)lo)
                   : snprintf(buf, cap, "%lld of %lld %ss (%lld to %lld tokens) are",
                              (long long)n_short, (long long)n, what, (long long)lo, (long long)hi);
    if (k >= 0 && (size_t)k < cap)
        k += snprintf(buf + k, cap - (size_t)k,
                      " shorter than sink + 2*lag = %d + 2*%d = %lld tokens, the shortest "
                      "sequence LagKV compresses: %s; ",
                      p->sink, p->lag, (long long)need, effect);
    if (k < 0 || (size_t)k >= cap) return 1;
    /* lag L compresses a sequence of lo tokens once lo >= sink + 2L */
    const int64_t lag = (lo - p->sink) / 2;
    if (lag >= 1)
        snprintf(buf + k, cap - (size_t)k,
                 "%s %lld or less (with %s %d) would compress all of them", lag_name,
                 (long long)lag, sink_name, p->sink);
    else
        snprintf(buf + k, cap - (size_t)k,
                 "the shortest is under sink + 2 tokens, so lower %s (now %d) to compress it",
                 sink_name, p->sink);
    return 1;
}

int lrsa_kvpress_tail_note(const lrsa_press_spec *s, const int64_t *lens, int64_t n, char *buf,
                           size_t cap) {
    if (s->method != LRSA_PRESS_LAGKV_KVPRESS) return 0;
    const int64_t S = s->lagkv.sink, L = s->lagkv.lag;
    int64_t n_over = 0, ex_T = 0, ex_keep = 0, ex_tail = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t T = lens[i];
        if (T < S + 2 * L) continue; /* the short-sequence fallback: the other note */
        const int64_t parts = (T - S) / L, tail = T - S - (parts - 1) * L;
        const int64_t keep = lrsa_press_n_keep(s, T);
        if (keep >= S + tail) continue;
        if (n_over++ == 0) ex_T = T, ex_keep = keep, ex_tail = tail;
    }
    if (n_over == 0) return 0;
    snprintf(buf, cap,
             "lagkv-kvpress: in %lld of %lld sequences the budget is smaller than the sink + the "
             "unscored tail (e.g. %lld of %lld rows kept, sink %lld + tail %lld: the last "
             "partition and the leftover). lrsa protects the sink rows (always kept) and fills "
             "the rest of the budget with the earliest tail rows (all score 1.0; equal scores go "
             "to the lower row), so no scored row is kept and the most recent rows are dropped; "
             "kvpress's LagKVPress scores sink and tail alike (1.0) and its top-k among those "
             "equal scores drops some sink rows instead, so the two tools keep different rows "
             "here (docs/EVAL.md)",
             (long long)n_over, (long long)n, (long long)ex_keep, (long long)ex_T, (long long)S,
             (long long)ex_tail);
    return 1;
}

void lrsa_press_warn_lengths_at(const lrsa_press_spec *s, const int64_t *lens, int64_t n,
                                const char *what, const char *where, const char *sink_name,
                                const char *lag_name) {
    char msg[1024];
    const char *sep = where ? ": " : "";
    where = where ? where : "";
    /* at keep 1 nothing is compressed whatever the length: nothing to warn about */
    const int compresses = s->method == LRSA_PRESS_LAGKV ? lrsa_lagkv_k(&s->lagkv) < s->lagkv.lag
                                                         : s->tokens_per_layer > 0 || s->keep < 1.0;
    if ((s->method == LRSA_PRESS_LAGKV || s->method == LRSA_PRESS_LAGKV_KVPRESS) && compresses &&
        lrsa_lagkv_short_note(&s->lagkv, lens, n, what,
                              s->method == LRSA_PRESS_LAGKV
                                  ? "LagKV keeps every row there (100 %, as with no press)"
                                  : "lagkv-kvpress keeps the sink and the most recent rows there "
                                    "(StreamingLLM's rule), not LagKV's choice",
                              sink_name, lag_name, msg, sizeof msg))
        fprintf(stderr, "lrsa: warning: %s%s%s\n", where, sep, msg);
    if (lrsa_kvpress_tail_note(s, lens, n, msg, sizeof msg))
        fprintf(stderr, "lrsa: note: %s%s%s\n", where, sep, msg);
}

void lrsa_press_warn_lengths(const lrsa_press_spec *s, const int64_t *lens, int64_t n,
                             const char *what) {
    lrsa_press_warn_lengths_at(s, lens, n, what, NULL, "--sink", "--lag");
}

void lrsa_grid_warn_lengths(const lrsa_grid_config *c, lrsa_prefill_mode prefill,
                            const int64_t *lens, int64_t n, const char *what, const char *where) {
    int smallest = 0; /* the budget that compresses most: token budgets (keep 0) first */
    for (int b = 1; b < c->n_budgets; b++)
        if (c->budgets[b].keep < c->budgets[smallest].keep) smallest = b;
    for (int m = 0; m < c->n_methods; m++) {
        lrsa_press_spec s;
        lrsa_grid_spec_at(&c->methods[m], &c->budgets[smallest], prefill, &s);
        char at[768];
        snprintf(at, sizeof at, "%s, method %s", where, c->methods[m].label);
        lrsa_press_warn_lengths_at(&s, lens, n, what, at, "sink", "lag");
    }
}
