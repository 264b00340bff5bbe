/* Makes PCRE2 agree with Hugging Face's regex engine (Oniguruma, Unicode 16) on the classes the
 * split regexes use. Measured by tools-free comparison over every code point (docs/TOKENIZER.md):
 *  - \s: PCRE2 (with UCP) also matches U+180E MONGOLIAN VOWEL SEPARATOR, which Unicode 6.3
 *    moved out of the spaces; HF does not. So \s becomes the explicit list HF matches.
 *  - \p{L}, \p{N}: PCRE2 10.42 has Unicode 14 tables; HF knows 9,272 more letters and 120 more
 *    numbers added since (new scripts, CJK extensions), listed here as ranges. */
#include <string.h>

#include "data/tokenizer_internal.h"

/* Class bodies (what goes between [ and ]). */
#define HF_SPACE                                                                                   \
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"    \
    "\\x{205F}\\x{3000}"
#define HF_LETTER_EXTRA                                                                            \
    "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"               \
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}"         \
    "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}"           \
    "\\x{113D3}\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}"          \
    "\\x{1342F}\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}"                    \
    "\\x{16D40}-\\x{16D6C}\\x{18CFF}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}"                     \
    "\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}"          \
    "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}"
#define HF_NUMBER_EXTRA                                                                            \
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"         \
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}"         \
    "\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}"

typedef struct sbuf {
    char *v;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->v = lrsa_realloc(b->v, b->cap);
    }
    memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = 0;
}
static void puts_(sbuf *b, const char *s) {
    put(b, s, strlen(s));
}

/* Rewrites \s, \S, \p{L}, \p{N} (outside and inside character classes) to the HF sets. Other
 * escapes are copied unchanged; \S inside a class is left as PCRE2 has it (unused by any
 * supported pattern). Returns a malloc'd pattern. */
char *lrsa_pattern_hf_classes(const char *p) {
    sbuf b = {0};
    put(&b, "", 0);
    int in_class = 0;
    for (size_t i = 0; p[i];) {
        if (p[i] == '\\' && p[i + 1]) {
            const char *rest = p + i + 1;
            const char *add = NULL, *body = NULL, *neg = NULL;
            size_t skip = 2;
            if (rest[0] == 's')
                body = HF_SPACE;
            else if (rest[0] == 'S' && !in_class)
                neg = HF_SPACE;
            else if (!strncmp(rest, "p{L}", 4))
                add = "\\p{L}" HF_LETTER_EXTRA, skip = 5;
            else if (!strncmp(rest, "p{N}", 4))
                add = "\\p{N}" HF_NUMBER_EXTRA, skip = 5;
            if (body) add = body;
            if (neg) {
                puts_(&b, "[^");
                puts_(&b, neg);
                puts_(&b, "]");
            } else if (add) {
                if (!in_class) puts_(&b, "[");
                puts_(&b, add);
                if (!in_class) puts_(&b, "]");
            } else {
                put(&b, p + i, 2); /* any other escape, including \] and \[ */
            }
            i += skip;
            continue;
        }
        if (!in_class && p[i] == '[') {
            in_class = 1;
            put(&b, p + i, 1);
            i++;
            if (p[i] == '^') put(&b, p + i++, 1);
            if (p[i] == ']') put(&b, p + i++, 1); /* a leading ] is a literal */
            continue;
        }
        if (in_class && p[i] == ']') in_class = 0;
        put(&b, p + i, 1);
        i++;
    }
    return b.v;
}

/* The same extra numbers as code point ranges, for the Digits pre-tokenizer (Rust's
 * char::is_numeric, Unicode 16), whose other numbers come from utf8proc (Unicode 15). */
int lrsa_hf_extra_number(int32_t cp) {
    static const int32_t ranges[][2] = {
        {0x10D40, 0x10D49}, {0x116D0, 0x116E3}, {0x11BF0, 0x11BF9}, {0x11F50, 0x11F59},
        {0x16130, 0x16139}, {0x16D70, 0x16D79}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3},
        {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1]) return 1;
    return 0;
}
