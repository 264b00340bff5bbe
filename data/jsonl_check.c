/* What cJSON leaves unchecked in a JSONL line, checked before it is parsed (see jsonl.h):
 * cJSON copies any byte into its strings, so invalid UTF-8 would reach the tokenizer (which
 * turns each bad byte into U+FFFD without a word); it decodes the escape \u0000 into a NUL that
 * ends the C string, so the rest of the field would vanish; and it rejects a lone UTF-16
 * surrogate escape with the same "invalid JSON" as a missing brace. One pass over the line finds
 * each of these and names the field it is in (messages[1].content), the escape or byte, and the
 * column. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

#include "data/jsonl.h"

enum { MAX_DEPTH = 16, KEY_CAP = 48 };

/* Where the scan is: one level per open object or array. */
typedef struct scan_level {
    int is_object;
    int expect_key; /* objects: the next string is a key */
    long index;     /* arrays: the current element */
    char key[KEY_CAP];
} scan_level;

typedef struct scanner {
    scan_level level[MAX_DEPTH];
    int depth; /* levels beyond MAX_DEPTH are counted, not described */
} scanner;

/* "messages[1].content" (a key being read names itself), or "" at the top level. */
static const char *field_path(const scanner *s, int in_key, const char *key, char *buf,
                              size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    const int shown = s->depth < MAX_DEPTH ? s->depth : MAX_DEPTH;
    for (int i = 0; i < shown && n < cap; i++) {
        const scan_level *l = &s->level[i];
        const int last = i == shown - 1;
        if (l->is_object && last && in_key)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "." : "", key);
        else if (l->is_object && l->key[0])
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "." : "", l->key);
        else if (!l->is_object)
            n += (size_t)snprintf(buf + n, cap - n, "[%ld]", l->index);
    }
    return buf;
}

static int hex4(const char *p, const char *end, unsigned *out) {
    if (end - p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        if (!isxdigit((unsigned char)p[i])) return -1;
        v = v * 16 + (unsigned)(isdigit((unsigned char)p[i])
                                    ? p[i] - '0'
                                    : tolower((unsigned char)p[i]) - 'a' + 10);
    }
    *out = v;
    return 0;
}

/* Valid UTF-8 sequence at p (a byte >= 0x80): its length, or -1. */
static int utf8_len(const char *p, const char *end) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)p, end - p, &cp);
    return n > 0 ? (int)n : -1;
}

/* The string literal starting at *pp (just after its opening quote): checks its escapes and
 * bytes, leaves *pp after the closing quote (or at end), and copies the first KEY_CAP-1 raw
 * bytes into key (for keys). */
static int scan_string(const char **pp, const char *end, const char *line, const scanner *s,
                       int in_key, const char *where, char *key, lrsa_err *e) {
    const char *p = *pp;
    size_t kn = 0;
    char path[256];
    if (in_key) key[0] = '\0';
    while (p < end && *p != '"') {
        const char *at = p;
        if ((unsigned char)*p >= 0x80) {
            int n = utf8_len(p, end);
            if (n < 0)
                return lrsa_errorf(e,
                                   "%s:%ld: field \"%s\": byte 0x%02x is not valid UTF-8; save "
                                   "the file as UTF-8",
                                   where, (long)(at - line) + 1,
                                   field_path(s, in_key, key, path, sizeof path),
                                   (unsigned char)*p);
            p += n;
        } else if (*p == '\\' && p + 1 < end && p[1] == 'u') {
            unsigned u = 0, lo = 0;
            if (hex4(p + 2, end, &u) != 0)
                return lrsa_errorf(e,
                                   "%s:%ld: field \"%s\": the escape \"%.6s\" needs four hex "
                                   "digits (\\uXXXX)",
                                   where, (long)(at - line) + 1,
                                   field_path(s, in_key, key, path, sizeof path), p);
            p += 6;
            if (u == 0)
                return lrsa_errorf(e,
                                   "%s:%ld: field \"%s\" holds the escape \\u0000 (a NUL "
                                   "character), which would cut the text there; remove it",
                                   where, (long)(at - line) + 1,
                                   field_path(s, in_key, key, path, sizeof path));
            int high = u >= 0xD800 && u <= 0xDBFF, low = u >= 0xDC00 && u <= 0xDFFF;
            if (high && end - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, end, &lo) == 0 &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                p += 6; /* a full pair */
            } else if (high || low) {
                return lrsa_errorf(
                    e,
                    "%s:%ld: field \"%s\": the escape \\u%04X is a lone UTF-16 "
                    "surrogate (%s); write the character itself or its full "
                    "pair (\\uD800-\\uDBFF then \\uDC00-\\uDFFF)",
                    where, (long)(at - line) + 1, field_path(s, in_key, key, path, sizeof path), u,
                    high ? "no low surrogate follows it" : "no high surrogate comes before it");
            }
        } else {
            p += *p == '\\' && p + 1 < end ? 2 : 1;
        }
        if (in_key) {
            for (const char *q = at; q < p && kn + 1 < KEY_CAP; q++) key[kn++] = *q;
            key[kn] = '\0';
        }
    }
    *pp = p < end ? p + 1 : p;
    return 0;
}

int lrsa_jsonl_check_text(const char *line, size_t len, const char *where, lrsa_err *e) {
    scanner s;
    memset(&s, 0, sizeof s);
    const char *p = line, *end = line + len;
    char key[KEY_CAP] = "";
    while (p < end) {
        scan_level *top = s.depth > 0 && s.depth <= MAX_DEPTH ? &s.level[s.depth - 1] : NULL;
        const char c = *p;
        if (c == '"') {
            const int in_key = top && top->is_object && top->expect_key;
            p++;
            if (scan_string(&p, end, line, &s, in_key, where, key, e) != 0) return -1;
            if (in_key) {
                memcpy(top->key, key, KEY_CAP);
                top->expect_key = 0;
            }
            continue;
        }
        if ((unsigned char)c >= 0x80) { /* outside strings it is a syntax error for cJSON */
            if (utf8_len(p, end) < 0)
                return lrsa_errorf(e,
                                   "%s:%ld: byte 0x%02x is not valid UTF-8; save the file as "
                                   "UTF-8",
                                   where, (long)(p - line) + 1, (unsigned char)c);
        } else if (c == '{' || c == '[') {
            if (s.depth < MAX_DEPTH)
                s.level[s.depth] = (scan_level){.is_object = c == '{', .expect_key = c == '{'};
            s.depth++;
        } else if ((c == '}' || c == ']') && s.depth > 0) {
            s.depth--;
        } else if (c == ',' && top) {
            if (top->is_object)
                top->expect_key = 1, top->key[0] = '\0';
            else
                top->index++;
        }
        p++;
    }
    return 0;
}
