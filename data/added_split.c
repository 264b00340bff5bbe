/* Cutting added tokens out of a text (lrsa_split_added): shared by the byte-level encoder
 * (data/tokenizer.c) and the SentencePiece-style one (data/spm_encode.c), below both. */
#include <string.h>

#include "data/tokenizer_internal.h"

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int added_wanted(const lrsa_added_token *a, int which) {
    return which == 0 || (which == 1 && !a->normalized) || (which == 2 && a->normalized);
}

/* What an added token looks like in the text it is matched in: after normalization, a
 * normalized token is matched as its normalized form. */
static const char *added_text(const lrsa_added_token *a, int which, int *len) {
    if (which == 2 && a->norm_content) {
        *len = a->norm_len;
        return a->norm_content;
    }
    *len = a->len;
    return a->content;
}

/* The longest added token whose text starts at s (so "<|im_start|>" beats "<|"), or NULL. */
static const lrsa_added_token *added_at(const lrsa_tokenizer *t, const char *s, size_t n, int which,
                                        int *match_len) {
    const lrsa_added_token *best = NULL;
    *match_len = 0;
    for (int i = 0; i < t->n_added; i++) {
        const lrsa_added_token *a = &t->added[i];
        int len;
        const char *text = added_text(a, which, &len);
        if (len > *match_len && (size_t)len <= n && text[0] == s[0] &&
            memcmp(text, s, (size_t)len) == 0 && added_wanted(a, which))
            best = a, *match_len = len;
    }
    return best;
}

int lrsa_split_added(const lrsa_tokenizer *t, const char *text, size_t len, int which,
                     lrsa_plain_fn plain, void *ctx, lrsa_ids *out, lrsa_err *e) {
    unsigned char first[256] = {0}; /* bytes that can start an added token */
    for (int i = 0; i < t->n_added; i++) {
        int l;
        if (added_wanted(&t->added[i], which))
            first[(unsigned char)added_text(&t->added[i], which, &l)[0]] = 1;
    }
    size_t seg = 0; /* start of the plain text not yet encoded */
    for (size_t i = 0; i < len;) {
        int match_len = 0;
        const lrsa_added_token *a = first[(unsigned char)text[i]]
                                        ? added_at(t, text + i, len - i, which, &match_len)
                                        : NULL;
        if (!a) {
            i++;
            continue;
        }
        size_t a_start = i, a_end = i + (size_t)match_len;
        /* lstrip / rstrip: the token swallows the whitespace beside it */
        if (a->lstrip)
            while (a_start > seg && is_space((unsigned char)text[a_start - 1])) a_start--;
        if (a->rstrip)
            while (a_end < len && is_space((unsigned char)text[a_end])) a_end++;
        if (a_start > seg && plain(ctx, seg, a_start, e)) return -1;
        lrsa_ids_push(out, a->id);
        i = seg = a_end;
    }
    return seg < len ? plain(ctx, seg, len, e) : 0;
}
