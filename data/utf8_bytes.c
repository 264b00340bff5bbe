/* UTF-8 decoding helpers and GPT-2's byte <-> code point map (formats.md 4.2). */
#include <string.h>

#include "data/tokenizer_internal.h"

int lrsa_utf8_next(const unsigned char *s, size_t n, int32_t *cp) {
    unsigned char c = s[0];
    *cp = -1;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    int32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 1;
    if ((size_t)len > n) return 1;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 1;
        v = (v << 6) | (s[i] & 0x3F);
    }
    /* overlong forms, surrogates and values past U+10FFFF are invalid */
    if (v < min || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) return 1;
    *cp = v;
    return len;
}

/* How many bytes the sequence starting with lead byte c needs, and the allowed range of its
 * second byte (this is what makes E0 80 or ED A0 invalid at once, not only when complete). */
static int lead_info(unsigned char c, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80, *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c == 0xE0) *lo = 0xA0;
    if (c == 0xED) *hi = 0x9F;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c == 0xF0) *lo = 0x90;
    if (c == 0xF4) *hi = 0x8F;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Length of the valid prefix of a multi-byte sequence at s (0 when s[0] is no lead byte), and
 * whether it is complete. */
static int valid_prefix(const unsigned char *s, size_t n, int *need) {
    unsigned char lo, hi;
    *need = lead_info(s[0], &lo, &hi);
    if (!*need) return 0;
    int k = 1;
    for (; k < *need && (size_t)k < n; k++) {
        unsigned char b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) break;
    }
    return k;
}

int lrsa_utf8_incomplete_tail(const unsigned char *s, size_t n) {
    /* look at the last up-to-3 bytes for the start of an unfinished sequence */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const unsigned char *p = s + n - back;
        int need;
        int k = valid_prefix(p, back, &need);
        if (need && (size_t)k == back && k < need) return (int)back;
    }
    return 0;
}

size_t lrsa_utf8_lossy(const unsigned char *s, size_t n, char *out) {
    size_t o = 0, i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            out[o++] = (char)s[i++];
            continue;
        }
        int need;
        int k = valid_prefix(s + i, n - i, &need);
        if (need && k == need) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k, i += (size_t)k;
        } else {
            /* a maximal invalid subpart: the lead byte plus its valid continuation bytes */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += k > 0 ? (size_t)k : 1;
        }
    }
    return o;
}

int lrsa_utf8_encode(int32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Printable bytes keep their value; the 68 others (controls, space, 0x7F-0xA0, soft hyphen)
 * are numbered in increasing order from U+0100. */
static int byte_is_printable(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

int32_t lrsa_byte_to_cp(unsigned char b) {
    if (byte_is_printable(b)) return b;
    int k = 0;
    for (int x = 0; x < b; x++) k += !byte_is_printable(x);
    return 0x100 + k;
}

int lrsa_cp_to_byte(int32_t cp) {
    if (cp >= 0 && cp < 0x100) return byte_is_printable(cp) ? cp : -1;
    if (cp < 0x100 || cp >= 0x100 + 68) return -1;
    int k = cp - 0x100;
    for (int x = 0; x < 256; x++)
        if (!byte_is_printable(x) && k-- == 0) return x;
    return -1;
}
