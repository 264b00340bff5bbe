#include "eval/run/metrics.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Lower-case (ASCII), whitespace runs -> one space, trimmed: the containment normalisation. */
static char *fold(const char *s) {
    char *out = lrsa_malloc(strlen(s) + 1), *o = out;
    int pending_space = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (is_space(*p)) {
            pending_space = o != out;
            continue;
        }
        if (pending_space) *o++ = ' ';
        pending_space = 0;
        *o++ = (char)tolower(*p);
    }
    *o = '\0';
    return out;
}

static int is_article(const char *w, size_t n) {
    return (n == 1 && w[0] == 'a') || (n == 2 && !strncmp(w, "an", 2)) ||
           (n == 3 && !strncmp(w, "the", 3));
}

char *lrsa_squad_normalize(const char *s) {
    /* lower-case and drop ASCII punctuation, then rebuild word by word without articles */
    size_t n = strlen(s);
    char *tmp = lrsa_malloc(n + 1), *t = tmp;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!(*p < 128 && ispunct(*p))) *t++ = (char)tolower(*p);
    *t = '\0';
    char *out = lrsa_malloc(n + 1), *o = out;
    const char *p = tmp;
    for (;;) {
        while (*p && is_space((unsigned char)*p)) p++;
        if (!*p) break;
        const char *w = p;
        while (*p && !is_space((unsigned char)*p)) p++;
        size_t wn = (size_t)(p - w);
        if (is_article(w, wn)) continue;
        if (o != out) *o++ = ' ';
        memcpy(o, w, wn);
        o += wn;
    }
    *o = '\0';
    free(tmp);
    return out;
}

double lrsa_exact_match(const char *prediction, const char *reference) {
    char *a = lrsa_squad_normalize(prediction), *b = lrsa_squad_normalize(reference);
    double r = strcmp(a, b) == 0 ? 1.0 : 0.0;
    free(a);
    free(b);
    return r;
}

/* Splits a normalised string (single spaces, no leading/trailing) into words in place. */
static int split_words(char *s, char **words, int cap) {
    int n = 0;
    for (char *p = s; *p && n < cap;) {
        words[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) break;
        *sp = '\0';
        p = sp + 1;
    }
    return n;
}

double lrsa_token_f1(const char *prediction, const char *reference) {
    char *a = lrsa_squad_normalize(prediction), *b = lrsa_squad_normalize(reference);
    size_t cap_a = strlen(a) / 2 + 2, cap_b = strlen(b) / 2 + 2;
    char **wa = lrsa_malloc(cap_a * sizeof *wa), **wb = lrsa_malloc(cap_b * sizeof *wb);
    int na = split_words(a, wa, (int)cap_a), nb = split_words(b, wb, (int)cap_b);
    double f1 = 0.0;
    if (na == 0 || nb == 0) {
        f1 = na == nb ? 1.0 : 0.0; /* SQuAD: both empty count as a match */
    } else {
        /* common = size of the multiset intersection: each reference word used once */
        char *used = lrsa_calloc((size_t)nb, 1);
        int common = 0;
        for (int i = 0; i < na; i++)
            for (int j = 0; j < nb; j++)
                if (!used[j] && !strcmp(wa[i], wb[j])) {
                    used[j] = 1;
                    common++;
                    break;
                }
        free(used);
        if (common > 0) {
            double prec = (double)common / na, rec = (double)common / nb;
            f1 = 2.0 * prec * rec / (prec + rec);
        }
    }
    free(wa);
    free(wb);
    free(a);
    free(b);
    return f1;
}

/* Counts the non-empty parts and how many of them the prediction contains. */
static void contained(const char *prediction, const char *const *refs, int n, int *parts,
                      int *hits) {
    char *p = fold(prediction);
    *parts = *hits = 0;
    for (int i = 0; i < n; i++) {
        char *r = fold(refs[i]);
        if (r[0]) {
            (*parts)++;
            *hits += strstr(p, r) != NULL;
        }
        free(r);
    }
    free(p);
}

double lrsa_string_match_all(const char *prediction, const char *const *refs, int n) {
    int parts, hits;
    contained(prediction, refs, n, &parts, &hits);
    return parts ? (double)hits / parts : 0.0;
}

double lrsa_string_match_part(const char *prediction, const char *const *refs, int n) {
    int parts, hits;
    contained(prediction, refs, n, &parts, &hits);
    return hits > 0 ? 1.0 : 0.0;
}

void lrsa_score_answer(const char *prediction, const char *reference, const char *sep,
                       lrsa_answer_scores *out) {
    /* split the reference into parts at every occurrence of sep */
    char *copy = lrsa_strdup(reference);
    size_t seplen = sep ? strlen(sep) : 0;
    int cap = 1;
    for (const char *q = copy; seplen && (q = strstr(q, sep)) != NULL; q += seplen) cap++;
    const char **parts = lrsa_malloc((size_t)cap * sizeof *parts);
    int n = 0;
    char *p = copy;
    parts[n++] = p;
    while (seplen && (p = strstr(p, sep)) != NULL) {
        *p = '\0';
        p += seplen;
        parts[n++] = p;
    }
    out->match_all = lrsa_string_match_all(prediction, parts, n);
    out->match_part = lrsa_string_match_part(prediction, parts, n);
    out->exact = lrsa_exact_match(prediction, reference);
    out->f1 = lrsa_token_f1(prediction, reference);
    free(parts);
    free(copy);
}
