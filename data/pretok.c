/* Normalization (NFC for Qwen2) and pre-tokenization: each stage splits the pieces of the
 * previous one; the final pieces go through BPE. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "data/tokenizer_internal.h"

typedef struct pretok_ctx {
    const lrsa_tokenizer *t;
    pcre2_match_data *md[LRSA_MAX_PRETOK_STAGES];
    lrsa_ids *out;
    const unsigned char *origin; /* where the input starts, or NULL when this text does not */
} pretok_ctx;

static void run_stage(pretok_ctx *c, int stage, const unsigned char *s, size_t n);

static void split_regex(pretok_ctx *c, int stage, const unsigned char *s, size_t n) {
    const lrsa_pretok_stage *st = &c->t->stages[stage];
    pcre2_match_data *md = c->md[stage];
    size_t pos = 0, gap = 0; /* gap: start of text not yet covered by a match */
    while (pos < n) {
        int rc = pcre2_match(st->re, s, n, pos, 0, md, NULL);
        if (rc < 0) break; /* no more matches (or an engine limit): the rest is one gap */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (b == a) { /* an empty match splits nothing; move past one character */
            int32_t cp;
            pos = a + (size_t)lrsa_utf8_next(s + a, n - a, &cp);
            continue;
        }
        if (a > gap) run_stage(c, stage + 1, s + gap, a - gap);
        run_stage(c, stage + 1, s + a, b - a);
        pos = gap = b;
    }
    if (gap < n) run_stage(c, stage + 1, s + gap, n - gap);
}

/* HF's Digits pre-tokenizer tests Rust's char::is_numeric: general category Nd, Nl or No
 * (so Arabic-Indic digits, Roman numerals and superscripts are split off too). */
static int numeric_at(const unsigned char *s, size_t n, size_t *len) {
    int32_t cp;
    *len = (size_t)lrsa_utf8_next(s, n, &cp);
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL ||
           cat == UTF8PROC_CATEGORY_NO || (cp >= 0x10000 && lrsa_hf_extra_number(cp));
}

static void split_digits(pretok_ctx *c, int stage, const unsigned char *s, size_t n, int each) {
    size_t i = 0;
    while (i < n) {
        size_t k;
        int digit = numeric_at(s + i, n - i, &k);
        size_t j = i + k;
        if (!(digit && each))
            while (j < n && numeric_at(s + j, n - j, &k) == digit) j += k;
        run_stage(c, stage + 1, s + i, j - i);
        i = j;
    }
}

/* Hugging Face's Metaspace: every space becomes the replacement; the replacement is prepended
 * (scheme permitting) unless the piece starts with it; with split, a new piece starts at each
 * replacement character (a run of them gives one piece each, the last one keeps the word). */
static void split_metaspace(pretok_ctx *c, int stage, const unsigned char *s, size_t n) {
    const lrsa_pretok_stage *st = &c->t->stages[stage];
    const char *rep = st->pattern;
    size_t rl = strlen(rep), spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    /* HF tests "starts with the replacement" after the spaces are replaced */
    int starts_with_rep = s[0] == ' ' || (n >= rl && memcmp(s, rep, rl) == 0);
    int prepend = !starts_with_rep && (st->prepend == LRSA_PREPEND_ALWAYS ||
                                       (st->prepend == LRSA_PREPEND_FIRST && s == c->origin));
    size_t cap = n + spaces * rl + rl;
    unsigned char small[256];
    unsigned char *buf = cap <= sizeof small ? small : lrsa_malloc(cap);
    size_t m = 0;
    if (prepend) memcpy(buf, rep, rl), m = rl;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ')
            memcpy(buf + m, rep, rl), m += rl;
        else
            buf[m++] = s[i];
    }
    if (!st->split) {
        run_stage(c, stage + 1, buf, m);
    } else {
        size_t piece = 0;
        for (size_t i = rl; i + rl <= m; i++)
            if (memcmp(buf + i, rep, rl) == 0) {
                run_stage(c, stage + 1, buf + piece, i - piece);
                piece = i;
                i += rl - 1;
            }
        run_stage(c, stage + 1, buf + piece, m - piece);
    }
    if (buf != small) free(buf);
}

static void run_stage(pretok_ctx *c, int stage, const unsigned char *s, size_t n) {
    if (n == 0) return;
    if (stage == c->t->n_stages) {
        if (c->t->char_level)
            lrsa_spm_bpe(c->t, s, n, c->out);
        else
            lrsa_bpe_piece(c->t, s, n, c->out);
        return;
    }
    switch (c->t->stages[stage].kind) {
        case LRSA_PRETOK_REGEX:
            split_regex(c, stage, s, n);
            break;
        case LRSA_PRETOK_DIGITS_EACH:
            split_digits(c, stage, s, n, 1);
            break;
        case LRSA_PRETOK_DIGITS_RUNS:
            split_digits(c, stage, s, n, 0);
            break;
        case LRSA_PRETOK_METASPACE:
            split_metaspace(c, stage, s, n);
            break;
    }
}

typedef struct outbuf {
    unsigned char *v;
    size_t n, cap;
} outbuf;

static void out_put(outbuf *o, const unsigned char *s, size_t n) {
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->v = lrsa_realloc(o->v, o->cap);
    }
    memcpy(o->v + o->n, s, n);
    o->n += n;
}

/* NFC of s[0..n): valid UTF-8 runs through utf8proc, invalid bytes copied as they are (they
 * are encoded byte by byte later). */
static void nfc_span(const unsigned char *s, size_t n, outbuf *o) {
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        int32_t cp;
        while (j < n) { /* maximal valid run */
            int k = lrsa_utf8_next(s + j, n - j, &cp);
            if (cp < 0) break;
            j += (size_t)k;
        }
        if (j > i) {
            utf8proc_uint8_t *norm = NULL;
            utf8proc_ssize_t m = utf8proc_map(s + i, (utf8proc_ssize_t)(j - i), &norm,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (m >= 0)
                out_put(o, norm, (size_t)m);
            else
                out_put(o, s + i, j - i); /* cannot happen for valid UTF-8; keep the text */
            free(norm);
        }
        if (j < n) out_put(o, s + j++, 1);
        i = j;
    }
}

/* NFC of the whole text, or NULL when it is pure ASCII (already NFC). ASCII is copied
 * directly and only the non-ASCII runs, each with the ASCII character before it, go through
 * utf8proc: an ASCII character can be the base a combining mark composes with, but never the
 * second half of a composition, and it is a starter, so nothing reorders across it. */
unsigned char *lrsa_nfc_text(const unsigned char *s, size_t n, size_t *out_n) {
    size_t i = 0;
    while (i < n && s[i] < 0x80) i++;
    if (i == n) return NULL;
    outbuf o = {.v = lrsa_malloc(n + 16), .cap = n + 16};
    size_t done = 0; /* s[0..done) is in the output */
    while (i < n) {
        size_t start = i > done ? i - 1 : i; /* include the ASCII base character */
        out_put(&o, s + done, start - done);
        size_t j = i;
        while (j < n && s[j] >= 0x80) j++;
        nfc_span(s + start, j - start, &o);
        done = j;
        i = j;
        while (i < n && s[i] < 0x80) i++;
    }
    out_put(&o, s + done, n - done);
    *out_n = o.n;
    return o.v;
}

int lrsa_pretok_encode(const lrsa_tokenizer *t, const char *text, size_t len, lrsa_ids *out,
                       lrsa_err *e) {
    if (len == 0) return 0;
    const unsigned char *s = (const unsigned char *)text;
    unsigned char *norm = NULL;
    if (t->nfc) {
        size_t m;
        norm = lrsa_nfc_text(s, len, &m);
        if (norm) s = norm, len = m;
    }
    lrsa_pretok_run(t, s, len, 1, out);
    free(norm);
    return 0;
}

void lrsa_pretok_run(const lrsa_tokenizer *t, const unsigned char *s, size_t n, int at_origin,
                     lrsa_ids *out) {
    pretok_ctx c = {.t = t, .out = out, .origin = at_origin ? s : NULL};
    for (int i = 0; i < t->n_stages; i++)
        if (t->stages[i].kind == LRSA_PRETOK_REGEX) {
            c.md[i] = pcre2_match_data_create_from_pattern(t->stages[i].re, NULL);
            LRSA_CHECK(c.md[i] != NULL, "out of memory");
        }
    run_stage(&c, 0, s, n);
    for (int i = 0; i < t->n_stages; i++) pcre2_match_data_free(c.md[i]);
}
