/* Decoding for SentencePiece-style tokenizers: the token strings go through the decoder steps
 * of tokenizer.json exactly as Hugging Face's decoders treat them (Replace, ByteFallback, Fuse,
 * Strip, Metaspace), and the streaming decoder follows HF's DecodeStream. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

#define REPLACEMENT_CHAR "\xEF\xBF\xBD" /* U+FFFD */

typedef struct toklist {
    char **s;
    size_t *len;
    int n, cap;
} toklist;

static void tl_push(toklist *l, char *s, size_t len) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->s = lrsa_realloc(l->s, (size_t)l->cap * sizeof *l->s);
        l->len = lrsa_realloc(l->len, (size_t)l->cap * sizeof *l->len);
    }
    l->s[l->n] = s;
    l->len[l->n++] = len;
}

static char *copy(const char *s, size_t n) {
    char *c = lrsa_malloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

static void tl_free(toklist *l) {
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    free(l->len);
    memset(l, 0, sizeof *l);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The byte of a "<0xNN>" token, or -1. HF parses NN with Rust's u8::from_str_radix(.., 16),
 * which also takes a leading '+' ("<0x+A>" is byte 10). */
static int byte_of_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = s[3] == '+' ? 4 : 3; i < 5; i++) {
        int h = hex_digit(s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += (size_t)lrsa_utf8_next(s + i, n - i, &cp);
        if (cp < 0) return 0;
    }
    return 1;
}

/* Runs of byte tokens become their bytes when those are valid UTF-8, else one U+FFFD per
 * byte; other tokens pass through. */
static void flush_run(toklist *out, const unsigned char *run, size_t n) {
    if (valid_utf8(run, n))
        tl_push(out, copy((const char *)run, n), n);
    else
        for (size_t k = 0; k < n; k++) tl_push(out, copy(REPLACEMENT_CHAR, 3), 3);
}

static void byte_fallback(toklist *l) {
    toklist out = {0};
    unsigned char *run = lrsa_malloc((size_t)l->n + 1); /* at most one byte per token */
    size_t nrun = 0;
    for (int i = 0; i < l->n; i++) {
        int b = byte_of_token(l->s[i], l->len[i]);
        if (b >= 0) {
            run[nrun++] = (unsigned char)b;
            continue;
        }
        if (nrun) flush_run(&out, run, nrun), nrun = 0;
        tl_push(&out, copy(l->s[i], l->len[i]), l->len[i]);
    }
    if (nrun) flush_run(&out, run, nrun);
    free(run);
    tl_free(l);
    *l = out;
}

static void fuse(toklist *l) {
    size_t total = 0;
    for (int i = 0; i < l->n; i++) total += l->len[i];
    char *all = lrsa_malloc(total + 1);
    size_t o = 0;
    for (int i = 0; i < l->n; i++) memcpy(all + o, l->s[i], l->len[i]), o += l->len[i];
    all[o] = 0;
    tl_free(l);
    tl_push(l, all, total);
}

static size_t char_len(const char *s, size_t n) {
    int32_t cp;
    return (size_t)lrsa_utf8_next((const unsigned char *)s, n, &cp);
}

/* Start of the last character of s[0..n) (n > 0). */
static size_t last_char(const char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80 && n - i < 4) i--;
    return char_len(s + i, n - i) == n - i ? i : n - 1;
}

/* HF's Strip: up to `start` leading and `stop` trailing copies of one character. */
static void strip(toklist *l, const lrsa_dec_step *st) {
    size_t cl = strlen(st->content);
    for (int i = 0; i < l->n; i++) {
        const char *s = l->s[i];
        size_t a = 0, b = l->len[i];
        for (int k = 0; k < st->start && a < b; k++) {
            if (b - a < cl || memcmp(s + a, st->content, cl) != 0) break;
            a += char_len(s + a, b - a);
        }
        for (int k = 0; k < st->stop && b > a; k++) {
            size_t c = last_char(s, b);
            if (c < a || b - c != cl || memcmp(s + c, st->content, cl) != 0) break;
            b = c;
        }
        char *n = copy(s + a, b - a);
        free(l->s[i]);
        l->s[i] = n;
        l->len[i] = b - a;
    }
}

/* Per token: each replacement character becomes a space, or disappears in the first token
 * unless the prepend scheme is "never". */
static void metaspace(toklist *l, const lrsa_dec_step *st) {
    for (int i = 0; i < l->n; i++) {
        const char *content = i == 0 && st->prepend != LRSA_PREPEND_NEVER ? "" : " ";
        size_t n;
        char *r = lrsa_replace_all(l->s[i], l->len[i], st->pattern, content, &n);
        free(l->s[i]);
        l->s[i] = r;
        l->len[i] = n;
    }
}

char *lrsa_spm_decode_n(const lrsa_tokenizer *t, const int32_t *ids, int64_t n, int skip_special,
                        size_t *out_len) {
    toklist l = {0};
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_vocab || !t->token[id]) { /* outside the vocabulary */
            tl_push(&l, copy(REPLACEMENT_CHAR, 3), 3);
            continue;
        }
        if (skip_special && t->special[id]) continue;
        /* the token's text; a normalized added token decodes as its normalized form (HF) */
        tl_push(&l, copy(t->bytes[id], (size_t)t->bytes_len[id]), (size_t)t->bytes_len[id]);
    }
    for (int k = 0; k < t->n_dec; k++) {
        const lrsa_dec_step *st = &t->dec[k];
        switch (st->kind) {
            case LRSA_DEC_REPLACE:
                for (int i = 0; i < l.n; i++) {
                    size_t m;
                    char *r = lrsa_replace_all(l.s[i], l.len[i], st->pattern, st->content, &m);
                    free(l.s[i]);
                    l.s[i] = r;
                    l.len[i] = m;
                }
                break;
            case LRSA_DEC_BYTE_FALLBACK:
                byte_fallback(&l);
                break;
            case LRSA_DEC_FUSE:
                fuse(&l);
                break;
            case LRSA_DEC_STRIP:
                strip(&l, st);
                break;
            case LRSA_DEC_METASPACE:
                metaspace(&l, st);
                break;
        }
    }
    /* the decoded strings are joined; without a decoder HF joins the tokens with spaces */
    size_t total = 0;
    for (int i = 0; i < l.n; i++) total += l.len[i] + 1;
    char *text = lrsa_malloc(total + 1);
    size_t o = 0;
    for (int i = 0; i < l.n; i++) {
        if (i && !t->has_decoder) text[o++] = ' ';
        memcpy(text + o, l.s[i], l.len[i]);
        o += l.len[i];
    }
    text[o] = 0;
    tl_free(&l);
    if (out_len) *out_len = o;
    return text;
}

/* ---- streaming: HF's DecodeStream ----
 * The window holds the ids whose decoding is needed: the first prefix_index of them decode to
 * the text already returned (the prefix), the rest are new. A step decodes the window and
 * returns what lies past the prefix, unless that is nothing or ends in U+FFFD (an unfinished
 * character); then the window drops the prefix ids and the new ids become the prefix. */
static int ends_in_fffd(const char *s, size_t n) {
    return n >= 3 && memcmp(s + n - 3, REPLACEMENT_CHAR, 3) == 0;
}

/* Copies s[0..n) into out (cap bytes, NUL-terminated), cut at a character boundary. */
static int put_out(const char *s, size_t n, char *out, size_t cap) {
    if (cap == 0) return 0;
    if (n > cap - 1) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    memcpy(out, s, n);
    out[n] = 0;
    return (int)n;
}

/* The text past the prefix when the whole window is decoded (force: even if it ends in an
 * unfinished character); then the window keeps only the ids after the old prefix. */
static int stream_step(lrsa_stream_decoder *d, int force, char *out, size_t cap) {
    size_t plen, slen;
    char *prefix = lrsa_spm_decode_n(d->tok, d->window, d->prefix_index, d->skip_special, &plen);
    char *s = lrsa_spm_decode_n(d->tok, d->window, d->n_window, d->skip_special, &slen);
    int written = 0;
    if (slen > plen && (force || !ends_in_fffd(s, slen))) {
        /* HF reports an error when the prefix changed; we return what follows the part that
         * still agrees, so no text is lost */
        size_t same = 0;
        while (same < plen && s[same] == prefix[same]) same++;
        written = put_out(s + same, slen - same, out, cap);
        memmove(d->window, d->window + d->prefix_index,
                (size_t)(d->n_window - d->prefix_index) * sizeof *d->window);
        d->n_window -= d->prefix_index;
        d->prefix_index = d->n_window;
    } else if (cap) {
        out[0] = 0;
    }
    free(prefix);
    free(s);
    return written;
}

int lrsa_spm_stream_push(lrsa_stream_decoder *d, int32_t id, char *out, size_t cap) {
    size_t plen;
    free(lrsa_spm_decode_n(d->tok, d->window, d->prefix_index, d->skip_special, &plen));
    if (plen == 0 && d->n_window > 0) { /* nothing to trim yet: the window so far is prefix */
        size_t n;
        char *s = lrsa_spm_decode_n(d->tok, d->window, d->n_window, d->skip_special, &n);
        if (!ends_in_fffd(s, n)) d->prefix_index = d->n_window;
        free(s);
    }
    int written = 0;
    if (d->n_window == LRSA_STREAM_WINDOW) {
        /* a long run of ids that decode to nothing or to unfinished characters: give out what
         * there is and keep only the last id as context */
        written = stream_step(d, 1, out, cap);
        d->window[0] = d->window[d->n_window - 1];
        d->n_window = d->prefix_index = 1;
        out += written;
        cap = cap > (size_t)written ? cap - (size_t)written : 0;
    }
    d->window[d->n_window++] = id;
    return written + stream_step(d, 0, out, cap);
}

int lrsa_spm_stream_flush(lrsa_stream_decoder *d, char *out, size_t cap) {
    int n = d->n_window > d->prefix_index ? stream_step(d, 1, out, cap) : 0;
    if (n == 0 && cap) out[0] = 0;
    d->n_window = d->prefix_index = 0;
    return n;
}
