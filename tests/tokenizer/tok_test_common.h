/* Helpers shared by the tokenizer tests: fixture paths, the parity corpus and the encode half of
 * a parity check. */
#ifndef LRSA_TOK_TEST_COMMON_H
#define LRSA_TOK_TEST_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "data/tokenizer.h"
#include "test_util.h"

/* A cmocka test `name` that runs fn with *state = the fixture name (one test per fixture of a
 * parity check, no wrapper function per fixture). */
#define TOK_FIXTURE_TEST(name, fn, fixture)                                                        \
    { name, fn, NULL, NULL, (void *)(fixture) }

#define TOK_MARKER    "\n__lrsa_tokenizer_case__\n"
#define TOK_MAX_CASES 256

typedef struct tok_corpus {
    char *buf;
    const char *text[TOK_MAX_CASES];
    size_t len[TOK_MAX_CASES];
    int n;
} tok_corpus;

static inline const char *tok_find(const char *p, const char *end, const char *needle, size_t nl) {
    for (; p + nl <= end; p++)
        if (memcmp(p, needle, nl) == 0) return p;
    return NULL;
}

/* Cases are separated by a marker line; one case holds a NUL byte, so no str* functions. */
static inline void tok_load_corpus_file(tok_corpus *c, const char *path) {
    lrsa_err e;
    size_t n;
    c->buf = lrsa_read_file(path, &n, &e);
    if (!c->buf) fail_msg("%s", e.msg);
    c->n = 0;
    const char *p = c->buf, *end = c->buf + n;
    const size_t ml = strlen(TOK_MARKER);
    for (;;) {
        assert_true(c->n < TOK_MAX_CASES);
        const char *m = tok_find(p, end, TOK_MARKER, ml);
        c->text[c->n] = p;
        c->len[c->n] = m ? (size_t)(m - p) : (size_t)(end - p);
        c->n++;
        if (!m) break;
        p = m + ml;
    }
}

static inline void tok_load_corpus(tok_corpus *c) {
    tok_load_corpus_file(c, LRSA_TEST_DATA "/tokenizer/corpus.txt");
}

/* Parses one line of space-separated ids. */
static inline int tok_parse_ids(const char *line, int32_t *ids, int cap) {
    int n = 0;
    const char *p = line;
    while (*p && *p != '\n') {
        char *end;
        long v = strtol(p, &end, 10);
        assert_true(end != p);
        assert_true(n < cap);
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ' ') p++;
    }
    return n;
}

/* The next line of a text (NULL at the end). */
static inline const char *tok_next_line(const char *line) {
    line = strchr(line, '\n');
    return line && line[1] ? line + 1 : NULL;
}

static inline lrsa_tokenizer *tok_fixture(const char *name) {
    char path[512];
    snprintf(path, sizeof path, LRSA_TEST_DATA "/tokenizer/%s/tokenizer.json", name);
    lrsa_err e;
    lrsa_tokenizer *t = lrsa_tokenizer_load(path, &e);
    if (!t) fail_msg("%s", e.msg);
    return t;
}

static inline int tok_ids_equal(const lrsa_ids *a, const lrsa_ids *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, (size_t)a->n * sizeof *a->v) == 0);
}
static inline int tok_ids_match(const lrsa_ids *got, const int32_t *want, int nw) {
    return got->n == nw && (nw == 0 || memcmp(got->v, want, (size_t)nw * sizeof *want) == 0);
}

static inline void tok_print_ids(const char *label, const int32_t *v, int64_t n) {
    fprintf(stderr, "  %s:", label);
    for (int64_t i = 0; i < n; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, "\n");
}

/* The encode half of a parity check: encodes case k of c with added tokens into *got and
 * returns how many checks differ from Hugging Face (each printed to stderr, tagged with name):
 * the ids must be want[0..nw), and where plain_too (the text holds no added-token string) the
 * plain encode must give the same ids. */
static inline int tok_check_encode(const lrsa_tokenizer *t, const char *name, const tok_corpus *c,
                                   int k, const int32_t *want, int nw, int plain_too,
                                   lrsa_ids *got) {
    lrsa_err e;
    int failures = 0;
    assert_int_equal(lrsa_tokenizer_encode_with_special(t, c->text[k], c->len[k], got, &e), 0);
    if (!tok_ids_match(got, want, nw)) {
        failures++;
        fprintf(stderr, "%s case %d [%.*s] ids differ\n", name, k, (int)c->len[k], c->text[k]);
        tok_print_ids("want", want, nw);
        tok_print_ids("got ", got->v, got->n);
    }
    if (plain_too) {
        lrsa_ids plain = {0};
        assert_int_equal(lrsa_tokenizer_encode(t, c->text[k], c->len[k], &plain, &e), 0);
        if (!tok_ids_equal(&plain, got)) {
            failures++;
            fprintf(stderr, "%s case %d: plain encode differs\n", name, k);
        }
        lrsa_ids_free(&plain);
    }
    return failures;
}
#endif
