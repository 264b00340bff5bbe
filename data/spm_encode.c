/* Encoding with a SentencePiece-style (character-level) BPE, as Hugging Face `tokenizers` does
 * for Llama 2 and Mistral: added tokens are cut out first, each stretch of text between them is
 * normalized on its own (Prepend "▁", Replace " " -> "▁"), normalized added tokens are cut out of
 * that, the Metaspace pre-tokenizer (if any) runs, and BPE starts from characters, turning a
 * character outside the vocabulary into its <0xNN> byte tokens (byte_fallback). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

typedef struct textbuf {
    char *v;
    size_t n, cap;
} textbuf;

static void tb_put(textbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->v = lrsa_realloc(b->v, b->cap);
    }
    memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = 0;
}

char *lrsa_replace_all(const char *s, size_t n, const char *pattern, const char *content,
                       size_t *out_n) {
    textbuf b = {0};
    tb_put(&b, "", 0);
    size_t pl = strlen(pattern), cl = strlen(content), done = 0;
    for (size_t i = 0; pl && i + pl <= n;) { /* an empty pattern matches nothing */
        if (memcmp(s + i, pattern, pl) == 0) {
            tb_put(&b, s + done, i - done);
            tb_put(&b, content, cl);
            i += pl;
            done = i;
        } else {
            i++;
        }
    }
    tb_put(&b, s + done, n - done);
    *out_n = b.n;
    return b.v;
}

/* One normalizer step over the whole text: a new malloc'd string. */
static char *norm_step(const lrsa_norm_step *st, const char *s, size_t n, size_t *out_n) {
    if (st->kind == LRSA_NORM_REPLACE)
        return lrsa_replace_all(s, n, st->pattern, st->content, out_n);
    textbuf b = {0}; /* PREPEND, before non-empty text only */
    tb_put(&b, "", 0);
    if (n) tb_put(&b, st->content, strlen(st->content));
    tb_put(&b, s, n);
    *out_n = b.n;
    return b.v;
}

/* The normalizer (NFC, then the Prepend/Replace steps in order) of one stretch of text.
 * Returns a malloc'd copy. */
static char *normalize(const lrsa_tokenizer *t, const char *s, size_t n, size_t *out_n) {
    char *cur = NULL;
    if (t->nfc) cur = (char *)lrsa_nfc_text((const unsigned char *)s, n, &n);
    if (!cur) {
        cur = lrsa_malloc(n + 1);
        memcpy(cur, s, n);
        cur[n] = 0;
    }
    for (int i = 0; i < t->n_norm; i++) {
        char *next = norm_step(&t->norm[i], cur, n, &n);
        free(cur);
        cur = next;
    }
    *out_n = n;
    return cur;
}

typedef struct seg_ctx {
    const lrsa_tokenizer *t;
    const char *text; /* what the current split runs over */
    int with_special, at_origin;
    lrsa_ids *out;
    const char *norm; /* the normalized segment, for the second split */
    int norm_origin;
} seg_ctx;

/* A stretch of normalized text between normalized added tokens: pre-tokenizer, then BPE. */
static int part_cb(void *ctx, size_t start, size_t end, lrsa_err *e) {
    (void)e;
    seg_ctx *c = ctx;
    lrsa_pretok_run(c->t, (const unsigned char *)c->norm + start, end - start,
                    c->norm_origin && start == 0, c->out);
    return 0;
}

/* A stretch of input between added tokens: normalized on its own, as HF does. */
static int segment_cb(void *ctx, size_t start, size_t end, lrsa_err *e) {
    seg_ctx *c = ctx;
    size_t m;
    char *norm = normalize(c->t, c->text + start, end - start, &m);
    c->norm = norm;
    c->norm_origin = c->at_origin && start == 0;
    int rc = c->with_special ? lrsa_split_added(c->t, norm, m, 2, part_cb, c, c->out, e)
                             : part_cb(c, 0, m, e);
    free(norm);
    return rc;
}

int lrsa_spm_encode(const lrsa_tokenizer *t, const char *text, size_t len, int with_special,
                    int at_origin, lrsa_ids *out, lrsa_err *e) {
    seg_ctx c = {
        .t = t, .text = text, .with_special = with_special, .at_origin = at_origin, .out = out};
    if (!with_special) return len ? segment_cb(&c, 0, len, e) : 0;
    return lrsa_split_added(t, text, len, 1, segment_cb, &c, out, e);
}

int lrsa_spm_finish(lrsa_tokenizer *t, const char *where, lrsa_err *e) {
    int missing = -1;
    for (int b = 255; b >= 0; b--) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = lrsa_strmap_get(&t->vocab, name, 6);
        if (t->byte_id[b] < 0) missing = b;
    }
    /* HF silently drops a character it can neither find nor spell in bytes when there is no
     * unk token; losing text is worse than refusing the file */
    if (t->unk_id < 0 && !t->byte_fallback)
        return lrsa_errorf(e,
                           "%s: model.unk_token is null and model.byte_fallback is false: "
                           "characters outside the vocabulary would be dropped; set "
                           "byte_fallback to true (with <0x00>..<0xFF> in the vocabulary) or "
                           "name an unk_token",
                           where);
    if (t->unk_id < 0 && missing >= 0)
        return lrsa_errorf(e,
                           "%s: model.byte_fallback is true but the vocabulary has no token "
                           "<0x%02X> and model.unk_token is null; add the 256 byte tokens "
                           "<0x00>..<0xFF> or name an unk_token",
                           where, missing);
    /* a normalized added token is looked for as its normalized form (HF's normalized cache) */
    for (int i = 0; i < t->n_added; i++) {
        lrsa_added_token *a = &t->added[i];
        if (!a->normalized) continue;
        size_t m;
        a->norm_content = normalize(t, a->content, (size_t)a->len, &m);
        a->norm_len = (int)m;
        if (m == 0) a->normalized = 0; /* nothing to look for */
    }
    /* bytes[id]: the text decoding starts from (the normalized form for those tokens) */
    t->max_token_bytes = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        if (!t->token[i]) continue;
        t->bytes[i] = lrsa_strdup(t->token[i]);
        t->bytes_len[i] = (int32_t)strlen(t->token[i]);
    }
    for (int i = 0; i < t->n_added; i++) {
        lrsa_added_token *a = &t->added[i];
        if (!a->normalized) continue;
        free(t->bytes[a->id]);
        t->bytes[a->id] = lrsa_strdup(a->norm_content);
        t->bytes_len[a->id] = a->norm_len;
    }
    for (int i = 0; i < t->n_vocab; i++)
        if (t->bytes_len[i] > t->max_token_bytes) t->max_token_bytes = t->bytes_len[i];
    t->cut_at_metaspace = 1;
    for (int i = 0; i < t->n_vocab && t->cut_at_metaspace; i++) {
        const unsigned char *s = (const unsigned char *)t->token[i];
        size_t n = s ? strlen(t->token[i]) : 0;
        for (size_t k = 1; k < n; k++)
            if (lrsa_spm_cut_before(s, k, n)) t->cut_at_metaspace = 0;
    }
    return 0;
}
